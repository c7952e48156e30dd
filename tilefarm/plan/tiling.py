"""Tile grids in integer pixels and the border fractions Blender turns back into them.

A tile is a half-open pixel rect ``[x0, x1) x [y0, y1)`` with the origin at the
top-left, as images are stored. Blender's render border is given in fractions
with the origin at the bottom-left, and Blender turns a fraction back into a
pixel by truncating ``fraction * size`` in float32 (``render_init_from_main``:
``disprect.xmin = rd->border.xmin * winx``). A fraction of ``x / size`` can land
one pixel short (97 px in 3 tiles would give 31/32/34 px tiles), so interior
edges use ``(x + 0.5) / size``, which truncates back to ``x`` exactly, and the
frame edges use 0 and 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tilefarm.errors import UsageError

_GRID = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
GRID_ALLOWED = "NXxNY with NX, NY >= 1, e.g. 2x2 or 4x3"


@dataclass(frozen=True)
class Rect:
    """A half-open pixel rect, origin top-left."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def grow(self, margin: int, width: int, height: int) -> "Rect":
        """This rect widened by ``margin`` on every side, clamped to the frame."""
        return Rect(max(0, self.x0 - margin), max(0, self.y0 - margin),
                    min(width, self.x1 + margin), min(height, self.y1 + margin))


@dataclass(frozen=True)
class Border:
    """Blender's render border fractions (origin bottom-left)."""

    min_x: float
    max_x: float
    min_y: float
    max_y: float


def parse_grid(spec: str, *, flag: str = "--tiles") -> tuple[int, int]:
    """Parse ``NXxNY`` into ``(nx, ny)``; both must be at least 1."""
    match = _GRID.match(spec)
    if match is None:
        raise UsageError(f"{spec!r} is not a tile grid; use {GRID_ALLOWED}", flag=flag)
    nx, ny = int(match.group(1)), int(match.group(2))
    if nx < 1 or ny < 1:
        raise UsageError(f"{spec!r} has a zero dimension; use {GRID_ALLOWED}", flag=flag)
    return nx, ny


def _cuts(size: int, parts: int) -> list[int]:
    # Even integer cuts: part i spans [i*size//parts, (i+1)*size//parts).
    return [i * size // parts for i in range(parts + 1)]


def grid_tiles(width: int, height: int, nx: int, ny: int, *, flag: str = "--tiles") -> list[Rect]:
    """Tiles of an ``nx`` x ``ny`` grid, row by row from the top-left, partitioning the frame."""
    if nx > width or ny > height:
        raise UsageError(
            f"{nx}x{ny} tiles do not fit a {width}x{height} frame; "
            f"at most {width} across and {height} down", flag=flag)
    xs, ys = _cuts(width, nx), _cuts(height, ny)
    return [Rect(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(ny) for i in range(nx)]


def _fraction(pixel: int, size: int) -> float:
    if pixel <= 0:
        return 0.0
    if pixel >= size:
        return 1.0
    return (pixel + 0.5) / size


def border_for(rect: Rect, width: int, height: int) -> Border:
    """Border fractions that Blender truncates back to exactly ``rect``'s pixels."""
    # Blender's rows count from the bottom: top-left row y is bottom-up row height - y.
    return Border(
        min_x=_fraction(rect.x0, width),
        max_x=_fraction(rect.x1, width),
        min_y=_fraction(height - rect.y1, height),
        max_y=_fraction(height - rect.y0, height),
    )


def blender_pixels(border: Border, width: int, height: int) -> Rect:
    """The top-left pixel rect Blender renders for ``border`` (its float32 truncation)."""
    import numpy as np

    def trunc(fraction: float, size: int) -> int:
        return int(np.float32(fraction) * np.float32(size))

    bottom, top = trunc(border.min_y, height), trunc(border.max_y, height)
    return Rect(trunc(border.min_x, width), height - top, trunc(border.max_x, width), height - bottom)
