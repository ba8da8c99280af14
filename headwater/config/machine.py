"""Facts of the machine that configuration defaults are derived from."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), else the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def memory_bytes(setting: str) -> float:
    """Bytes of a memory size as DuckDB writes it (``"256.0 MiB"``, ``"1.8 GiB"``, ``"512MB"``)."""
    import re

    found = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", setting)
    if found is None:
        raise ValueError(f"not a memory size: {setting!r}")
    scale: dict[str, float] = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
    scale |= {"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    return float(found.group(1)) * scale.get(found.group(2), 1)
