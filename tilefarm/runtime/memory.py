"""Memory, as the OS counts it: sizes people type, peaks of process trees, what is free.

A datum's peak is the largest peak resident set (``VmHWM``) among the processes serving
it: the Blender child, for the stages that run one. A long-lived worker's peaks are reset
(``/proc/PID/clear_refs``, 5) when it starts a datum, so each datum gets its own. A
process that ends is measured by ``wait4``'s ``ru_maxrss``: its own peak or its largest
reaped child's.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
from pathlib import Path

from tilefarm.errors import UsageError

UNITS = {"": 1, "B": 1, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str, flag: str) -> int:
    """``512MiB``, ``4GiB``, ``1.5GiB`` or a number of bytes; UsageError naming ``flag``."""
    match = SIZE.match(str(text))
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in UNITS or float(match.group(1)) <= 0:
        raise UsageError(f"{flag} must be a number of bytes or a number with KiB, MiB or GiB "
                         f"(512MiB, 4GiB), not {text!r}", flag=flag)
    return int(float(match.group(1)) * UNITS[unit])


def format_size(size: int | float) -> str:
    """``4.0 GiB``, ``512.0 MiB``: one decimal, the largest binary unit that fits."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if size >= UNITS[unit.upper()]:
            return f"{size / UNITS[unit.upper()]:.1f} {unit}"
    return f"{int(size)} B"


def available() -> int:
    """The machine's available memory (``MemAvailable``), in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _status(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def reset_peaks(pid: int) -> None:
    """Start counting peaks afresh for ``pid``'s tree (a worker starting a datum)."""
    for member in tree(pid):
        try:
            Path(f"/proc/{member}/clear_refs").write_text("5")
        except OSError:
            pass


def peak(pid: int) -> int:
    """The largest peak resident set in ``pid``'s tree since its last reset, in bytes."""
    return max((_status(member, "VmHWM") for member in tree(pid)), default=0)


def resident(pid: int) -> int:
    """The largest resident set in ``pid``'s tree now, in bytes."""
    return max((_status(member, "VmRSS") for member in tree(pid)), default=0)


def wait(proc: subprocess.Popen[bytes], timeout: float | None) -> tuple[int, int]:
    """Wait for ``proc`` to end (on its pidfd, no polling): its exit code as ``Popen``
    gives it and its peak resident set in bytes. ``subprocess.TimeoutExpired`` after
    ``timeout`` seconds."""
    fd = os.pidfd_open(proc.pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise subprocess.TimeoutExpired(proc.args, timeout or 0)
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        os.close(fd)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024
