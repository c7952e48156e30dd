"""Child-process helpers shared by the Blender runner and the engine's workers."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tilefarm.runtime.memory import tree


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child started with ``start_new_session``, its process group, and every
    process below it, also those that run in sessions of their own (a stage's warm Blender
    sessions: killing the stage's group alone leaves its Blender rendering on, orphaned)."""
    if proc.poll() is None:
        for pid in reversed(tree(proc.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    proc.wait()


def log_tail(log: Path, lines: int = 3, empty: str = "") -> str:
    """The last lines of a log, joined on one line for an error message."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return empty
    return " | ".join(line.strip() for line in text[-lines:]) or empty
