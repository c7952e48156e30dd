"""Where a command's wall time and CPU go, process by process: a profile of ``tilefarm render``
(and its stage processes and Blenders) that no single-process profiler gives.

Runs the command, samples /proc every 10 ms, and prints each process below it: when it started
and ended (seconds from the command's start), the CPU seconds it used, and its command line.
The last line sums the CPU: against the wall time on N cores, it says whether the run waited
or was short of cores.

    .venv/bin/python bench/timeline.py .venv/bin/tilefarm render demo.blend --out /tmp/out

Linux only (/proc). A process that lives less than a sample may be missed, and CPU is read
at the last sample before a process ends (its last 10 ms are not counted).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Seen:
    start: float
    end: float
    cpu: float
    cmd: str


def processes() -> dict[int, tuple[int, float]]:
    """{pid: (parent pid, CPU seconds)} of every process."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    return found


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as cmdline:
            return cmdline.read().replace("\0", " ").strip()
    except OSError:
        return ""


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit(f"usage: {sys.argv[0]} COMMAND [ARG ...]")
    start = time.monotonic()
    top = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    seen: dict[int, Seen] = {}
    while True:
        now, table = time.monotonic() - start, processes()
        below, grown = {top.pid}, True
        while grown:
            grown = False
            for pid, (parent, _) in table.items():
                if parent in below and pid not in below:
                    below.add(pid)
                    grown = True
        for pid in below & table.keys():
            entry = seen.setdefault(pid, Seen(now, now, 0.0, ""))
            entry.end, entry.cpu = now, table[pid][1]
            entry.cmd = command_line(pid) or entry.cmd  # the program it exec'ed, once it has
        if top.poll() is not None:
            break
        time.sleep(0.01)
    wall = time.monotonic() - start
    print(f"{'start':>6} {'end':>6} {'cpu':>6}  command (exit {top.returncode}, {wall:.2f} s)")
    for entry in sorted(seen.values(), key=lambda e: e.start):
        print(f"{entry.start:6.2f} {entry.end:6.2f} {entry.cpu:6.2f}  {entry.cmd[:120]}")
    cpu = sum(e.cpu for e in seen.values())
    print(f"CPU {cpu:.2f} s in {wall:.2f} s of wall time: {cpu / wall:.2f} cores busy on average "
          f"(this machine has {os.cpu_count()})")
    return top.returncode


if __name__ == "__main__":
    sys.exit(main())
