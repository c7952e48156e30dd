"""Backup copies of straggling datums (engine.backups) on the local engine, with small
Python pipelines: the first copy to finish wins, the other is ended, and the datum is
recorded once. The real thing, a slowed Ray node, is in tests/test_ray.py."""

import os
import textwrap
from pathlib import Path

import pytest
from tilefarm.pipelines.specs import parse_spec

from tests.test_engine import output, put, spec
from tilefarm.engine import backups
from tilefarm.engine.datums import Datum, Part
from tilefarm.engine.engine import Engine
from tilefarm.engine.pools import PlainPool
from tilefarm.engine.workers import DatumRun

# /1.txt's first copy hangs (a straggler) after saying its pid; every other datum, and
# a's backup copy, takes a moment. BACKUP_FAILS: its backup copy fails instead.
STRAGGLE = textwrap.dedent("""
    import os, pathlib, sys, time
    root = pathlib.Path(os.environ["TILEFARM_PFS_ROOT"])
    src = pathlib.Path(os.environ["words"])
    marks = pathlib.Path(os.environ["MARKS"])
    if src.name == "1.txt":
        if not (marks / "first").exists():
            (marks / "first").write_text(str(os.getpid()))
            time.sleep(float(os.environ.get("FIRST_SLEEP", "600")))
        elif os.environ.get("BACKUP_FAILS"):
            sys.exit("the backup copy broke")
    time.sleep(0.3)
    (root / "out" / src.name).write_text(src.read_text().upper())
""")


def farm(tmp_path: Path, **env: str) -> tuple[Engine, PlainPool, Path]:
    pool = PlainPool(2)
    pool.backups = True  # as a Ray pool has them: here both workers share one machine
    engine = Engine(tmp_path / "store", remote=pool)
    engine.store.create_repo("words")
    marks = tmp_path / "marks"
    marks.mkdir()
    s = spec("up", STRAGGLE, datumTries=1)
    s["transform"]["env"] = {"MARKS": str(marks), **env}
    engine.create_pipeline(parse_spec(s, "t"))
    put(engine, tmp_path, {f"/{n}.txt": f"n{n}" for n in range(1, 5)})
    return engine, pool, marks


def render_all(engine: Engine, pool: PlainPool) -> None:
    """Run the job, then close the farm: every datum succeeds once, its output exact."""
    try:
        (report,) = engine.run_pending(workers=2)
        made = output(engine, "up")
    finally:
        engine.close()
        pool.close()
    assert (report.state, report.processed, report.failed) == ("success", 4, 0), report.error
    assert made == {f"/{n}.txt": f"N{n}" for n in range(1, 5)}


def logs(engine: Engine) -> str:
    return "".join(p.read_text() for p in sorted((engine.root / "logs").rglob("*.log")))


def test_a_straggler_gets_a_backup_that_wins_and_its_first_copy_is_ended(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    engine, pool, marks = farm(tmp_path)
    render_all(engine, pool)
    first = int((marks / "first").read_text())
    assert not Path(f"/proc/{first}").exists(), "the losing copy still runs"
    said = logs(engine)
    assert "a backup copy starts" in said and "the backup copy on its worker won" in said
    err = capfd.readouterr().err
    assert "(/1.txt): has run" in err and "the backup copy on its worker won" in err


def test_the_first_copy_wins_when_the_backup_fails(tmp_path: Path) -> None:
    """A copy that fails while the other runs is forgotten: the other decides, and the
    failure costs the datum no try."""
    engine, pool, marks = farm(tmp_path, BACKUP_FAILS="1", FIRST_SLEEP="4")
    render_all(engine, pool)
    said = logs(engine)
    assert "the backup copy broke" in said
    assert said.count("a backup copy starts") == 1  # one backup a try


def datum(path: str) -> DatumRun:
    return DatumRun(Datum.of((Part("blends", "blends", None, path, ()),)))


def test_a_datum_straggles_past_twice_the_median_of_its_own_kind() -> None:
    timings = backups.Timings()
    for seconds in (1.0, 1.2, 9.0):
        timings.record(datum("/shot/tasks/c00001-t0002.json"), seconds)
    timings.record(datum("/shot/tasks/c00001.json"), 30.0)
    assert timings.limit(datum("/shot/tasks/c00007-t0011.json")) == 2.4  # 2 x median
    assert timings.limit(datum("/shot/tasks/c00002.json")) == 60.0  # a chunk is not a tile
    assert timings.limit(datum("/other/tasks/c00001.json")) is None  # nothing finished yet
    assert os.sep == "/"
