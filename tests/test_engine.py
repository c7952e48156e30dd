"""The local engine with small Python pipelines (no Blender): jobs, skipping, retries,
timeouts, failures, collisions, datum batching, the store lock, and the pachctl grammar."""

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tilefarm.pipelines.specs import parse_spec

from tests.conftest import assert_one_line_error, run_cli
from tilefarm.engine.engine import Engine, EngineBusy

# Upper-cases every input file into out/, named after the datum's files.
UPPER = textwrap.dedent("""
    import os, pathlib
    root = pathlib.Path(os.environ["TILEFARM_PFS_ROOT"])
    src = pathlib.Path(os.environ["words"])
    for f in ([src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())):
        out = root / "out" / f.relative_to(root / "words")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f.read_text().upper())
""")


def spec(name: str, code: str, *, repo: str = "words", glob: str = "/*", **extra: Any) -> dict[str, Any]:
    return {"pipeline": {"name": name}, "input": {"pfs": {"repo": repo, "glob": glob, "name": repo}},
            "transform": {"image": "x", "cmd": ["python3", "-c", code]}, "datumTries": 2, **extra}


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    eng = Engine(tmp_path / "store")
    eng.store.create_repo("words")
    yield eng
    eng.close()


def put(engine: Engine, tmp_path: Path, files: dict[str, str]) -> None:
    entries = []
    for path, text in files.items():
        src = tmp_path / "src" / path.strip("/")
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(text)
        entries.append((path, src))
    engine.store.put_files("words", "master", entries)


def output(engine: Engine, repo: str) -> dict[str, str]:
    head = engine.store.head(repo)
    return {f.path: engine.store.object_path(f.hash).read_text()
            for f in engine.store.files(head.id if head else None)}


