import numpy as np
import pytest

from tilefarm.errors import UsageError
from tilefarm.plan.tiling import Rect, blender_pixels, border_for, grid_tiles, parse_grid


def coverage(width: int, height: int, tiles: list[Rect]) -> np.ndarray:
    hits = np.zeros((height, width), dtype=np.int32)
    for t in tiles:
        assert 0 <= t.x0 < t.x1 <= width and 0 <= t.y0 < t.y1 <= height
        hits[t.y0:t.y1, t.x0:t.x1] += 1
    return hits


@pytest.mark.parametrize("width, height", [(97, 61), (64, 48), (1, 1), (3840, 2160), (101, 7)])
@pytest.mark.parametrize("nx, ny", [(1, 1), (2, 2), (3, 3), (7, 5), (4, 3), (1, 7)])
def test_tiles_partition_the_frame(width: int, height: int, nx: int, ny: int) -> None:
    if nx > width or ny > height:
        pytest.skip("grid larger than frame is an error, tested below")
    tiles = grid_tiles(width, height, nx, ny)
    assert len(tiles) == nx * ny
    assert (coverage(width, height, tiles) == 1).all()


def test_tiles_are_row_major_from_top_left() -> None:
    tiles = grid_tiles(97, 61, 3, 2)
    assert tiles[0] == Rect(0, 0, 32, 30)
    assert tiles[1] == Rect(32, 0, 64, 30)
    assert tiles[3] == Rect(0, 30, 32, 61)
    assert [t.width for t in tiles[:3]] == [32, 32, 33]


def test_more_tiles_than_pixels_is_refused() -> None:
    with pytest.raises(UsageError, match=r"--tiles: 98x1 tiles do not fit a 97x61 frame"):
        grid_tiles(97, 61, 98, 1)


@pytest.mark.parametrize("spec, grid", [("2x2", (2, 2)), ("7X5", (7, 5)), (" 3 x 1 ", (3, 1))])
def test_parse_grid(spec: str, grid: tuple[int, int]) -> None:
    assert parse_grid(spec) == grid


@pytest.mark.parametrize("spec", ["0x3", "3x0", "2", "2x", "x2", "-1x2", "2x2x2", "axb"])
def test_parse_grid_rejects(spec: str) -> None:
    with pytest.raises(UsageError, match=r"^--tiles: .*NXxNY"):
        parse_grid(spec)


def test_naive_fractions_would_lose_a_pixel() -> None:
    # DESIGN.md point 3: x / width can truncate one pixel short in float32.
    short = [x for x in range(1, 97) if int(np.float32(np.float32(x / 97) * np.float32(97))) != x]
    assert short, "the float32 hazard this module guards against exists"


@pytest.mark.parametrize("size", [*range(1, 600), 1023, 1080, 1920, 2160, 3840, 4096, 7680])
def test_border_fractions_truncate_back_to_every_pixel(size: int) -> None:
    edges = np.arange(size + 1)
    fractions = np.array([border_for(Rect(int(x), 0, size, 1), size, 1).min_x for x in edges],
                         dtype=np.float64)
    back = (fractions.astype(np.float32) * np.float32(size)).astype(np.int64)
    assert (back == edges).all()


@pytest.mark.parametrize("width, height, nx, ny", [(97, 61, 3, 3), (97, 61, 7, 5), (1920, 1080, 4, 3)])
def test_border_round_trip_with_y_flip(width: int, height: int, nx: int, ny: int) -> None:
    for tile in grid_tiles(width, height, nx, ny):
        grown = tile.grow(16, width, height)
        assert blender_pixels(border_for(grown, width, height), width, height) == grown
