"""PNG thumbnails of finished frames, from any output format.

PNG, JPEG and the other 8/16-bit formats are decoded by opencv and scaled. A float EXR
frame has the scene's view transform applied only where Blender wrote a preview beside it
(``previews/<frame>.png``, made for every format the encoder cannot read, with the scene's
own view transform); otherwise its linear RGB is shown through the standard sRGB transfer
function, clipped to [0, 1]: an approximation that ignores the scene's view transform
(AgX, Filmic) and look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import OpenEXR

THUMB_WIDTH = 320


def _exr_rgb(path: Path) -> np.ndarray:
    """The first RGB(A) layer of an EXR as float32 HxWx3 (BGR order, as opencv keeps it)."""
    with OpenEXR.File(str(path), separate_channels=True) as handle:
        channels = handle.parts[0].channels
        names = list(channels)

        def pick(letter: str) -> np.ndarray:
            combined = [n for n in names if n.endswith(f".Combined.{letter}")]
            for name in (letter, *combined, *[n for n in names if n.endswith(f".{letter}")]):
                if name in channels:
                    return np.asarray(channels[name].pixels, dtype=np.float32)
            raise ValueError(f"{path.name} has no {letter} channel")

        return np.dstack([pick("B"), pick("G"), pick("R")])


def srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light to 8-bit sRGB (IEC 61966-2-1), clipped to [0, 1]."""
    x = np.clip(linear, 0.0, 1.0)
    encoded = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.round(encoded * 255).astype(np.uint8)


EXR_MAGIC = b"\x76\x2f\x31\x01"


def partial_frame(width: int, height: int, tiles: list[tuple[dict[str, Any], Path]]) -> bytes:
    """A PNG thumbnail of a frame in flight: each finished tile (a raw EXR tile and its
    metadata: ``planned`` and ``rendered`` rectangles in frame pixels) pasted where it goes,
    through the sRGB approximation; tiles still rendering are black."""
    canvas = np.zeros((height, width, 3), dtype=np.float32)
    for meta, path in tiles:
        t, r = meta["planned"], meta["rendered"]
        rgb = _exr_rgb(path)
        canvas[t["y0"]:t["y1"], t["x0"]:t["x1"]] = rgb[t["y0"] - r["y0"]:t["y1"] - r["y0"],
                                                       t["x0"] - r["x0"]:t["x1"] - r["x0"]]
    return _png(srgb(canvas), THUMB_WIDTH)


def thumbnail(path: Path, width: int = THUMB_WIDTH) -> bytes:
    """A PNG of the frame stored at ``path`` (any name: the store keeps objects by hash),
    ``width`` pixels wide at most."""
    with path.open("rb") as handle:
        exr = handle.read(4) == EXR_MAGIC
    if exr:
        image = srgb(_exr_rgb(path))
    else:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path.name} is not an image opencv reads")
    return _png(image, width)


def _png(image: np.ndarray, width: int) -> bytes:
    height, current = image.shape[:2]
    if current > width:
        image = cv2.resize(image, (width, max(1, round(height * width / current))),
                           interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("opencv could not encode the thumbnail")
    return bytes(data)
