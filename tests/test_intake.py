"""Production shots on intake (issue 14): every dependency packed, missing files refused
before anything renders, job directories with libraries, settings that name files checked,
and packed jobs rendering bit-identical to Blender's own render of the original in place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import Assets, assert_one_line_error, run_cli
from tests.pipeline import assert_identical, references
from tilefarm.splitter.assets import trace

pytestmark = pytest.mark.blender

# Each renders the same in a packed job as the original does where it lies.
PACKED_CASES = ["relative", "absolute", "parent", "sequence", "library", "cache"]


def test_packed_jobs_render_as_blender_renders_the_original_in_place(
        assets: Assets, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("render", *[str(assets.job(c)) for c in PACKED_CASES], "--tiles", "2x1",
                   "--no-video", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    theirs = references([(assets.blend(case), tmp_path / f"ref-{case}") for case in PACKED_CASES])
    for case, expected in zip(PACKED_CASES, theirs):
        for frame, path in expected.items():
            assert_identical(out / case / "frames" / f"{frame:06d}.png", path)


@pytest.mark.parametrize("case, named", [
    ("missing_texture", "image 'missing.png' in shot.blend names //tex/missing.png"),
    ("missing_library", "library"),
])
def test_missing_files_are_refused_before_rendering(assets: Assets, tmp_path: Path, case: str,
                                                    named: str) -> None:
    out = tmp_path / "out"
    proc = run_cli("render", str(assets.job(case)), "--out", str(out), "--no-video")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "missing" in errors[0] and named in errors[0], proc.stderr
    assert "--allow-missing" in errors[0] and str(assets.blend(case)) in errors[0]
    assert not (out / case).exists()
    assert_one_line_error(run_cli("plan", str(assets.job(case))), "missing", named)


def test_allow_missing_renders_with_a_warning(assets: Assets, tmp_path: Path) -> None:
    proc = run_cli("render", str(assets.job("missing_texture")), "--allow-missing", "--no-video",
                   "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "warning: missing_texture: 1 missing file(s)" in proc.stderr
    assert (tmp_path / "out" / "missing_texture" / "frames" / "000001.png").is_file()


def test_plan_lists_the_dependencies_and_their_size(assets: Assets) -> None:
    proc = run_cli("plan", str(assets.job("library")))
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    paths = {d["path"] for d in plan["dependencies"]}
    assert "lib.blend" in paths and not any(d["missing"] for d in plan["dependencies"])
    assert any(p.startswith("_outside_project/") and p.endswith("props.blend") for p in paths)
    assert plan["dependencies_bytes"] == sum(d["bytes"] for d in plan["dependencies"]) > 0
    assert plan["blend"] == "library/shot.blend"  # the shot, not the library beside it


def test_the_main_blend_of_a_job_with_several(assets: Assets, scenes_dir: Path,
                                              tmp_path: Path) -> None:
    job = tmp_path / "two"
    job.mkdir()
    shutil.copy(scenes_dir / "plain.blend", job / "a.blend")
    shutil.copy(scenes_dir / "odd_size.blend", job / "b.blend")
    shutil.copy(scenes_dir / "odd_size.blend", job / "b.blend1")  # a backup: never a candidate
    assert_one_line_error(run_cli("plan", str(job)), "cannot tell the shot from its libraries",
                          "candidates: a.blend, b.blend", '"blend": "a.blend"')
    (job / "tilefarm.json").write_text(json.dumps({"blend": "b.blend"}))
    proc = run_cli("plan", str(job))
    assert proc.returncode == 0 and json.loads(proc.stdout)["blend"] == "two/b.blend"
    (job / "tilefarm.json").write_text(json.dumps({"blend": "c.blend"}))
    assert_one_line_error(run_cli("plan", str(job)), "tilefarm.json", "'c.blend' is not a "
                          "top-level .blend", "a.blend, b.blend")


@pytest.mark.parametrize("audio, why", [
    ("/etc/hostname", "is not a path inside the job directory"),
    ("../outside.wav", "is not a path inside the job directory"),
    ("gone.wav", "is not a file in the job directory"),
    ("notes.txt", "is not an audio file"),
])
def test_settings_that_name_files_are_checked_on_intake(assets: Assets, tmp_path: Path,
                                                        audio: str, why: str) -> None:
    job = tmp_path / "shot"
    shutil.copytree(assets.job("relative"), job)
    (job / "notes.txt").write_text("x")
    (job / "tilefarm.json").write_text(json.dumps({"video": {"audio": audio}}))
    proc = run_cli("render", str(job), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, str(job / "tilefarm.json"), f"video.audio: {audio!r} {why}")
    assert ".tilefarm" not in proc.stderr  # the user's own path, never the store's


def test_pack_writes_a_self_contained_job(assets: Assets, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    proc = run_cli("pack", str(assets.job("parent")), "-o", str(out), "--tiles", "2x2")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "tilefarm.json").read_text()) == {"tiles": "2x2"}
    deps = trace(out / "shot.blend")
    assert deps and all(d.exists and d.path.startswith("//") and out in d.resolved.parents
                        for d in deps)
    assert_one_line_error(run_cli("pack", str(assets.job("parent")), "-o", str(out)),
                          "is not an empty directory")
    assert_one_line_error(run_cli("pack", str(assets.job("missing_texture")), "-o",
                                  str(tmp_path / "p2")), "missing")
    assert not (tmp_path / "p2").exists()


@pytest.fixture
def scenes_dir(scenes: object) -> Path:
    return Path(scenes["plain"]).parent  # type: ignore[index]


IES_SCENE = '''
import json, os, sys
import bpy
request, result = sys.argv[sys.argv.index("--") + 1:]
job = json.load(open(request))["job"]
bpy.ops.wm.open_mainfile(filepath=os.path.join(job, "shot.blend"))
material = bpy.data.materials.new("Lamp")
material.use_nodes = True
ies = material.node_tree.nodes.new("ShaderNodeTexIES")
ies.mode = "EXTERNAL"
ies.filepath = "//lamp.ies"
next(o for o in bpy.context.scene.objects if o.type == "MESH").data.materials.append(material)
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(job, "shot.blend"))
json.dump({"ok": True, "result": None}, open(result, "w"))
'''


def test_files_the_packer_cannot_trace_are_refused(assets: Assets, tmp_path: Path) -> None:
    """Blender Asset Tracer 1.23 misses an IES file in a material's node tree, which
    bpy.utils.blend_paths lists: such a job is refused, naming the file."""
    from tilefarm.blender.runner import BlenderRunner

    job = tmp_path / "lamp"
    shutil.copytree(assets.job("relative"), job)
    (job / "lamp.ies").write_text("IESNA:LM-63-2002\nTILT=NONE\n")
    script = tmp_path / "ies_scene.py"
    script.write_text(IES_SCENE)
    BlenderRunner(timeout=300).run_script(script, {"job": str(job)}, label="ies-scene")
    assert_one_line_error(run_cli("plan", str(job)), str(job / "shot.blend"),
                          "does not trace", str(job / "lamp.ies"))


def test_intake_traces_and_packs_a_job_once(assets: Assets, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning a job and staging it share one pack, and each .blend is traced once (finding
    the main .blend of a job directory traces each one): the staged files are the ones the
    plan lists, the rewritten shot included."""
    from tilefarm.plan.settings import JobSettings
    from tilefarm.splitter import assets as assets_module
    from tilefarm.splitter import contents, prepare

    calls: dict[str, list[str]] = {"pack": [], "trace": []}

    def counted(name: str, function):  # type: ignore[no-untyped-def]
        def wrapper(blend, *args):  # type: ignore[no-untyped-def]
            calls[name].append(Path(blend).name)
            return function(blend, *args)
        return wrapper

    monkeypatch.setattr(contents, "pack", counted("pack", contents.pack))
    monkeypatch.setattr(assets_module, "_trace", counted("trace", assets_module._trace))
    assets_module._TRACED.clear()
    with prepare.prepared(assets.job("library"), JobSettings(), tmp_path / "staging") as intake:
        [job] = intake.jobs
        staged = {path.split("/", 2)[2]: file for path, file in job.entries}
        listed = {d.path: d.bytes for d in job.plan.dependencies}
        assert listed and all(staged[path].stat().st_size == size
                              for path, size in listed.items())
        assert staged["shot.blend"].is_relative_to(tmp_path / "staging")  # rewritten once
    assert calls["pack"] == ["shot.blend"]
    assert sorted(calls["trace"]) == ["lib.blend", "shot.blend"]


