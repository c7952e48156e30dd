"""Benchmark: merging a 3840x2160 frame from 16 tiles with several passes.

Compares the merger's work (read every tile, assemble with numpy, write the
merged EXR) with the floor of reading every tile once and writing the merged
EXR once, alternating the two in one run. Prints medians and the ratio.

    .venv/bin/python bench/merge.py [--repeat 5] [--tiles 4x4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import OpenEXR

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tilefarm.merger.exr import ExrImage, Placed, assemble, read_exr, read_exrs, write_exr  # noqa: E402

from tilefarm.plan.tiling import grid_tiles, parse_grid  # noqa: E402

WIDTH, HEIGHT, OVERSCAN = 3840, 2160, 16
# Passes a compositing scene typically reads: combined, depth, normal, denoising data.
PASSES = {"ViewLayer.Combined": 4, "ViewLayer.Depth.Z": 1, "ViewLayer.Normal": 3,
          "ViewLayer.Denoising Albedo": 3, "ViewLayer.Denoising Normal": 3}


def make_tiles(work: Path, nx: int, ny: int) -> list[tuple[Path, object, object]]:
    """Tiles as the renderer writes them: ZIP-compressed 32-bit multilayer EXR with overscan."""
    rng = np.random.default_rng(1)
    # Smooth-ish content (a gradient plus noise) compresses like a render, unlike pure noise.
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    base = (xx / WIDTH + yy / HEIGHT)[..., None]
    tiles = []
    for index, tile in enumerate(grid_tiles(WIDTH, HEIGHT, nx, ny)):
        region = tile.grow(OVERSCAN, WIDTH, HEIGHT)
        sl = (slice(region.y0, region.y1), slice(region.x0, region.x1))
        channels = {}
        for name, n in PASSES.items():
            noise = rng.normal(0, 0.01, (region.height, region.width, n)).astype(np.float32)
            array = (base[sl] + noise).astype(np.float32)
            channels[name] = array[..., 0].copy() if n == 1 else np.ascontiguousarray(array)
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
                  "BlenderMultiChannel": "Blender V2.55.1 and newer"}
        path = work / f"t{index:04d}.exr"
        with OpenEXR.File(header, channels) as handle:
            handle.write(str(path))
        tiles.append((path, tile, region))
    return tiles


def merge(tiles: list[tuple[Path, object, object]], target: Path) -> None:
    """What the merger does: read the tiles (in parallel), paste, write."""
    images = read_exrs([path for path, _, _ in tiles])
    placed = [Placed(image, tile, region, path)  # type: ignore[arg-type]
              for image, (path, tile, region) in zip(images, tiles)]
    write_exr(target, assemble(WIDTH, HEIGHT, placed))


def floor(tiles: list[tuple[Path, object, object]], target: Path, frame: ExrImage) -> None:
    """Reading every tile once (the same parallel reader) and writing a ready frame once."""
    read_exrs([path for path, _, _ in tiles])
    write_exr(target, frame)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tiles", default="4x4")
    args = parser.parse_args()
    nx, ny = parse_grid(args.tiles)
    with tempfile.TemporaryDirectory(prefix="tilefarm-bench-") as tmp:
        work = Path(tmp)
        tiles = make_tiles(work, nx, ny)
        size = sum(p.stat().st_size for p, _, _ in tiles) / 2**20
        print(f"{len(tiles)} tiles of {WIDTH}x{HEIGHT} (+{OVERSCAN}px overscan), "
              f"{sum(PASSES.values())} channels in {len(PASSES)} passes, {size:.0f} MiB on disk")
        merged, floors = [], []
        # One untimed round first: on a VM, the first touch of fresh memory in a process
        # costs more than the merge itself (about 1 s for a 4K frame here), and the floor,
        # whose frame is built before timing, would not pay it.
        merge(tiles, work / "merged.exr")
        for _ in range(args.repeat):
            start = time.perf_counter()
            merge(tiles, work / "merged.exr")
            merged.append(time.perf_counter() - start)
            # The floor writes a ready frame; building it is not timed.
            frame = ExrImage({k: np.ascontiguousarray(v) for k, v in
                              read_exr(work / "merged.exr").channels.items()}, {})
            start = time.perf_counter()
            floor(tiles, work / "floor.exr", frame)
            floors.append(time.perf_counter() - start)
        m, f = statistics.median(merged), statistics.median(floors)
        print(f"floor (read every tile once + write the frame once): {f:.3f} s  (median of {args.repeat})")
        print(f"merge (read + assemble + write):                       {m:.3f} s  (median of {args.repeat})")
        print(f"ratio merge/floor: {m / f:.3f}x  (goal <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
