"""Each job renders with the Blender that saved its file: 4.5, 5.0 and 5.2 LTS, tiled, each
bit-identical to its own Blender's render, in one ``tilefarm render``.

The 5.0 and 5.2 runtimes are installed from PyPI by ``tilefarm blender install`` into the
runtimes folder (``~/.cache/tilefarm/runtimes``), which persists between runs of the suite;
5.2 needs Python 3.13, found where pyenv keeps it when it is not on PATH.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import pytest

from tests.conftest import BUILD_SCRIPT, Scenes, run_cli
from tests.pipeline import assert_identical, assert_same_frame, reference, references
from tilefarm.blender import runtimes
from tilefarm.blender.blendfile import check_blend

pytestmark = pytest.mark.blender

CASES = ["plain", "glare_blur", "two_layers", "multilayer", "denoise", "file_output",
         "factory_default", "denoise_no_adaptive"]


@pytest.fixture(scope="module")
def saved(blender_50: runtimes.Runtime, blender_52: runtimes.Runtime,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """The fixture scenes as Blender 5.0 and 5.2 save them (job names v50_*, v52_*), the
    5.0 set with a sound strip for the encoder's mixdown."""
    by_series: dict[str, list[Path]] = {}
    for series, runtime in (("5.0", blender_50), ("5.2", blender_52)):
        out = tmp_path_factory.mktemp(f"saved-{series}")
        cases = CASES + (["sound_video"] if series == "5.0" else ["format_avif"])
        built = runtime.runner(timeout=300).run_script(
            BUILD_SCRIPT, {"out": str(out / "built"), "cases": cases, "marker": str(out / "m")},
            label=f"build-{series}")
        prefix = "v" + series.replace(".", "")
        jobs = []
        for case, path in built.items():
            source = Path(path)
            if case == "sound_video":
                target = out / f"{prefix}_{case}"
                shutil.copytree(source.parent, target)
            else:
                target = out / f"{prefix}_{case}.blend"
                shutil.copyfile(source, target)
            jobs.append(target)
        by_series[series] = jobs
    return by_series


def main_blend(job: Path) -> Path:
    return job / "shot.blend" if job.is_dir() else job


def test_headers_name_the_blender_that_saved_each_file(saved: dict[str, list[Path]]) -> None:
    for series, jobs in saved.items():
        assert {check_blend(main_blend(job)).blender for job in jobs} == {series}


def test_each_file_renders_tiled_with_its_own_blender_bit_identical(
        saved: dict[str, list[Path]], scenes: Scenes, tmp_path: Path) -> None:
    """One render command, three Blenders: every stage of a job (inspection, tiles, compose,
    mixdown) runs in the runtime of the Blender that saved its file."""
    jobs = [scenes["glare_blur"], *saved["5.0"], *saved["5.2"]]
    out = tmp_path / "out"
    proc = run_cli("render", *map(str, jobs), "--tiles", "2x2", "--out", str(out), timeout=1500)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "saved by Blender" not in proc.stdout  # exact matches: no note
    assert proc.stdout.splitlines()[-1].endswith(", 0 failed")
    series_of = {**{job: series for series, js in saved.items() for job in js},
                 scenes["glare_blur"]: "4.5"}
    own = {}  # Blender's own frames of each job, by its own Blender: one start per runtime
    for series in sorted(set(series_of.values())):
        mine = [job for job in jobs if series_of[job] == series]
        made = references([(main_blend(job), tmp_path / "ref" / job.name) for job in mine],
                          runtimes.find(series).runner(timeout=1200))
        own.update(zip(mine, made))
    for job in jobs:
        name = job.name.removesuffix(".blend")
        theirs = own[job]
        ours = sorted((out / name / "frames").iterdir())
        assert [int(p.stem) for p in ours] == sorted(theirs), name
        for path in ours:
            assert_same_frame(path, theirs[int(path.stem)])
        if name.endswith("file_output"):  # files named as Blender names them, frame numbers too
            elsewhere = main_blend(job).parent / "built" / "file_output_elsewhere"
            written = sorted(p.relative_to(elsewhere) for p in elsewhere.rglob("*.png"))
            exported = out / name / "file_output" / "File Output"
            assert sorted(p.relative_to(exported) for p in exported.rglob("*.png")) == written
            assert len(written) == 4
            for rel in written:
                assert_identical(exported / rel, elsewhere / rel)
    with av.open(str(out / "v50_sound_video" / "v50_sound_video.mp4")) as video:
        assert [s.type for s in video.streams] == ["video", "audio"]
        assert video.streams.video[0].frames == 12


def test_a_file_newer_than_every_runtime_is_refused_before_rendering(
        saved: dict[str, list[Path]], tmp_path: Path) -> None:
    job = saved["5.2"][0]
    env = {"TILEFARM_RUNTIMES": str(tmp_path / "no-runtimes")}
    proc = run_cli("render", str(job), "--tiles", "2x2", "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert errors == [f"tilefarm: error: {job}: the file was saved by Blender 5.2, newer than "
                      "every Blender runtime installed (4.5): its frames would differ from the "
                      "artist's; install one with: tilefarm blender install 5.2"]
    assert not (tmp_path / "out" / job.stem).exists()


def test_an_older_file_renders_with_the_nearest_newer_runtime_and_says_so(
        saved: dict[str, list[Path]], tmp_path: Path) -> None:
    """With only 5.2 installed beside tilefarm's 4.5, a 5.0 file renders with 5.2, as opening
    it in 5.2 would, and equals 5.2's own render of it."""
    only = tmp_path / "runtimes"
    only.mkdir()
    (only / "5.2").symlink_to(runtimes.find("5.2").where)
    job = next(j for j in saved["5.0"] if j.name == "v50_plain.blend")
    proc = run_cli("render", str(job), "--tiles", "2x2", "--no-video", "--out",
                   str(tmp_path / "out"), env={"TILEFARM_RUNTIMES": str(only)})
    assert proc.returncode == 0, proc.stderr
    assert ("v50_plain: saved by Blender 5.0, rendered with Blender 5.2, the nearest newer "
            "runtime installed (for an exact match: tilefarm blender install 5.0)"
            ) in proc.stdout.splitlines()
    theirs = reference(job, tmp_path / "ref", runtimes.find("5.2").runner(timeout=600))
    for frame, path in theirs.items():
        assert_identical(tmp_path / "out" / "v50_plain" / "frames" / f"{frame:06d}.png", path)
