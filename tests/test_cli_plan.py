"""``tilefarm plan`` as a user runs it, on real fixture scenes (needs Blender)."""

import json
import math
from pathlib import Path

import pytest

from tests.conftest import Scenes, assert_one_line_error, run_cli

pytestmark = pytest.mark.blender


def plan(*args: str) -> dict:
    proc = run_cli("plan", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_partition(doc: dict) -> None:
    covered = [[0] * doc["width"] for _ in range(doc["height"])]
    for t in doc["tiles"]:
        assert all(isinstance(t[k], int) for k in ("x0", "y0", "x1", "y1"))
        for y in range(t["y0"], t["y1"]):
            for x in range(t["x0"], t["x1"]):
                covered[y][x] += 1
    assert all(c == 1 for row in covered for c in row)


@pytest.mark.parametrize("grid", ["3x3", "7x5"])
@pytest.mark.parametrize("chunk", ["1", "2", "5"])
def test_odd_size_plans(scenes: Scenes, grid: str, chunk: str) -> None:
    doc = plan(str(scenes["odd_size"]), "--tiles", grid, "--chunk", chunk)
    assert (doc["width"], doc["height"]) == (97, 61)
    assert doc["frames"] == [1, 2]
    nx, ny = map(int, grid.split("x"))
    assert len(doc["tiles"]) == nx * ny
    assert_partition(doc)
    assert len(doc["tasks"]) == math.ceil(2 / int(chunk)) * nx * ny
    pairs = sorted((f, t["tile"]["index"]) for t in doc["tasks"] for f in t["frames"])
    assert pairs == sorted((f, i) for f in (1, 2) for i in range(nx * ny))


def test_percentage_and_step(scenes: Scenes) -> None:
    doc = plan(str(scenes["percentage_jpeg"]))
    assert (doc["width"], doc["height"]) == (80, 50)
    assert doc["output"]["extension"] == ".jpg"
    assert [t["tile"] for t in doc["tasks"]] == [None, None]
    assert plan(str(scenes["frame_step"]))["frames"] == [1, 4, 7]
    assert plan(str(scenes["frame_step"]), "--frames", "2-3,10")["frames"] == [2, 3, 10]


def test_job_directory_settings_and_flag_override(scenes: Scenes, tmp_path: Path) -> None:
    job = tmp_path / "shot"
    job.mkdir()
    (job / "scene.blend").write_bytes(scenes["odd_size"].read_bytes())
    (job / "tilefarm.json").write_text(json.dumps({"tiles": "2x2", "chunk": 2, "overscan": 4}))
    doc = plan(str(job))
    assert doc["job"] == "shot" and doc["blend"] == "shot/scene.blend"
    assert (doc["grid"], doc["chunk"], doc["overscan"], len(doc["tasks"])) == ([2, 2], 2, 4, 4)
    doc = plan(str(job), "--tiles", "3x1", "--chunk", "1")
    assert (doc["grid"], doc["chunk"], len(doc["tasks"])) == ([3, 1], 1, 6)


def test_scene_flag(scenes: Scenes) -> None:
    proc = run_cli("plan", str(scenes["plain"]), "--scene", "Nope")
    assert_one_line_error(proc, str(scenes["plain"]), "no scene named 'Nope'", "Scene")


def test_registered_script_never_runs(scenes: Scenes) -> None:
    assert plan(str(scenes["registered_script"]))["frames"] == [1, 2]
    assert not scenes.marker.exists()


def test_registered_script_fixture_is_live(scenes: Scenes, tmp_path: Path) -> None:
    # Proves the fixture above can fail: opened with scripts allowed, the script runs.
    from tests.conftest import BUILD_SCRIPT
    from tilefarm.blender.runner import BlenderRunner

    BlenderRunner(log_dir=tmp_path).run_script(BUILD_SCRIPT, {"open_with_scripts": str(scenes["registered_script"])})
    assert scenes.marker.read_text() == "the registered script ran"
    scenes.marker.unlink()


def bad_job(tmp_path: Path, scenes: Scenes, settings: str) -> Path:
    job = tmp_path / "job"
    job.mkdir(exist_ok=True)
    (job / "a.blend").write_bytes(scenes["plain"].read_bytes())
    (job / "tilefarm.json").write_text(settings)
    return job


@pytest.mark.parametrize("case, needles", [
    ("empty", ["empty.blend", "the file is empty"]),
    ("text", ["notes.txt", "not a .blend file"]),
    ("truncated", ["cut.blend", "truncated"]),
    ("missing", ["missing.blend", "no such file or directory"]),
    ("dir_without_blend", ["nothing", "no top-level .blend"]),
    ("invalid_json", ["tilefarm.json", "not valid JSON"]),
    ("unknown_key", ["tilefarm.json", "unknown key(s) 'tile'"]),
    ("no_camera", ["no_camera.blend", "has no camera"]),
    ("empty_range", ["--frames", "empty frame range"]),
    ("bad_frames", ["--frames", "'1-x' is not a frame or range"]),
    ("zero_tiles", ["--tiles", "'0x3' has a zero dimension"]),
    ("too_many_tiles", ["--tiles", "98x1 tiles do not fit a 97x61 frame"]),
    ("zero_chunk", ["--chunk", "0 frames per task is not allowed"]),
    ("bad_chunk", ["--chunk", "invalid int value"]),
])
def test_bad_input_is_one_clear_line(scenes: Scenes, tmp_path: Path, case: str,
                                     needles: list[str]) -> None:
    empty = tmp_path / "empty.blend"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cut = tmp_path / "cut.blend"
    cut.write_bytes(scenes["plain"].read_bytes()[:5000])
    (tmp_path / "nothing").mkdir()
    odd = str(scenes["odd_size"])
    if case in ("invalid_json", "unknown_key"):
        bad_job(tmp_path, scenes, "{nope" if case == "invalid_json" else '{"tile": "2x2"}')
    args = {
        "empty": [str(empty)], "text": [str(text)], "truncated": [str(cut)],
        "missing": [str(tmp_path / "missing.blend")], "dir_without_blend": [str(tmp_path / "nothing")],
        "invalid_json": [str(tmp_path / "job")], "unknown_key": [str(tmp_path / "job")],
        "no_camera": [str(scenes["no_camera"])],
        "empty_range": [odd, "--frames", "9-3"], "bad_frames": [odd, "--frames", "1-x"],
        "zero_tiles": [odd, "--tiles", "0x3"], "too_many_tiles": [odd, "--tiles", "98x1"],
        "zero_chunk": [odd, "--chunk", "0"], "bad_chunk": [odd, "--chunk", "two"],
    }[case]
    assert_one_line_error(run_cli("plan", *args), *needles)


@pytest.mark.parametrize("module", ["tilefarm.splitter", "tilefarm.renderer", "tilefarm.merger",
                                    "tilefarm.encoder", "tilefarm"])
def test_every_stage_answers_help(module: str) -> None:
    proc = run_cli("-m", module, "--help")
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr


def test_tilefarm_help() -> None:
    for args in (["--help"], ["plan", "--help"]):
        proc = run_cli(*args)
        assert proc.returncode == 0 and "usage: tilefarm" in proc.stdout
