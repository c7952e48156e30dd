"""Memory, as the OS counts it: sizes people type, peaks of process trees, what is free.

A datum's peak is the largest peak resident set (``VmHWM``) among the processes serving
it: the Blender child, for the stages that run one. A long-lived worker's peaks are reset
(``/proc/PID/clear_refs``, 5) when it starts a datum, so each datum gets its own; a
process per datum is sampled while it runs (``wait``).
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from pathlib import Path

from tilefarm.sizes import UNITS, format_size

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


def wait(proc: subprocess.Popen[bytes], timeout: float | None) -> tuple[int, int | None]:
    """Wait for ``proc`` to end (on its pidfd): its exit code as ``Popen`` gives it, and its
    tree's peak resident set in bytes, sampled every 50 ms while it runs. (``wait4``'s
    ``ru_maxrss`` would count the parent's memory the child held between fork and exec.)
    The peak is None when no sample caught the process alive. ``subprocess.TimeoutExpired``
    after ``timeout`` seconds."""
    fd = os.pidfd_open(proc.pid)
    deadline = None if timeout is None else time.monotonic() + timeout
    top = 0
    try:
        while True:
            top = max(top, peak(proc.pid))
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout or 0)
            if select.select([fd], [], [], left)[0]:
                break
        _, status = os.waitpid(proc.pid, 0)
    except ChildProcessError:  # another thread's kill_tree reaped it (a cancel)
        return proc.wait(), top or None
    finally:
        os.close(fd)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, top or None


LIMIT_MARK = "(memory_limit)"
OOM_MARK = "(out of memory)"
FAILURE = re.compile(r"([^|]*?Blender (?:used more than|was killed by)[^|]*?"
                     r"(?:\(memory_limit\)|\(out of memory\)))")


def limit_message(limit: int) -> str:
    return f"Blender used more than {format_size(limit)} {LIMIT_MARK}"


def oom_message(peak_bytes: int) -> str:
    return f"Blender was killed by the kernel's OOM killer at {format_size(peak_bytes)} {OOM_MARK}"


def failure_line(error: str) -> str | None:
    """The line of a datum's error that says its Blender ran out of memory
    (``shot: frame 12 tile 3: Blender used more than 4.0 GiB (memory_limit)``), if any;
    without what the stage's log wrapped around it."""
    match = FAILURE.search(error)
    if match is None:
        return None
    line = match.group(1).strip()
    for prefix in ("renderer: error: ", "merger: error: "):
        line = line.split(prefix, 1)[-1]
    return line


def failure_peak(line: str) -> int | None:
    """The size a ``failure_line`` names (the limit passed, or the peak at the kill)."""
    match = re.search(r"(?:more than|at) (\d+(?:\.\d+)?) ([KMGT]iB)", line)
    return int(float(match.group(1)) * UNITS[match.group(2).upper()]) if match else None


def oom_kills() -> int:
    """How many processes the kernel's OOM killer has killed in this memory cgroup."""
    for path, key in (("/sys/fs/cgroup/memory.events", "oom_kill"),
                      ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill")):
        try:
            for line in Path(path).read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        except (OSError, ValueError):
            continue
    return 0
