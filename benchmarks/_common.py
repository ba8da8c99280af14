"""Helpers shared by the benchmarks: child processes with peak RSS, formatting, Markdown, facts.

Every contender runs in a child process of its own, started through ``_launch.py``, which
reports the resource use ``os.wait4`` gives for that child alone (``getrusage(RUSAGE_CHILDREN)``
would give the largest child seen so far, and a child forked straight from this process would
carry this process's own peak RSS: Linux keeps it across ``exec``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
PEERS_VENV = BENCH_DIR / ".venv-peers"
PEERS_REQUIREMENTS = BENCH_DIR / "peers-requirements.txt"
LAUNCHER = BENCH_DIR / "_launch.py"


# ---------------------------------------------------------------- child processes
@dataclass
class ChildResult:
    """The outcome of one child process."""

    returncode: int
    wall_s: float
    peak_rss: int
    """Peak resident set size in bytes (the child and the children it waited for)."""
    cpu_s: float
    """User + system CPU seconds of the child (all its threads)."""
    stdout: str
    stderr: str
    timed_out: bool = False


def run_child(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float | None = None,
) -> ChildResult:
    """Run ``cmd`` to completion; measure its wall time, CPU and peak RSS (``ru_maxrss``)."""
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.TemporaryDirectory() as scratch,
    ):
        report = Path(scratch) / "usage.json"
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-S", str(LAUNCHER), str(report), "--", *cmd],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            # The child leads its own session: end it and anything it started.
            os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, kill) if timeout_s else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        own = json.loads(report.read_text()) if report.exists() else None
        if own is None:  # killed before it could report: the launcher's own figures
            own = {"maxrss_kib": usage.ru_maxrss, "utime": usage.ru_utime, "stime": usage.ru_stime}
        return ChildResult(
            returncode=proc.returncode,
            wall_s=wall,
            peak_rss=int(own["maxrss_kib"]) * 1024,  # Linux reports KiB
            cpu_s=float(own["utime"]) + float(own["stime"]),
            stdout=out.read(),
            stderr=err.read(),
            timed_out=timed_out.is_set(),
        )


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------- the peers virtualenv
def ensure_peers_venv(*, log: bool = True) -> Path:
    """Create ``benchmarks/.venv-peers`` with the peers' packages; return its python.

    The other tools live in a virtualenv of their own so that they are never part of
    headwater's dependencies. It is reinstalled only when ``peers-requirements.txt`` changes.
    """
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".requirements-sha256"
    want = hashlib.sha256(PEERS_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python
    if not python.exists():
        if log:
            say(f"creating {PEERS_VENV.relative_to(ROOT)}")
        base = os.environ.get("HEADWATER_BENCH_PYTHON", "python3")
        subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
    if log:
        say(f"installing {PEERS_REQUIREMENTS.relative_to(ROOT)} into the peers virtualenv")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(PEERS_REQUIREMENTS)], check=True)
    stamp.write_text(want + "\n")
    return python


def package_versions(python: Path | str, names: list[str]) -> dict[str, str]:
    """Installed versions of ``names`` in the environment of ``python`` ("-" when absent)."""
    code = (
        "import json, sys\n"
        "from importlib.metadata import version, PackageNotFoundError\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try:\n"
        "        out[n] = version(n)\n"
        "    except PackageNotFoundError:\n"
        "        out[n] = '-'\n"
        "print(json.dumps(out))\n"
    )
    import json

    done = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True
    )
    result: dict[str, str] = json.loads(done.stdout)
    return result


# ---------------------------------------------------------------- machine facts
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def total_ram() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_facts() -> dict[str, str]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "RAM": fmt_bytes(total_ram()),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": sys.version.split()[0],
    }


# ---------------------------------------------------------------- formatting
def fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if n / size < 100 else f"{n / size:.0f} {unit}"
    return f"{n:.0f} B"


def fmt_count(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e3:
        return f"{n / 1e3:.0f} k"
    return f"{n:.0f}"


def fmt_rows(n: int) -> str:
    """1000000 -> "1M", 200000 -> "200k"."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def markdown_table(headers: list[str], rows: list[list[str]], align: str = "") -> str:
    """A GitHub Markdown table; ``align`` has one of ``l``/``r`` per column (default left)."""
    align = align.ljust(len(headers), "l")
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        ("-" * (w - 1) + ":") if a == "r" else "-" * w for w, a in zip(widths, align, strict=True)
    ]
    return "\n".join([line(headers), "| " + " | ".join(rule) + " |", *(line(r) for r in rows)])


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- docs/benchmarks.md
BENCH_DOC = ROOT / "docs" / "benchmarks.md"
DOC_INTRO = """\
# Benchmarks

Timings live in `benchmarks/`, not in the tests. Run one with

```bash
scripts/bench NAME [ARGS...]      # e.g. scripts/bench postgres --rows 1000000 --repeat 3
```

`scripts/bench` with no argument lists the benchmarks; `benchmarks/README.md` says what each one
measures. A benchmark rewrites its own section of this page with the numbers it measured and the
machine it ran on; other sections are left as they are. Numbers from different machines are not
comparable: rerun on yours.
"""


def write_doc_section(heading: str, body: str, path: Path = BENCH_DOC) -> None:
    """Replace the ``## heading`` section of ``path`` (or append it), keeping the rest."""
    text = path.read_text() if path.exists() else DOC_INTRO
    section = f"## {heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
