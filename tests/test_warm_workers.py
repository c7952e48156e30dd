"""Warm workers (``engine.warm``) with small Python pipelines (no Blender): a process that
dies before asking or while its datum is recorded, and processes started before their
pipeline's first job (``Engine.prestart``)."""

import json
import textwrap
from pathlib import Path
from typing import Any

from tilefarm.pipelines.specs import parse_spec

from tests.serverkit import wait_for
from tests.test_engine import output, put, spec
from tilefarm.engine.engine import Engine


# Two warm workers: the first to start serves the slow datum, and while it does the other
# dies without asking for a datum (once); the slow one writes its output only after the
# engine has charged that early exit to another datum.
WARM_TRAMPLE = textwrap.dedent("""
    import os, pathlib, sys, time
    from tilefarm.pipelines.worker import next_datum_envs
    marks = pathlib.Path(os.environ["MARKS"])
    try:
        os.close(os.open(marks / "first", os.O_CREAT | os.O_EXCL))
        first = True
    except FileExistsError:
        first = False
    if not first and not (marks / "died").exists():
        while not (marks / "serving").exists():
            time.sleep(0.02)
        (marks / "died").write_text("x")
        sys.exit(5)  # exits before asking for a datum, while the other serves one
    for done in next_datum_envs():
        root = pathlib.Path(os.environ["TILEFARM_PFS_ROOT"])
        src = pathlib.Path(os.environ["words"])
        if src.name == "a_slow.txt":
            (marks / "serving").write_text("x")
            while not (marks / "charged").exists():  # the engine has charged the early exit
                time.sleep(0.02)
        (root / "out" / src.name).write_text(src.read_text().upper())
        done("")
""")


def test_a_warm_worker_dying_early_leaves_the_others_work_alone(tmp_path: Path) -> None:
    """A warm worker that exits before asking for a datum costs one try of the next datum,
    and nothing else: the datum another worker is serving meanwhile keeps its directory,
    and its output is committed whole."""
    from tilefarm.engine import warm as warm_module

    engine = Engine(tmp_path / "store", warm=True)
    try:
        engine.store.create_repo("words")
        marks = tmp_path / "marks"
        marks.mkdir()
        s = spec("up", WARM_TRAMPLE, parallelismSpec={"constant": 2}, datumTries=3)
        s["transform"].update(datumBatching=True, env={"MARKS": str(marks)})
        engine.create_pipeline(parse_spec(s, "t"))
        put(engine, tmp_path, {"/a_slow.txt": "slow", "/b.txt": "b", "/c.txt": "c"})
        charge = warm_module.JobWorkers.finish

        def finish(self: Any, run: Any, ok: bool, error: str, pfs: Path) -> None:
            charge(self, run, ok, error, pfs)
            if "before asking for a datum" in error:
                (marks / "charged").write_text("x")

        warm_module.JobWorkers.finish = finish  # type: ignore[method-assign]
        try:
            (report,) = engine.run_pending(workers=2)
        finally:
            warm_module.JobWorkers.finish = charge  # type: ignore[method-assign]
        assert (marks / "died").exists() and (marks / "charged").exists()
        assert report.state == "success", report.error
        assert output(engine, "up") == {"/a_slow.txt": "SLOW", "/b.txt": "B", "/c.txt": "C"}
        tries = {json.loads(r["inputs"])[0][1]: (r["tries"], r["error"]) for r in
                 engine.store.db.execute("SELECT inputs, tries, error FROM datums")}
        assert tries["/a_slow.txt"] == (1, None)  # its directory was never taken from under it
        assert sorted(t for t, _ in tries.values()) == [1, 1, 2]  # one charged try, no more
    finally:
        engine.close()


# Marks its start (a file named by its pid, holding the Blender series it was told to
# boot), then serves datums: each output is the serving pid.
WARM_EARLY = textwrap.dedent("""
    import os, pathlib
    from tilefarm.pipelines.worker import next_datum_envs
    marks = pathlib.Path(os.environ["MARKS"])
    (marks / f"started-{os.getpid()}").write_text(os.environ.get("TILEFARM_WARM_BLENDER", ""))
    for done in next_datum_envs():
        root = pathlib.Path(os.environ["TILEFARM_PFS_ROOT"])
        src = pathlib.Path(os.environ["words"])
        (root / "out" / src.name).write_text(str(os.getpid()))
        done("")
""")


