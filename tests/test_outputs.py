"""Everything Blender writes, tiled (issue 13): multilayer EXR with every view layer and
pass, Cryptomatte manifests and composite; compositor File Output nodes kept inside the
job's output. Compared with Blender's own render channel by channel, bit for bit, with
the header attributes."""

from __future__ import annotations

from pathlib import Path

import OpenEXR
import pytest

from tests.conftest import Scenes, run_cli
from tests.pipeline import assert_identical, pixels, reference, run_pipeline
from tilefarm.plan import layout
from tilefarm.plan.settings import JobSettings

pytestmark = pytest.mark.blender

# Header attributes that differ between two of Blender's own renders of one frame (clock
# readings), and ``File``: the path the .blend was opened from (the farm's copy).
VARYING = ("Date", "RenderTime", "File")
VARYING_SUFFIXES = (".render_time", ".synchronization_time", ".total_time")


def plain(value: object) -> object:
    """A header value as comparable data: arrays as lists, channels as (name, sampling)
    in file order (their pixel types and bits are compared by assert_identical)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if type(value).__name__ == "Channel":
        return (value.name, value.xSampling, value.ySampling)  # type: ignore[attr-defined]
    return value


def header(path: Path) -> dict[str, object]:
    with OpenEXR.File(str(path), header_only=True) as handle:
        found = {k: plain(v) for k, v in handle.header().items()
                 if k not in VARYING and not k.endswith(VARYING_SUFFIXES)}
    found.pop("type", None)  # the bindings add it on read for any scanline file
    return found


def assert_same_exr(ours: Path, theirs: Path) -> None:
    assert_identical(ours, theirs)  # every channel: names, pixel types, bits
    assert header(ours) == header(theirs)


@pytest.fixture(scope="module")
def multilayer_reference(scenes: Scenes, tmp_path_factory: pytest.TempPathFactory
                         ) -> dict[int, Path]:
    return reference(scenes["multilayer"], tmp_path_factory.mktemp("ref-multilayer"))


@pytest.mark.parametrize("grid", ["3x2", "2x2", "1x1"])
def test_multilayer_exr_matches_blender_channel_by_channel(
        scenes: Scenes, multilayer_reference: dict[int, Path], tmp_path: Path, grid: str) -> None:
    run = run_pipeline(scenes["multilayer"], tmp_path / "pfs", JobSettings(tiles=grid, chunk=2))
    assert run.plan.output.stage == "render_result"
    for frame in run.plan.frames:
        ours, theirs = run.frame(frame), multilayer_reference[frame]
        names = sorted(pixels(theirs))
        assert "ViewLayer.CryptoObject00.r" in names and "Second.Depth.Z" in names
        assert "Composite.Combined.R" in names and "ViewLayer.Combined_key.R" in names
        assert any(k.startswith("cryptomatte/") for k in header(theirs))
        assert_same_exr(ours, theirs)
        preview = layout.preview_path(run.pfs / "merger", run.plan.job, frame)
        assert pixels(preview)["pixels"].shape == (48, 64, 3)  # what the encoder reads


def test_file_output_nodes_write_inside_the_job(scenes: Scenes, tmp_path: Path) -> None:
    elsewhere = scenes["file_output"].parent / "file_output_elsewhere"
    expected = reference(scenes["file_output"], tmp_path / "ref")
    blender_wrote = sorted(p.relative_to(elsewhere) for p in elsewhere.rglob("*") if p.is_file())
    assert [str(p) for p in blender_wrote] == ["beauty_0001.png", "beauty_0002.png",
                                               "depth/z_0001.png", "depth/z_0002.png"]
    kept = tmp_path / "blender-wrote"  # moved away, so any file appearing there is ours
    elsewhere.rename(kept)
    for grid in ("2x2", "1x1"):
        run = run_pipeline(scenes["file_output"], tmp_path / f"pfs-{grid}",
                           JobSettings(tiles=grid))
        for frame in run.plan.frames:
            assert_identical(run.frame(frame), expected[frame])
        node_dir = layout.file_output_dir(tmp_path / f"pfs-{grid}" / "merger", "file_output")
        node_dir = node_dir / "File Output"
        ours = sorted(p.relative_to(node_dir) for p in node_dir.rglob("*") if p.is_file())
        assert ours == blender_wrote, grid
        for p in ours:
            assert_identical(node_dir / p, kept / p)
        assert not any(elsewhere.rglob("*.png")), "a File Output file was written outside the job"


def test_render_exports_file_outputs(scenes: Scenes, tmp_path: Path) -> None:
    proc = run_cli("render", str(scenes["file_output"]), "--tiles", "2x1", "--no-video",
                   "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    exported = tmp_path / "out" / "file_output" / "file_output" / "File Output"
    assert sorted(str(p.relative_to(exported)) for p in exported.rglob("*.png")) == [
        "beauty_0001.png", "beauty_0002.png", "depth/z_0001.png", "depth/z_0002.png"]
    assert not any((scenes["file_output"].parent / "file_output_elsewhere").rglob("*.png"))