def test_identical_bytes_are_stored_once(engine: Engine, tmp_path: Path) -> None:
    put(engine, tmp_path, {"/a.txt": "same", "/b.txt": "same", "/c.txt": "other"})
    objects = [p for p in (engine.root / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 2


def test_commits_are_immutable(engine: Engine, tmp_path: Path) -> None:
    put(engine, tmp_path, {"/a.txt": "one"})
    first = engine.store.head("words")
    put(engine, tmp_path, {"/a.txt": "two"})
    assert first is not None
    old = engine.store.files(first.id)
    assert engine.store.object_path(old[0].hash).read_text() == "one"
    assert len(engine.store.commits("words")) == 2


def test_jobs_skip_unchanged_datums_and_carry_outputs(engine: Engine, tmp_path: Path) -> None:
    engine.create_pipeline(parse_spec(spec("upper", UPPER), "t"))
    put(engine, tmp_path, {"/a.txt": "a", "/b.txt": "b", "/dir/c.txt": "c"})
    (report,) = engine.run_pending()
    assert (report.state, report.total, report.processed, report.skipped) == ("success", 3, 3, 0)
    assert output(engine, "upper") == {"/a.txt": "A", "/b.txt": "B", "/dir/c.txt": "C"}
    assert engine.run_pending() == []  # nothing pending
    put(engine, tmp_path, {"/b.txt": "bee"})
    (report,) = engine.run_pending()
    assert (report.processed, report.skipped) == (1, 2)
    assert output(engine, "upper") == {"/a.txt": "A", "/b.txt": "BEE", "/dir/c.txt": "C"}


def test_updating_a_pipeline_keeps_processed_datums_unless_reprocess(engine: Engine,
                                                                    tmp_path: Path) -> None:
    """pachctl's default: ``update pipeline`` keeps the pipeline's salt, so datums it already
    processed are skipped; ``--reprocess`` (or ``"reprocess": true``) draws a new salt
    (pachyderm src/server/pps/server/api_server.go: ``if !request.Reprocess { ...Salt =
    oldPipelineInfo.Details.Salt }``; src/server/pps/cmds/cmds.go: --reprocess)."""
    engine.create_pipeline(parse_spec(spec("upper", UPPER), "t"))
    put(engine, tmp_path, {"/a.txt": "a"})
    engine.run_pending()
    engine.create_pipeline(parse_spec(spec("upper", UPPER + "\n# v2\n"), "t"), update=True)
    (report,) = engine.run_pending()
    assert (report.state, report.processed, report.skipped) == ("success", 0, 1)
    assert output(engine, "upper") == {"/a.txt": "A"}
    engine.create_pipeline(parse_spec(spec("upper", UPPER + "\n# v3\n"), "t"), update=True,
                           reprocess=True)
    (report,) = engine.run_pending()
    assert (report.processed, report.skipped) == (1, 0)
    engine.create_pipeline(parse_spec(spec("upper", UPPER + "\n# v4\n", reprocess=True), "t"),
                           update=True)
    (report,) = engine.run_pending()
    assert (report.processed, report.skipped) == (1, 0)


def test_datum_tries_retry_a_failed_datum(engine: Engine, tmp_path: Path) -> None:
    flag = tmp_path / "failed-once"
    code = (f"import pathlib, sys\nf = pathlib.Path({str(flag)!r})\n"
            "if not f.exists():\n    f.write_text('x'); sys.exit(3)\n" + UPPER)
    engine.create_pipeline(parse_spec(spec("flaky", code), "t"))
    put(engine, tmp_path, {"/a.txt": "a"})
    (report,) = engine.run_pending()
    assert report.state == "success" and output(engine, "flaky") == {"/a.txt": "A"}
    tries = engine.store.db.execute("SELECT tries FROM datums WHERE job=?", (report.id,)).fetchone()
    assert tries[0] == 2


def test_a_failed_datum_fails_the_job_and_stops_downstream(engine: Engine, tmp_path: Path) -> None:
    code = "import os, sys\nsys.exit(1 if os.environ['words'].endswith('bad.txt') else 0)"
    engine.create_pipeline(parse_spec(spec("first", code), "t"))
    engine.create_pipeline(parse_spec(spec("second", UPPER.replace('"words"', '"first"'),
                                           repo="first"), "t"))
    put(engine, tmp_path, {"/good.txt": "g", "/bad.txt": "b"})
    reports = engine.run_pending()
    assert [(r.pipeline, r.state, r.processed, r.failed) for r in reports] == [
        ("first", "failure", 1, 1), ("second", "unrunnable", 0, 0)]
    assert "exited with code 1" in (reports[0].error or "")
    assert reports[1].error == "unrunnable because the following upstream pipelines failed: first"
    assert engine.store.head("second") is None
    assert engine.store.head("first") is None  # the failed commit never became the head
    states = [c.state for c in engine.store.commits("first")]
    assert states == ["failed"]


def test_datum_timeout(engine: Engine, tmp_path: Path) -> None:
    engine.create_pipeline(parse_spec(spec("slow", "import time; time.sleep(30)",
                                           datumTimeout="1s", datumTries=1), "t"))
    put(engine, tmp_path, {"/a.txt": "a"})
    (report,) = engine.run_pending()  # the datum would sleep 30 s: the error says it was cut
    assert report.state == "failure" and "timed out after 1 s (datumTimeout)" in (report.error or "")


def test_two_datums_writing_one_path_fail_the_job(engine: Engine, tmp_path: Path) -> None:
    code = ("import os, pathlib\n"
            "pathlib.Path(os.environ['TILEFARM_PFS_ROOT'], 'out', 'same.txt').write_text('x')")
    engine.create_pipeline(parse_spec(spec("clash", code), "t"))
    put(engine, tmp_path, {"/a.txt": "a", "/b.txt": "b"})
    (report,) = engine.run_pending()
    assert report.state == "failure" and "both wrote /same.txt" in (report.error or "")
    assert engine.store.head("clash") is None


BATCHING = textwrap.dedent("""
    import os, pathlib, time
    from tilefarm.pipelines.worker import next_datum_envs
    pid = os.getpid()
    for done in next_datum_envs():
        root = pathlib.Path(os.environ["TILEFARM_PFS_ROOT"])
        src = pathlib.Path(os.environ["words"])
        if src.name == "die.txt" and not pathlib.Path(os.environ["MARK"]).exists():
            pathlib.Path(os.environ["MARK"]).write_text("x")
            os.kill(pid, 9)  # SIGKILL mid-datum
        (root / "out" / src.name).write_text(f"{pid}")
        done("")
""")


def test_batching_serves_many_datums_per_process_and_survives_sigkill(
        engine: Engine, tmp_path: Path) -> None:
    s = spec("batch", BATCHING, transform=None)
    s["transform"] = {"image": "x", "cmd": ["python3", "-c", BATCHING], "datumBatching": True,
                      "env": {"MARK": str(tmp_path / "killed-once")}}
    s["datumTries"] = 3
    engine.create_pipeline(parse_spec(s, "t"))
    put(engine, tmp_path, {f"/{n}.txt": n for n in ("a", "b", "c", "die", "e", "f")})
    (report,) = engine.run_pending(workers=1)
    assert report.state == "success" and report.processed == 6
    pids = output(engine, "batch")
    assert len(pids) == 6
    assert len(set(pids.values())) == 2  # one process before the kill, one after


def test_workers_run_datums_in_parallel(engine: Engine, tmp_path: Path) -> None:
    """Four workers, four datums: each datum waits until all four have started (a barrier
    of files), which only four datums running at once can pass."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    code = textwrap.dedent(f"""
        import os, pathlib, sys, time
        barrier = pathlib.Path({str(barrier)!r})
        (barrier / os.environ["PACH_DATUM_ID"]).write_text("x")
        deadline = time.monotonic() + 120
        while len(list(barrier.iterdir())) < 4:
            if time.monotonic() > deadline:
                sys.exit("the other datums never started alongside this one")
            time.sleep(0.02)
    """)
    engine.create_pipeline(parse_spec(spec("par", code, parallelismSpec={"constant": 4},
                                           datumTries=1), "t"))
    put(engine, tmp_path, {f"/{n}.txt": "x" for n in range(4)})
    (report,) = engine.run_pending(workers=4)
    assert report.processed == 4, report.error


def test_a_second_engine_is_refused(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(EngineBusy, match="another tilefarm engine .* is using this store"):
        Engine(engine.root)
    proc = run_cli("run", "--root", str(engine.root))
    assert_one_line_error(proc, str(engine.root), "another tilefarm engine")


def test_cli_in_pachctl_grammar(tmp_path: Path) -> None:
    root = ["--root", str(tmp_path / "store")]
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "x.txt").write_text("x")
    (src / "sub" / "y.txt").write_text("y")
    spec_file = tmp_path / "upper.json"
    spec_file.write_text(json.dumps(spec("upper", UPPER)))

    def ok(*args: str) -> str:
        proc = run_cli(*args, *root)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    ok("create", "repo", "words")
    ok("put", "file", "words@master:/one.txt", "-f", str(src / "x.txt"))
    ok("put", "file", "words@master:/tree", "-f", str(src), "-r")
    assert "/tree/" in ok("list", "file", "words@master")
    ok("create", "pipeline", "-f", str(spec_file))
    dry = ok("list", "datum", "-f", str(spec_file))
    assert "words:/one.txt" in dry and "words:/tree" in dry
    assert ok("run").strip().endswith("2 processed, 0 skipped, 0 failed")
    jobs = ok("list", "job")
    job = jobs.splitlines()[1].split()[0]
    assert job.startswith("upper@") and "success" in jobs
    assert json.loads(ok("inspect", "job", job))["state"] == "success"
    assert "success" in ok("list", "datum", job)
    ok("get", "file", "-r", "upper@master:/", "-o", str(tmp_path / "got"))
    assert (tmp_path / "got" / "one.txt").read_text() == "X"
    assert (tmp_path / "got" / "tree" / "sub" / "y.txt").read_text() == "Y"
    assert "upper" in ok("list", "pipeline") and "finished" in ok("list", "commit", "upper")
    status = ok("status")
    assert status.splitlines()[0].split() == ["PIPELINE", "JOB", "STATUS", "PROGRESS", "TASKS",
                                              "STARTED", "ELAPSED", "ETA", "WORKERS"]
    assert "100%" in status and "2/2" in status
    ok("logs", "--pipeline", "upper")
    proc = run_cli("get", "file", "upper@master:/tree", "-o", str(tmp_path / "x"), *root)
    assert_one_line_error(proc, "is a directory; add -r")
    proc = run_cli("put", "file", "nope@master:/a", "-f", str(src / "x.txt"), *root)
    assert_one_line_error(proc, "repo 'nope' does not exist")
