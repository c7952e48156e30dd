"""Multilayer EXR tiles to one frame, losslessly, with numpy and the official OpenEXR bindings.

Blender names channels ``<view layer>.<pass>.<channel>``; the bindings group the
R/G/B/A (or X/Y/Z) of a pass into one ``(height, width, n)`` array. Every array
is copied bit for bit: no resampling, no conversion, no 8-bit round trip.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import OpenEXR

from tilefarm.errors import MergeError
from tilefarm.plan.tiling import Rect

# Header attributes the merged frame keeps from its tiles: the one Blender needs to read a
# file back as multilayer, and the metadata Cycles wrote, which Blender's output stage
# writes again (Cryptomatte manifests: every tile carries the whole scene's; per-layer
# statistics such as ``cycles.<layer>.samples``).
_KEPT_ATTRIBUTES = ("BlenderMultiChannel",)
_KEPT_PREFIXES = ("cryptomatte/", "cycles.")


@dataclass
class ExrImage:
    channels: dict[str, np.ndarray]
    header: dict[str, object]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        first = next(iter(self.channels.values()))
        return first.shape[1], first.shape[0]

    def layout(self) -> dict[str, tuple[str, int]]:
        """Channel name -> (dtype, components): what every tile of a frame must share."""
        return {name: (str(a.dtype), a.shape[2] if a.ndim == 3 else 1)
                for name, a in self.channels.items()}


def read_exr(path: Path) -> ExrImage:
    """Read the first part of an EXR; a clear MergeError for a missing or corrupt file."""
    try:
        with OpenEXR.File(str(path)) as handle:
            part = handle.parts[0]
            channels = {name: channel.pixels for name, channel in part.channels.items()}
            header = dict(part.header)
    except FileNotFoundError:
        raise MergeError("tile is missing", path=path) from None
    except (RuntimeError, OSError, ValueError) as exc:
        raise MergeError(f"tile is not a readable EXR ({' '.join(str(exc).split())})",
                         path=path) from None
    if not channels:
        raise MergeError("tile has no channels", path=path)
    return ExrImage(channels, header)


def read_exrs(paths: list[Path], threads: int | None = None) -> list[ExrImage]:
    """Read several EXRs at once: the bindings release the GIL while decoding, so tiles
    decompress in parallel (about 2x on 2 cores)."""
    workers = max(1, min(len(paths), threads or os.cpu_count() or 1))
    if workers == 1:
        return [read_exr(p) for p in paths]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(read_exr, paths))


def write_exr(path: Path, image: ExrImage, *, compression: OpenEXR.Compression =
              OpenEXR.NO_COMPRESSION) -> None:
    """Write ``image`` as a scanline EXR Blender reads as multilayer.

    The bindings (3.5) scramble the arrays they are given while writing, so
    ``image`` must not be used afterwards.
    """
    header: dict[str, object] = {k: v for k, v in image.header.items()
                                 if k in _KEPT_ATTRIBUTES or k.startswith(_KEPT_PREFIXES)}
    header["compression"] = compression
    header["type"] = OpenEXR.scanlineimage
    with OpenEXR.File(header, image.channels) as handle:
        handle.write(str(path))


@dataclass(frozen=True)
class Placed:
    """A tile image and where it goes: ``tile`` inside ``rendered`` (both frame pixels)."""

    image: ExrImage
    tile: Rect
    rendered: Rect
    path: Path


# Frame buffers kept between frames of one process (a batching merger merges many):
# on a VM the first touch of fresh memory costs more than the whole paste.
_BUFFERS: dict[tuple[str, tuple[int, ...], str], np.ndarray] = {}


def _frame_buffer(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:  # type: ignore[type-arg]
    key = (name, shape, str(dtype))
    buffer = _BUFFERS.get(key)
    if buffer is None:
        if any(k[1][:2] != shape[:2] for k in _BUFFERS):
            _BUFFERS.clear()  # another frame size: keep one frame's worth at most
        buffer = _BUFFERS[key] = np.empty(shape, dtype=dtype)
    return buffer


def assemble(width: int, height: int, tiles: list[Placed]) -> ExrImage:
    """Paste the ``tile`` part of each rendered region into a full frame, channel by channel.

    The frame's arrays are reused by the next call in this process: write the
    result before assembling another frame.
    """
    reference = tiles[0]
    layout = reference.image.layout()
    out: dict[str, np.ndarray] = {}
    for name, array in reference.image.channels.items():
        out[name] = _frame_buffer(name, (height, width) + array.shape[2:], array.dtype)
    covered = np.zeros((height, width), dtype=np.uint8)
    for placed in tiles:
        if placed.image.layout() != layout:
            raise MergeError(f"tile channels {_describe(placed.image.layout())} differ from "
                             f"{_describe(layout)} in {reference.path.name}", path=placed.path)
        if placed.image.size != (placed.rendered.width, placed.rendered.height):
            raise MergeError(f"tile is {placed.image.size[0]}x{placed.image.size[1]} px; the plan "
                             f"renders {placed.rendered.width}x{placed.rendered.height} px",
                             path=placed.path)
        t, r = placed.tile, placed.rendered
        src = (slice(t.y0 - r.y0, t.y1 - r.y0), slice(t.x0 - r.x0, t.x1 - r.x0))
        for name, array in placed.image.channels.items():
            out[name][t.y0:t.y1, t.x0:t.x1] = array[src]
        covered[t.y0:t.y1, t.x0:t.x1] += 1
    if not (covered == 1).all():
        raise MergeError("tiles do not cover the frame exactly once", path=reference.path.parent)
    return ExrImage(out, reference.image.header)


def _describe(layout: Mapping[str, tuple[str, int]]) -> str:
    return "[" + ", ".join(f"{k}:{c}x{d}" for k, (d, c) in sorted(layout.items())) + "]"
