"""The README's snippets run as written, in the order a reader runs them: the quickstart, a
module added to the demo, the commands, then the Python API — without pandas installed."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HIDE = ROOT / "tests" / "resources" / "hide_modules"


def blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w+)\n(.*?)```", text, re.S)]


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{HIDE}:{ROOT}",
            "HEADWATER_LOG_LEVEL": "WARNING",
            "COLUMNS": "200",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def headwater_commands(shell: str) -> list[list[str]]:
    """The ``headwater`` commands of a shell block (``cd`` and ``pip`` lines are the reader's)."""
    commands = []
    for line in shell.splitlines():
        for part in line.split("&&"):
            words = shlex.split(part)
            if words and words[0] == "headwater":
                commands.append(words[1:])
    return commands


def test_readme_snippets_run(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    found = blocks(readme)
    quickstart, define, commands, api = found[0], found[1], found[2], found[3]
    assert quickstart[0] == "bash"
    assert headwater_commands(quickstart[1]) == [["quickstart", "demo"]]
    run(["-m", "headwater", "quickstart", "demo", "--users", "60", "--days", "3"], tmp_path)
    demo = tmp_path / "demo"

    assert define[0] == "python"
    assert "`demo/pages.py`" in readme.split(define[1])[0].rsplit("```", 1)[0][-200:]
    (demo / "pages.py").write_text(define[1])

    assert commands[0] == "bash"
    assert "cd demo" in commands[1]
    outputs = [run(["-m", "headwater", *c], demo).stdout for c in headwater_commands(commands[1])]
    assert "visitors" in outputs[-1]

    assert api[0] == "python"
    assert "entity_df" not in api[1]
    printed = run(["-c", api[1]], demo, HEADWATER_TEST_HIDE="pandas").stdout
    assert "'visitors': [" in printed
    assert "page_id: int32" in printed  # the key column in the type of the view's key