def test_processes_started_before_the_first_job_serve_it(tmp_path: Path) -> None:
    """``render`` starts each pipeline's warm processes before its first job (Engine.prestart;
    the first stages beside intake, the others after): they start before any job, wait for
    one, and serve its datums, with the pipeline's environment and the Blender series they
    are told to boot."""
    engine = Engine(tmp_path / "store", warm=True)
    try:
        engine.store.create_repo("words")
        marks, later = tmp_path / "marks", tmp_path / "later"
        for name, folder in (("up", marks), ("later", later)):
            folder.mkdir()
            s = spec(name, WARM_EARLY, parallelismSpec={"constant": 2})
            s["transform"].update(datumBatching=True, env={"MARKS": str(folder)})
            engine.create_pipeline(parse_spec(s, "t"))
        engine.prestart(workers=2, series="4.5", only={"up"})  # `render`: the first stages
        started = wait_for(lambda: (found := list(marks.glob("started-*"))) and len(found) == 2
                           and found, 60, "both processes to start")
        assert {p.read_text() for p in started} == {"4.5"}
        assert not list(later.iterdir())  # not asked for yet
        engine.prestart(workers=2)  # then the others; those started are left as they are
        wait_for(lambda: len(list(later.glob("started-*"))) == 2, 60, "the later ones to start")
        put(engine, tmp_path, {f"/{n}.txt": n for n in "abcd"})
        reports = engine.run_pending(workers=2)
        assert [(r.state, r.processed) for r in reports] == [("success", 4)] * 2
        early = {p.name.removeprefix("started-") for p in started}
        assert set(output(engine, "up").values()) <= early  # no process started for the job
        assert len(list(marks.glob("started-*"))) == 2
    finally:
        engine.close()


# Writes its pid on start; a process started after the first marks that it restarted.
WARM_ASK_AND_DIE = textwrap.dedent("""
    import os, pathlib
    from tilefarm.pipelines.worker import next_datum_envs
    marks = pathlib.Path(os.environ["MARKS"])
    if (marks / "pid").exists():
        (marks / "restarted").write_text("x")
    else:
        (marks / "pid").write_text(str(os.getpid()))
    for done in next_datum_envs():
        root = pathlib.Path(os.environ["TILEFARM_PFS_ROOT"])
        src = pathlib.Path(os.environ["words"])
        (root / "out" / src.name).write_text(src.read_text().upper())
        done("")
""")


def test_a_warm_worker_killed_while_its_datum_is_recorded_hands_its_next_datum_on(
        tmp_path: Path) -> None:
    """The process dies just after reporting a datum done, while the engine records it:
    the datum it would have been handed next goes to the process started in its place,
    never to the dead one (whose successor would then report it done, with no outputs)."""
    import os
    import signal
    import time

    from tilefarm.engine import warm as warm_module

    engine = Engine(tmp_path / "store", warm=True)
    try:
        engine.store.create_repo("words")
        marks = tmp_path / "marks"
        marks.mkdir()
        s = spec("up", WARM_ASK_AND_DIE, datumTries=1)
        s["transform"].update(datumBatching=True, env={"MARKS": str(marks)})
        engine.create_pipeline(parse_spec(s, "t"))
        put(engine, tmp_path, {f"/{n}.txt": n for n in ("a", "b", "c")})
        charge = warm_module.JobWorkers.finish

        def finish(self: Any, run: Any, ok: bool, error: str, pfs: Path) -> None:
            if ok and not (marks / "killed").exists():
                (marks / "killed").write_text("x")
                os.kill(int((marks / "pid").read_text()), signal.SIGKILL)
                deadline = time.monotonic() + 60
                while not (marks / "restarted").exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            charge(self, run, ok, error, pfs)

        warm_module.JobWorkers.finish = finish  # type: ignore[method-assign]
        try:
            (report,) = engine.run_pending(workers=1)
        finally:
            warm_module.JobWorkers.finish = charge  # type: ignore[method-assign]
        assert (marks / "restarted").exists()
        assert report.state == "success", report.error
        assert output(engine, "up") == {"/a.txt": "A", "/b.txt": "B", "/c.txt": "C"}
    finally:
        engine.close()
