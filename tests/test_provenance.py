"""Jobs run only on provenance-consistent inputs (Pachyderm 2.x commit sets): a downstream
job never combines a new input commit with an old output of a failed upstream; it is
recorded as unrunnable naming the upstream, and branches keep their last good output.

Pachyderm: src/server/pps/server/registry.go processJobStarting/failedInputs mark such a
job JOB_UNRUNNABLE, "unrunnable because the following upstream pipelines failed: <names>",
and finish its commit with that error, so the failure cascades (pachyderm_test.go
TestInputFailure)."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Scenes, run_cli
from tests.test_engine import output
from tilefarm.cli.render_cmd import ensure_pipelines, export
from tilefarm.engine.engine import Engine
from tilefarm.errors import TilefarmError
from tilefarm.pipelines.specs import packaged_specs, parse_spec

# up: "up saw <text>" for each file of a; fails on a file reading "bad".
UP = textwrap.dedent("""
    import os, pathlib, sys
    src = pathlib.Path(os.environ["a"])
    text = src.read_text()
    if text == "bad":
        sys.exit("up refuses bad input")
    (pathlib.Path(os.environ["TILEFARM_PFS_ROOT"]) / "out" / src.name).write_text("up saw " + text)
""")
# down: a cross of a and up: "<a's text> | <up's text>".
DOWN = textwrap.dedent("""
    import os, pathlib
    a = pathlib.Path(os.environ["a"]).read_text()
    up = pathlib.Path(os.environ["up"]).read_text()
    (pathlib.Path(os.environ["TILEFARM_PFS_ROOT"]) / "out" / "result").write_text(f"{a} | {up}")
