"""Frames tiles cannot reproduce are rendered whole, the plan says why, and `tilefarm render`
prints the reason; the frames still equal Blender's own render (issue 13, part 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Scenes, run_cli
from tests.pipeline import assert_identical, reference, run_pipeline
from tilefarm.plan.settings import JobSettings

pytestmark = pytest.mark.blender

CASES = [
    ("eevee", "EEVEE: screen-space effects read beyond a tile"),
    ("path_guiding", "Cycles path guiding learns from the whole render, so a tile cannot match it"),
    ("denoise_exposure", "Cycles denoising with a film exposure of 1.7: Cycles denoises before "
                         "the exposure, which tiles cannot undo exactly"),
]


@pytest.mark.parametrize("name, reason", CASES)
def test_untileable_scene_renders_whole_and_matches_blender(scenes: Scenes, tmp_path: Path,
                                                            name: str, reason: str) -> None:
    run = run_pipeline(scenes[name], tmp_path / "pfs", JobSettings(tiles="2x2"))
    assert run.plan.grid == [1, 1]
    assert (run.plan.tiling.grid, run.plan.tiling.requested, run.plan.tiling.reason) == (
        "1x1", "2x2", reason)
    expected = reference(scenes[name], tmp_path / "ref")
    assert run.plan.frames == sorted(expected)
    for frame in run.plan.frames:
        assert_identical(run.frame(frame), expected[frame])


def test_plan_json_carries_the_decision_and_render_prints_it(scenes: Scenes,
                                                             tmp_path: Path) -> None:
    proc = run_cli("plan", str(scenes["eevee"]), "--tiles", "2x2")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tiling"] == {
        "grid": "1x1", "requested": "2x2", "reason": "EEVEE: screen-space effects read beyond a tile"}
    proc = run_cli("render", str(scenes["path_guiding"]), "--tiles", "3x2", "--no-video",
                   "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert ("path_guiding: rendering whole frames instead of 3x2 tiles: Cycles path guiding "
            "learns from the whole render, so a tile cannot match it") in proc.stdout.splitlines()
    assert (tmp_path / "out" / "path_guiding" / "frames" / "000001.png").is_file()
