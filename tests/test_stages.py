"""The four stage mains run datum by datum as a Pachyderm worker runs them:
inputs under /pfs/<input>, the per-input env var naming the datum, output in /pfs/out."""

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import Scenes, assert_one_line_error, run_cli
from tests.pipeline import assert_identical, reference
from tilefarm.plan.model import TileMeta
from tilefarm.plan.schemas import read_json

pytestmark = pytest.mark.blender


def stage(pfs: Path, name: str, env: dict[str, str], *args: str) -> None:
    proc = run_cli("-m", name, "--pfs-root", str(pfs), *args, env=env)
    assert proc.returncode == 0, proc.stderr


def collect(pfs: Path, into: str) -> None:
    """Pachyderm merges every datum's /pfs/out into the output commit."""
    shutil.copytree(pfs / "out", pfs / into, dirs_exist_ok=True)
    shutil.rmtree(pfs / "out")


@pytest.fixture(scope="module")
def pipeline_run(scenes: Scenes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pfs = tmp_path_factory.mktemp("stages") / "pfs"
    job = pfs / "blends" / "shot"
    job.mkdir(parents=True)
    shutil.copy(scenes["odd_size"], job / "shot.blend")
    (job / "tilefarm.json").write_text(json.dumps({"tiles": "2x2", "chunk": 2, "overscan": 16}))
    stage(pfs, "splitter", {"blends": "/pfs/blends/shot"})
    collect(pfs, "splitter")
    tasks = sorted((pfs / "splitter" / "shot" / "tasks").iterdir())
    for task in tasks:  # one datum per task, joined with its own blend
        stage(pfs, "renderer", {"splitter": f"/pfs/splitter/shot/tasks/{task.name}",
                                "blends": "/pfs/blends/shot"}, "--threads", "2")
        collect(pfs, "renderer")
    for frame in ("000001", "000002"):  # one datum per frame
        stage(pfs, "merger", {"renderer": f"/pfs/renderer/shot/tiles/{frame}",
                              "splitter": "/pfs/splitter/shot/plan.json",
                              "blends": "/pfs/blends/shot"})
        collect(pfs, "merger")
    stage(pfs, "encoder", {"merger": "/pfs/merger/shot", "splitter": "/pfs/splitter/shot/plan.json",
                           "blends": "/pfs/blends/shot"})
    collect(pfs, "encoder")
    return pfs


def test_datums_produce_frames_and_video(pipeline_run: Path, scenes: Scenes, tmp_path: Path) -> None:
    pfs = pipeline_run
    assert len(list((pfs / "splitter" / "shot" / "tasks").iterdir())) == 4
    tiles = sorted((pfs / "renderer" / "shot" / "tiles").rglob("*.exr"))
    assert len(tiles) == 8  # 2 frames x 4 tiles, each at its own path
    frames = sorted((pfs / "merger" / "shot" / "frames").iterdir())
    assert [f.name for f in frames] == ["000001.png", "000002.png"]
    expected = reference(scenes["odd_size"], tmp_path / "ref")
    for frame in frames:
        assert_identical(frame, expected[int(frame.stem)])
    assert (pfs / "encoder" / "shot" / "shot.mp4").stat().st_size > 0


def test_tile_metadata(pipeline_run: Path) -> None:
    meta = read_json(pipeline_run / "renderer" / "shot" / "tiles" / "000002" / "t0003.json",
                     "tile", TileMeta)
    assert (meta.frame, meta.tile, meta.task) == (2, 3, "c00000-t0003")
    assert (meta.planned.x0, meta.planned.y0, meta.planned.x1, meta.planned.y1) == (48, 30, 97, 61)
    assert (meta.rendered.x0, meta.rendered.y0, meta.rendered.x1, meta.rendered.y1) == (32, 14, 97, 61)
    assert meta.blender_version.startswith("4.5") and meta.samples == 8
    assert meta.render_seconds > 0 and meta.peak_memory_mb > 0


def merger_on(pfs: Path, frame: str = "000001") -> "object":
    return run_cli("-m", "tilefarm.merger", "--pfs-root", str(pfs),
                   env={"renderer": f"/pfs/renderer/shot/tiles/{frame}",
                        "splitter": "/pfs/splitter/shot/plan.json", "blends": "/pfs/blends/shot"})


@pytest.fixture
def broken(pipeline_run: Path, tmp_path: Path) -> Path:
    pfs = tmp_path / "pfs"
    for name in ("blends", "splitter", "renderer"):
        shutil.copytree(pipeline_run / name, pfs / name)
    return pfs


def test_missing_tile_is_named(broken: Path) -> None:
    (broken / "renderer" / "shot" / "tiles" / "000001" / "t0002.exr").unlink()
    proc = merger_on(broken)
    assert_one_line_error(proc, "frame 1 tile 2 (0,30)-(48,61) is missing", "t0002.exr")
    assert not (broken / "out" / "shot" / "frames" / "000001.png").exists()


def test_corrupt_tile_is_named(broken: Path) -> None:
    tile = broken / "renderer" / "shot" / "tiles" / "000001" / "t0001.exr"
    tile.write_bytes(tile.read_bytes()[:300])
    assert_one_line_error(merger_on(broken), "t0001.exr", "not a readable EXR")
    assert not (broken / "out" / "shot" / "frames").exists()


def test_tile_of_the_wrong_size_is_named(broken: Path) -> None:
    tiles = broken / "renderer" / "shot" / "tiles" / "000001"
    shutil.copy(tiles / "t0000.exr", tiles / "t0003.exr")
    assert_one_line_error(merger_on(broken), "t0003.exr", "the plan renders 65x47 px")


def test_renderer_refuses_an_unknown_device(pipeline_run: Path) -> None:
    proc = run_cli("-m", "tilefarm.renderer", "--device", "TPU", "--pfs-root", str(pipeline_run))
    assert proc.returncode == 2 and "invalid choice: 'TPU'" in proc.stderr


def test_renderer_reports_a_missing_gpu(pipeline_run: Path, tmp_path: Path) -> None:
    pfs = tmp_path / "pfs"
    for name in ("blends", "splitter"):
        shutil.copytree(pipeline_run / name, pfs / name)
    proc = run_cli("-m", "tilefarm.renderer", "--device", "CUDA", "--pfs-root", str(pfs),
                   env={"splitter": "/pfs/splitter/shot/tasks/c00000-t0000.json",
                        "blends": "/pfs/blends/shot"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "CUDA" in proc.stderr and "CPU" in proc.stderr


def test_whole_frame_tasks_hand_the_merger_final_frames(scenes: Scenes, tmp_path: Path) -> None:
    from tests.pipeline import run_pipeline
    from tilefarm.plan.settings import JobSettings

    run = run_pipeline(scenes["transparent_exr"], tmp_path / "pfs", JobSettings())
    tiles = run.pfs / "renderer" / "transparent_exr" / "tiles" / "000001"
    assert sorted(p.name for p in tiles.iterdir()) == ["frame.exr", "preview.png", "t0000.json"]
    meta = read_json(tiles / "t0000.json", "tile", TileMeta)
    assert meta.final == "frame.exr"
    assert (run.pfs / "merger" / "transparent_exr" / "previews" / "000001.png").is_file()
    # Without its final frame the merger names what is missing.
    (tiles / "frame.exr").unlink()
    shutil.rmtree(run.pfs / "merger")
    proc = run_cli("-m", "tilefarm.merger", "--pfs-root", str(run.pfs),
                   env={"renderer": "/pfs/renderer/transparent_exr/tiles/000001",
                        "splitter": "/pfs/splitter/transparent_exr/plan.json",
                        "blends": "/pfs/blends/transparent_exr.blend"})
    assert_one_line_error(proc, "frame 1 (rendered whole) is missing its frame.exr")