""")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path / "store")
    eng.store.create_repo("words")
    yield eng
    eng.close()


def diamond(engine: Engine) -> None:
    engine.store.create_repo("a")
    engine.create_pipeline(parse_spec({
        "pipeline": {"name": "up"}, "input": {"pfs": {"repo": "a", "glob": "/*"}},
        "transform": {"cmd": ["python3", "-c", UP]}, "datumTries": 1}, "up"))
    engine.create_pipeline(parse_spec({
        "pipeline": {"name": "down"},
        "input": {"cross": [{"pfs": {"repo": "a", "glob": "/*"}},
                            {"pfs": {"repo": "up", "glob": "/*"}}]},
        "transform": {"cmd": ["python3", "-c", DOWN]}, "datumTries": 1}, "down"))


def put_a(engine: Engine, tmp_path: Path, text: str) -> None:
    src = tmp_path / "x"
    src.write_text(text)
    engine.store.put_files("a", "master", [("/x", src)])


def test_diamond_never_mixes_a_new_input_with_an_old_upstream_output(engine: Engine,
                                                                      tmp_path: Path) -> None:
    diamond(engine)
    put_a(engine, tmp_path, "v1")
    assert [r.state for r in engine.run_pending()] == ["success", "success"]
    assert output(engine, "down") == {"/result": "v1 | up saw v1"}

    put_a(engine, tmp_path, "bad")
    reports = engine.run_pending()
    assert [(r.pipeline, r.state) for r in reports] == [("up", "failure"), ("down", "unrunnable")]
    assert reports[1].error == "unrunnable because the following upstream pipelines failed: up"
    # Both branches keep their last good output; nothing reads "bad | up saw v1".
    assert output(engine, "down") == {"/result": "v1 | up saw v1"}
    assert output(engine, "up") == {"/x": "up saw v1"}
    head = engine.store.head("down")
    assert head is not None and head.provenance == {"a": engine.store.commits("a")[1].id}

    put_a(engine, tmp_path, "v3")
    assert [r.state for r in engine.run_pending()] == ["success", "success"]
    assert output(engine, "down") == {"/result": "v3 | up saw v3"}


def test_unrunnable_cascades_naming_the_immediate_upstream(engine: Engine,
                                                           tmp_path: Path) -> None:
    diamond(engine)
    engine.create_pipeline(parse_spec({
        "pipeline": {"name": "last"}, "input": {"pfs": {"repo": "down", "glob": "/"}},
        "transform": {"cmd": ["python3", "-c", "pass"]}}, "last"))
    put_a(engine, tmp_path, "bad")
    reports = engine.run_pending()
    assert [(r.pipeline, r.state) for r in reports] == [
        ("up", "failure"), ("down", "unrunnable"), ("last", "unrunnable")]
    assert reports[2].error == "unrunnable because the following upstream pipelines failed: down"
    assert engine.run_pending()[0].pipeline == "up"  # a rerun retries the failed job


def test_run_exits_non_zero_when_a_job_could_not_run(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with Engine(root) as eng:
        diamond(eng)
        put_a(eng, tmp_path, "bad")
    proc = run_cli("run", "--root", str(root))
    assert proc.returncode == 1
    assert "down@" in proc.stdout and "unrunnable because the following upstream pipelines " \
        "failed: up" in proc.stdout


def test_concurrent_puts_lose_nothing(engine: Engine, tmp_path: Path) -> None:
    """pachd's ModifyFile reads the branch head inside its write: two puts both land."""
    sources = []
    for n in range(8):
        src = tmp_path / f"f{n}"
        src.write_text(str(n))
        sources.append(src)
    threads = [threading.Thread(target=engine.store.put_files,
                                args=("words", "master", [(f"/f{n}", src)]))
               for n, src in enumerate(sources)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    head = engine.store.head("words")
    assert head is not None
    assert sorted(f.path for f in engine.store.files(head.id)) == sorted(f"/f{n}" for n in range(8))
    assert len(engine.store.commits("words")) == 8


# The renderer stage, failing on any datum whose job carries a FAIL file (a new version).
FAILING_RENDERER = textwrap.dedent("""
    import os, pathlib, runpy, sys
    blends = pathlib.Path(os.environ.get("TILEFARM_PFS_ROOT", "/pfs")) / "blends"
    if any(blends.rglob("FAIL")):
        sys.exit("renderer: error: this version of the job does not render")
    sys.argv = ["renderer"]
    runpy.run_module("tilefarm.renderer", run_name="__main__")
""")


@pytest.mark.blender
def test_renderer_failing_on_a_new_blend_version_merges_no_old_tiles(scenes: Scenes,
                                                                     tmp_path: Path) -> None:
    root, out = tmp_path / "store", tmp_path / "out"
    job = tmp_path / "shot"
    job.mkdir()
    (job / "shot.blend").write_bytes(scenes["plain"].read_bytes())
    (job / "tilefarm.json").write_text(json.dumps({"frames": "1", "tiles": "2x1"}))
    with Engine(root) as eng:
        ensure_pipelines(eng)
        renderer = next(s for s in packaged_specs() if s.name == "renderer").raw
        renderer["transform"]["cmd"] = ["python3", "-c", FAILING_RENDERER]
        renderer["transform"]["datumBatching"] = False  # one process per datum, checked each
        renderer["datumTries"] = 1
        eng.create_pipeline(parse_spec(renderer, "renderer"), update=True)
        eng.store.put_files("blends", "master", [(f"/shot/{p.name}", p) for p in job.iterdir()])
        assert all(r.state == "success" for r in eng.run_pending())
        assert "1 frames" in export(eng.store, "shot", out, video=True)

        (job / "FAIL").write_text("x")
        eng.store.put_files("blends", "master", [("/shot/FAIL", job / "FAIL")])
        reports = eng.run_pending()
        states = {r.pipeline: r.state for r in reports}
        assert states == {"splitter": "success", "renderer": "failure",
                          "merger": "unrunnable", "encoder": "unrunnable"}
        merger_jobs = eng.store.db.execute("SELECT state FROM jobs WHERE pipeline='merger' "
                                           "ORDER BY created").fetchall()
        assert [r["state"] for r in merger_jobs] == ["success", "unrunnable"]
        with pytest.raises(TilefarmError, match="not from this version of the jobs"):
            export(eng.store, "shot", tmp_path / "out2", video=True)
    assert not (tmp_path / "out2").exists()
