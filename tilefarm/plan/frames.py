"""Frame lists: the scene's range with its step, and user frame specs like ``1-10,20,30-40``."""

from __future__ import annotations

import re

from tilefarm.errors import UsageError

# One element of a spec: a frame, or an inclusive range with an optional step
# ("1-9:2" is 1, 3, 5, 7, 9). Frames may be negative, as in Blender.
_ELEMENT = re.compile(r"^(-?\d+)(?:\s*-\s*(-?\d+)(?::(\d+))?)?$")

FRAMES_ALLOWED = "comma-separated frames and inclusive ranges, e.g. 1-10,20,30-40 or 1-9:2"


def scene_frames(start: int, end: int, step: int) -> list[int]:
    """Frames Blender's own animation render visits: ``start, start+step, ... <= end``."""
    if step < 1:
        raise UsageError(f"frame step {step} is not allowed; it must be 1 or more")
    return list(range(start, end + 1, step))


def parse_frames(spec: str, *, flag: str = "--frames") -> list[int]:
    """Parse a frame spec into a sorted list of distinct frames.

    Raises UsageError naming ``flag`` for a malformed spec or one that selects nothing.
    """
    text = spec.strip()
    if not text:
        raise UsageError(f"empty frame spec; use {FRAMES_ALLOWED}", flag=flag)
    frames: set[int] = set()
    for raw in text.split(","):
        element = raw.strip()
        match = _ELEMENT.match(element)
        if match is None:
            raise UsageError(f"{element!r} is not a frame or range; use {FRAMES_ALLOWED}", flag=flag)
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        step = int(match.group(3)) if match.group(3) is not None else 1
        if step < 1:
            raise UsageError(f"{element!r} has step 0; use a step of 1 or more, "
                             f"as in {FRAMES_ALLOWED}", flag=flag)
        if last < first:
            raise UsageError(f"{element!r} is an empty frame range (it ends before it "
                             f"starts); use {FRAMES_ALLOWED}", flag=flag)
        frames.update(range(first, last + 1, step))
    return sorted(frames)
