"""One job-name rule wherever a job enters: letters, digits, '.', '_' and '-', not starting
with '.' (``tilefarm.splitter.intake.check_job_name``), and the same rule in the manifest
schemas, so a name like ``..`` never reaches a path that is removed or exported to."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from tests.conftest import Scenes, assert_one_line_error, run_cli
from tests.factories import make_facts
from tilefarm.errors import JobSourceError, ManifestError
from tilefarm.plan.model import PixelRect, TileMeta, task_manifest
from tilefarm.plan.planner import make_plan
from tilefarm.plan.schemas import dump, validate
from tilefarm.plan.settings import JobSettings
from tilefarm.splitter.intake import check_job_name, open_job

RULE = "letters, digits, '.', '_' and '-', not starting with '.'"
BAD = ["..", ".", ".x", "", "a b", "a/b", "a\\b", "shot\n", "ünï", "x;rm"]
GOOD = ["shot", "Shot_2", "a.b-c", "-x", "_", "v1.0", "x..y"]


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass(name: str) -> None:
    assert check_job_name(name, "somewhere") == name


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_refused_naming_the_file(name: str) -> None:
    with pytest.raises(JobSourceError) as err:
        check_job_name(name, "/in/put")
    assert str(err.value).startswith("/in/put: job name ") and RULE in str(err.value)


@pytest.mark.parametrize("filename, job", [("...blend", ".."), (".x.blend", ".x"),
                                           (".blend", ""), ("a b.blend", "a b")])
def test_open_job_checks_the_name_before_the_file(tmp_path: Path, filename: str, job: str) -> None:
    entry = tmp_path / filename
    entry.write_bytes(b"not even a blend")  # the name is refused before the content is read
    with pytest.raises(JobSourceError, match=f"job name {job!r} is not allowed"):
        open_job(entry)


def test_a_file_that_is_no_blend_says_so_whatever_its_name(tmp_path: Path) -> None:
    entry = tmp_path / "bad name.txt"
    entry.write_bytes(b"x")
    with pytest.raises(Exception, match="not a .blend file"):
        open_job(entry)


@pytest.mark.parametrize("job", ["..", ".x", "bad name", "a\nb"])
def test_manifests_with_a_bad_job_never_validate(job: str) -> None:
    plan = make_plan("shot", "shot.blend", make_facts(), JobSettings())
    meta = TileMeta(version=1, job="shot", task="c00000", frame=1, tile=0,
                    planned=PixelRect(0, 0, 97, 61), rendered=PixelRect(0, 0, 97, 61),
                    render_seconds=1.0, peak_memory_mb=1.0, blender_version="4.5.0",
                    samples=16, final=None)
    documents = {"plan": dump(plan), "task": dump(task_manifest(plan, plan.tasks[0])),
                 "tile": dump(meta)}
    for schema, document in documents.items():
        validate(schema, document)  # the good one passes
        with pytest.raises(ManifestError, match="job"):
            validate(schema, {**document, "job": job})


@pytest.mark.parametrize("blend", ["../x.blend", "/etc/x.blend", "shot/../x.blend",
                                   "shot/a/b.blend", ".x.blend", "x.blend\n"])
def test_manifests_with_a_blend_outside_its_job_never_validate(blend: str) -> None:
    plan = make_plan("shot", "shot.blend", make_facts(), JobSettings())
    for schema, document in {"plan": dump(plan),
                             "task": dump(task_manifest(plan, plan.tasks[0]))}.items():
        with pytest.raises(ManifestError, match="blend"):
            validate(schema, {**document, "blend": blend})
    validate("plan", dump(dataclasses.replace(plan, blend="shot/my scene.blend")))


# The command line and the splitter stage, as a user and a worker run them.

@pytest.fixture
def bad_jobs(tmp_path: Path, scenes: Scenes) -> Path:
    """Real .blend files under names that are not job names."""
    src = tmp_path / "src"
    (src / "bad name").mkdir(parents=True)
    for name in ("...blend", ".x.blend"):
        shutil.copy(scenes["plain"], src / name)
    shutil.copy(scenes["plain"], src / "bad name" / "scene.blend")
    return src


@pytest.mark.blender
@pytest.mark.parametrize("entry, job", [("...blend", ".."), (".x.blend", ".x"),
                                        ("bad name", "bad name")])
def test_plan_refuses_with_one_line(bad_jobs: Path, entry: str, job: str) -> None:
    proc = run_cli("plan", str(bad_jobs / entry))
    assert_one_line_error(proc, str(bad_jobs / entry), f"job name {job!r} is not allowed", RULE)
    assert proc.stdout == ""


@pytest.mark.blender
def test_plan_in_a_job_directory_names_it(scenes: Scenes, tmp_path: Path) -> None:
    job = tmp_path / "shot_7"
    job.mkdir()
    shutil.copy(scenes["plain"], job / "scene.blend")
    proc = run_cli("plan", ".", cwd=job)
    assert proc.returncode == 0, proc.stderr
    assert '"job": "shot_7"' in proc.stdout and '"blend": "shot_7/scene.blend"' in proc.stdout


@pytest.mark.blender
def test_render_refuses_the_job(bad_jobs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("render", str(bad_jobs / "...blend"), "--out", str(out), "--no-video")
    assert_one_line_error(proc, str(bad_jobs / "...blend"), "job name '..' is not allowed")
    assert "0 of 1 jobs done" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [".tilefarm"]  # nothing exported


@pytest.mark.blender
def test_splitter_stage_fails_the_datum_with_one_line(bad_jobs: Path, tmp_path: Path) -> None:
    pfs = tmp_path / "pfs"
    shutil.copytree(bad_jobs, pfs / "blends")
    for entry, job in (("...blend", ".."), (".x.blend", ".x"), ("bad name", "bad name")):
        proc = run_cli("-m", "tilefarm.splitter", "--pfs-root", str(pfs),
                       env={"blends": f"/pfs/blends/{entry}"})
        assert_one_line_error(proc, f"blends/{entry}", f"job name {job!r} is not allowed")
    assert not (pfs / "out").exists() or not any((pfs / "out").iterdir())


def test_fetch_refuses_a_bad_job_name_before_connecting(tmp_path: Path) -> None:
    proc = run_cli("fetch", "..", "--pachd", "127.0.0.1:1", "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "job name '..' is not allowed", RULE)
    assert not (tmp_path / "o").exists()
