import pytest

from tilefarm.errors import UsageError
from tilefarm.plan.frames import parse_frames, scene_frames


@pytest.mark.parametrize("spec, frames", [
    ("1-10,20,30-32", [*range(1, 11), 20, 30, 31, 32]),
    ("5", [5]),
    ("3,1,2,2", [1, 2, 3]),
    ("1-9:3", [1, 4, 7]),
    (" 8 - 10 ", [8, 9, 10]),
    ("-2-1", [-2, -1, 0, 1]),
    ("9,10,100", [9, 10, 100]),  # numeric order, never string order
])
def test_parse_frames(spec: str, frames: list[int]) -> None:
    assert parse_frames(spec) == frames


@pytest.mark.parametrize("spec, needle", [
    ("", "empty frame spec"),
    ("1-x", "'1-x' is not a frame or range"),
    ("1,,2", "'' is not a frame or range"),
    ("10-5", "empty frame range"),
    ("1-9:0", "step 0"),
    ("a", "'a' is not a frame"),
])
def test_parse_frames_rejects(spec: str, needle: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_frames(spec)
    assert needle in str(err.value)
    assert str(err.value).startswith("--frames: ")
    assert "1-10,20,30-40" in str(err.value)


def test_scene_frames_honour_step() -> None:
    assert scene_frames(1, 7, 3) == [1, 4, 7]
    assert scene_frames(1, 8, 3) == [1, 4, 7]
    assert scene_frames(5, 4, 1) == []
