"""Crashes and rebalances: workers killed with SIGKILL at random points and restarted (or
replaced by a second worker of the same group) end with exactly the offline and online contents
of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from headwater import FeatureStore
from tests.engines.streaming.support import (
    FLUSH_USER,
    PARTITIONS,
    make_events,
    online_rows,
    produce,
    real_rows,
    write_event_files,
    write_stream_project,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

VIEWS = ("stream_tumbling", "stream_lifetime")
CRASH_RUNS = 20
PARALLEL = 4


def _worker(root: Path, batch: int = 150) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "headwater", "stream", *VIEWS, "--until-caught-up"]
    command += ["--repo", str(root), "--max-batch", str(batch)]
    env = {**os.environ, "HEADWATER_LOG_LEVEL": "WARNING"}
    with open(root / "worker.log", "ab") as log:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)


def _finish(process: subprocess.Popen[bytes], root: Path, timeout: float = 600) -> None:
    process.wait(timeout=timeout)
    assert process.returncode == 0, (root / "worker.log").read_text()[-3000:]


def _contents(root: Path, users: list[int]) -> dict[str, Any]:
    with FeatureStore(root) as store:
        return {view: (real_rows(store, view), online_rows(store, view, users)) for view in VIEWS}


@pytest.fixture(scope="module")
def crash_topic(kafka_bootstrap: str, kafka_topic_module: Any) -> tuple[str, list[int]]:
    topic = kafka_topic_module(partitions=PARTITIONS)
    events = make_events(seed=2024, per_partition=700, users=30)
    produce(kafka_bootstrap, topic, events)
    users = sorted({e["user_id"] for e in events if e["user_id"] != FLUSH_USER})
    return topic, users


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, crash_topic: Any
) -> dict[str, Any]:
    """An uninterrupted run, checked against the batch engine."""
    topic, users = crash_topic
    root = write_stream_project(
        tmp_path_factory.mktemp("ref") / "p",
        kafka_bootstrap,
        topic,
        windows=("tumbling", "lifetime"),
    )
    write_event_files(root, make_events(seed=2024, per_partition=700, users=30))
    with FeatureStore(root) as store:
        store.apply()
    _finish(_worker(root), root)
    with FeatureStore(root) as store:
        store.run(["batch_tumbling", "batch_lifetime"])
        for window in ("tumbling", "lifetime"):
            assert real_rows(store, f"stream_{window}") == real_rows(store, f"batch_{window}")
    contents = _contents(root, users)
    assert all(rows and served for rows, served in contents.values())
    return contents


def _crash_run(index: int, base: Path, bootstrap: str, topic: str, users: list[int]) -> Any:
    rng = random.Random(index)
    root = write_stream_project(
        base / f"crash{index}", bootstrap, topic, windows=("tumbling", "lifetime")
    )
    write_event_files(root, [])
    with FeatureStore(root) as store:
        store.apply()
    kills = 0
    for _ in range(1 + rng.randrange(2)):
        process = _worker(root)
        time.sleep(rng.uniform(2.0, 7.0))
        if process.poll() is not None:
            break  # finished before the kill: nothing to crash
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    _finish(_worker(root), root)
    return kills, _contents(root, users)


def test_sigkill_at_random_points_then_restart_gives_the_uninterrupted_result(
    tmp_path: Path, kafka_bootstrap: str, crash_topic: Any, reference: dict[str, Any]
) -> None:
    topic, users = crash_topic
    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(
            pool.map(
                lambda i: _crash_run(i, tmp_path, kafka_bootstrap, topic, users),
                range(CRASH_RUNS),
            )
        )
    killed = sum(k for k, _ in outcomes)
    assert killed >= CRASH_RUNS  # every run was killed at least once
    for index, (_kills, contents) in enumerate(outcomes):
        assert contents == reference, f"crash run {index} differs"


def test_a_killed_worker_partitions_move_to_the_survivor(
    tmp_path: Path, kafka_bootstrap: str, crash_topic: Any, reference: dict[str, Any]
) -> None:
    topic, users = crash_topic
    root = write_stream_project(
        tmp_path / "rebalance", kafka_bootstrap, topic, windows=("tumbling", "lifetime")
    )
    write_event_files(root, [])
    with FeatureStore(root) as store:
        store.apply()
    # Small micro-batches, so both workers are busy for seconds after the group formed.
    survivor = _worker(root, batch=40)
    victim = _worker(root, batch=40)
    deadline = time.monotonic() + 120
    with FeatureStore(root) as store:
        while time.monotonic() < deadline:
            progress = store.registry.stream_partitions(
                "stream_tumbling", topic, list(range(PARTITIONS))
            )
            owners = {saved.meta["run_id"] for saved in progress.values()}
            if len(owners) == 2:  # both workers own partitions and committed batches
                break
            time.sleep(0.1)
    assert len({saved.meta["run_id"] for saved in progress.values()}) == 2
    assert victim.poll() is None, "the second worker ended before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    _finish(survivor, root)
    with FeatureStore(root) as store:
        runs = store.registry.runs(view="stream_tumbling", kind="stream")
    assert len(runs) == 2  # the survivor's (success) and the victim's (left running)
    assert _contents(root, users) == reference