def test_the_splitter_finds_the_facts_of_a_rewritten_blend_cached_by_intake(
        assets: Assets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where packing rewrites the main .blend (a file named by an absolute path, or outside
    the job), intake caches the rewritten file's facts, so the splitter, which inspects the
    packed job, starts no Blender of its own; the cached facts are what Blender reports of the
    packed file where it lies in the job."""
    from tilefarm.blender import runtimes
    from tilefarm.plan.settings import JobSettings
    from tilefarm.splitter.intake import open_job
    from tilefarm.splitter.prepare import prepared
    from tilefarm.splitter.split import FACTS_CACHE_ENV, inspect, job_versions

    cached = set()
    for case in ("relative", "absolute", "absolute_inside", "parent", "sequence", "library"):
        monkeypatch.setenv(FACTS_CACHE_ENV, str(tmp_path / "facts"))
        with prepared(assets.job(case), JobSettings(), tmp_path / "staging" / case) as intake:
            [job] = intake.jobs
            for path, file in job.entries:  # the job as the splitter's datum holds it
                (tmp_path / "packed" / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, tmp_path / "packed" / path.lstrip("/"))
        source = open_job(tmp_path / "packed" / case)
        runner = runtimes.runner_for(job_versions(source).rendered_by)
        before = len(list((tmp_path / "facts").rglob("*.json")))
        found = inspect(source, None, runner)
        if len(list((tmp_path / "facts").rglob("*.json"))) == before:  # a hit: no Blender ran
            cached.add(case)
            monkeypatch.delenv(FACTS_CACHE_ENV)
            assert found == inspect(source, None, runner), case  # Blender's own, no cache
    assert {"relative", "absolute", "absolute_inside", "parent"} <= cached
