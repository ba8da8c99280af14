"""Run one benchmark: ``python benchmarks/run.py NAME [ARGS...]`` (what ``scripts/bench`` calls).

A benchmark is a module ``benchmarks/NAME.py`` (names starting with ``_`` are helpers) with a
``DESCRIPTION`` string and a ``main(argv) -> int`` function.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(
        p.stem for p in HERE.glob("*.py") if p.stem != "run" and not p.stem.startswith("_")
    )


def usage() -> str:
    lines = ["usage: scripts/bench NAME [ARGS...]   (NAME --help for its options)", "benchmarks:"]
    for name in available():
        description = getattr(importlib.import_module(name), "DESCRIPTION", "")
        lines.append(f"  {name:<12} {description}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in available():
        print(f"unknown benchmark: {name}\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(name)
    code: int = module.main(rest)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
