"""Run a contender and report its own resource use: ``_launch.py REPORT -- CMD...``.

Linux carries a process's peak RSS across ``exec`` from the memory it was forked from: a
contender started straight from the benchmark process (which holds the expected results, some
hundreds of MB) would report at least that much. Started from this small process instead, its
``ru_maxrss`` is its own. Writes ``{"maxrss_kib", "utime", "stime"}`` of the command to REPORT
and exits with the command's status.
"""

import json
import os
import signal
import subprocess
import sys


def main() -> int:
    report, separator, *cmd = sys.argv[1:]
    if separator != "--" or not cmd:
        print("usage: _launch.py REPORT -- CMD...", file=sys.stderr)
        return 2
    proc = subprocess.Popen(cmd)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _f: proc.send_signal(s))
    _, status, usage = os.wait4(proc.pid, 0)
    with open(report, "w") as out:
        json.dump(
            {"maxrss_kib": usage.ru_maxrss, "utime": usage.ru_utime, "stime": usage.ru_stime}, out
        )
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
