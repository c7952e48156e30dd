"""Sizes as people type and read them: ``512MiB``, ``4GiB``, ``4.0 GiB``."""

from __future__ import annotations

import re

UNITS = {"": 1, "B": 1, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def size_of(text: str) -> int | None:
    """``512MiB``, ``4GiB``, ``1.5GiB`` or a number of bytes, in bytes; None if it is none
    of those (``errors.parse_size`` says so to the user)."""
    match = SIZE.match(str(text))
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in UNITS or float(match.group(1)) <= 0:
        return None
    return int(float(match.group(1)) * UNITS[unit])


def format_size(size: int | float) -> str:
    """``4.0 GiB``, ``512.0 MiB``: one decimal, the largest binary unit that fits."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if size >= UNITS[unit.upper()]:
            return f"{size / UNITS[unit.upper()]:.1f} {unit}"
    return f"{int(size)} B"
