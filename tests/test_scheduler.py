"""Scheduling across jobs (``tilefarm serve``'s shot jobs), with small Python pipelines:
an urgent job overtakes a long one, each shot's downstream runs without waiting for other
shots, and no datum runs twice."""

import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tilefarm.engine.engine import Engine
from tilefarm.engine.shots import ShotScheduler
from tilefarm.pipelines.specs import parse_spec

# /SHOT/job.txt holds N: N task files.
SPLIT = textwrap.dedent("""
    import os, pathlib
    root = pathlib.Path(os.environ["TILEFARM_PFS_ROOT"])
    shot = pathlib.Path(os.environ["blends"])
    for n in range(int((shot / "job.txt").read_text())):
        out = root / "out" / shot.name / "tasks" / f"{n:02d}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"{shot.name} {n}")
""")
# Each task takes a moment, then writes what it rendered.
RENDER_BODY = """
    task = pathlib.Path(os.environ["split"])
    time.sleep(0.25)
    out = root / "out" / task.parts[-3] / "done" / task.name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(task.read_text().upper())
"""
RENDER_PLAIN = textwrap.dedent("""
    import os, pathlib, time
    root = pathlib.Path(os.environ["TILEFARM_PFS_ROOT"])
""") + textwrap.dedent(RENDER_BODY)
RENDER_BATCHING = textwrap.dedent("""
    import os, pathlib, time
    from tilefarm.pipelines.worker import next_datum_envs
    for done in next_datum_envs():
        root = pathlib.Path(os.environ["TILEFARM_PFS_ROOT"])
""") + textwrap.indent(textwrap.dedent(RENDER_BODY), "    ") + "    done('')\n"
# One datum per shot: how many tasks it got.
MERGE = textwrap.dedent("""
    import os, pathlib
    root = pathlib.Path(os.environ["TILEFARM_PFS_ROOT"])
    shot = pathlib.Path(os.environ["render"])
    done = sorted(p.read_text() for p in (shot / "done").iterdir())
    (root / "out" / shot.name).mkdir(parents=True)
    (root / "out" / shot.name / "all.txt").write_text("\\n".join(done))
""")


def pipeline(name: str, repo: str, glob: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"pipeline": {"name": name}, "input": {"pfs": {"repo": repo, "glob": glob}},
            "transform": {"image": "x", "cmd": ["python3", "-c", code]}, **extra}


class MiniFarm:
    """An engine and its shot scheduler, scheduling on every job's end as serve does."""

    def __init__(self, root: Path, batching: bool, workers: int = 1) -> None:
        self.engine = Engine(root, warm=True)
        self.engine.store.create_repo("blends")
        render = pipeline("render", "split", "/*/tasks/*",
                          RENDER_BATCHING if batching else RENDER_PLAIN,
                          parallelismSpec={"constant": 4})
        render["transform"]["datumBatching"] = batching
        for spec in (pipeline("split", "blends", "/*", SPLIT), render,
                     pipeline("merge", "render", "/*", MERGE)):
            self.engine.create_pipeline(parse_spec(spec, spec["pipeline"]["name"]))
        self.wake = threading.Event()
        self.scheduler = ShotScheduler(self.engine, workers, None, self.wake.set)
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping:
            self.scheduler.launch()
            self.wake.wait(timeout=0.1)
            self.wake.clear()

    def put(self, tmp_path: Path, shot: str, tasks: int) -> None:
        src = tmp_path / "src" / shot / "job.txt"
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(str(tasks))
        self.engine.store.put_files("blends", "master", [(f"/{shot}/job.txt", src)])
        self.wake.set()

    def datums(self, pipeline: str, shot: str) -> list[dict[str, Any]]:
        with self.engine.store.lock:
            rows = self.engine.store.db.execute(
                "SELECT d.* FROM datums d JOIN jobs j ON j.id=d.job WHERE d.pipeline=? AND "
                "j.shot=? AND d.state='success'", (pipeline, shot)).fetchall()
        return [dict(r) for r in rows]

    def wait_idle(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if not self.scheduler.busy() and not self.scheduler.index.pending():
                return
        raise AssertionError("the jobs did not end")

    def close(self) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join()
        self.engine.close()


@pytest.mark.parametrize("batching", [False, True], ids=["plain", "batching"])
def test_an_urgent_job_overtakes_a_long_one(tmp_path: Path, batching: bool) -> None:
    """With one worker, an urgent job submitted while a long one renders is split at
    once, its datums go before the long job's next ones, and its merge runs without
    waiting for the long job's renders."""
    farm = MiniFarm(tmp_path / "store", batching)
    try:
        farm.put(tmp_path, "long", 12)
        deadline = time.monotonic() + 60
        while len(farm.datums("render", "long")) < 2:
            assert time.monotonic() < deadline, "the long job never rendered"
            time.sleep(0.05)
        farm.engine.control.set_priority("urgent", 10)
        submitted = time.time()
        farm.put(tmp_path, "urgent", 2)
        farm.wait_idle()

        long_renders = farm.datums("render", "long")
        urgent_renders = farm.datums("render", "urgent")
        assert len(long_renders) == 12 and len(urgent_renders) == 2
        (urgent_merge,) = farm.datums("merge", "urgent")
        long_last = max(d["finished"] for d in long_renders)
        # The urgent job, merge included, ended while the long one still rendered.
        assert urgent_merge["finished"] < long_last
        assert sum(d["started"] > urgent_merge["finished"] for d in long_renders) >= 3
        # Once the urgent job's datums were queued, no long datum started before them.
        with farm.engine.store.lock:
            queued = farm.engine.store.db.execute(
                "SELECT created FROM jobs WHERE pipeline='render' AND shot='urgent'"
            ).fetchone()["created"]
        first = min(d["started"] for d in urgent_renders)
        assert queued > submitted
        assert not [d for d in long_renders if queued < d["started"] < first]
        # Each datum ran once, and each shot's merge saw only its own tasks.
        with farm.engine.store.lock:
            runs = farm.engine.store.db.execute(
                "SELECT pipeline, id, COUNT(*) AS n FROM datums WHERE state='success' "
                "GROUP BY pipeline, id").fetchall()
        assert all(r["n"] == 1 for r in runs)
        head = farm.engine.store.head("merge")
        files = {f.path: farm.engine.store.object_path(f.hash).read_text()
                 for f in farm.engine.store.files(head.id if head else None)}
        assert files["/urgent/all.txt"] == "URGENT 0\nURGENT 1"
        assert sorted(files["/long/all.txt"].splitlines()) == sorted(f"LONG {n}" for n in range(12))
    finally:
        farm.close()


def test_a_new_version_of_a_shot_waits_for_the_old_ones_job(tmp_path: Path) -> None:
    """Put again while its job renders, a shot's new version runs after the old one's job,
    skips the tasks both share, and its merge sees only its own version's tasks."""
    farm = MiniFarm(tmp_path / "store", batching=True)
    try:
        farm.put(tmp_path, "shot", 6)
        deadline = time.monotonic() + 60
        while not farm.datums("render", "shot"):
            assert time.monotonic() < deadline, "the job never rendered"
            time.sleep(0.05)
        farm.put(tmp_path, "shot", 3)
        farm.wait_idle()
        with farm.engine.store.lock:
            jobs = [dict(r) for r in farm.engine.store.db.execute(
                "SELECT * FROM jobs WHERE pipeline='render' ORDER BY created")]
        assert [(j["total"], j["processed"], j["skipped"]) for j in jobs] == [(6, 6, 0),
                                                                             (3, 0, 3)]
        assert jobs[1]["started"] >= jobs[0]["finished"]  # one job per pipeline and shot
        head = farm.engine.store.head("merge")
        (info,) = farm.engine.store.files(head.id if head else None)
        assert farm.engine.store.object_path(info.hash).read_text().splitlines() == [
            "SHOT 0", "SHOT 1", "SHOT 2"]
    finally:
        farm.close()


# Holds about 100 MiB for a moment: a datum whose peak the budget sees.
HUNGRY = textwrap.dedent("""
    import os, pathlib, time
    block = bytearray(100 * 2**20)
    block[::4096] = b"x" * len(block[::4096])
    time.sleep(0.4)
    out = pathlib.Path(os.environ["TILEFARM_PFS_ROOT"]) / "out" / pathlib.Path(os.environ["words"]).name
    out.write_text("done")
""")


def overlaps(rows: list[Any]) -> int:
    """How many datums started while an earlier one still ran."""
    spans = sorted((r["started"], r["finished"]) for r in rows)
    return sum(1 for (_, end), (start, _) in zip(spans, spans[1:]) if start < end)


@pytest.mark.parametrize("budget, together", [(150 * 2**20, False), (2**30, True)],
                         ids=["tight", "roomy"])
def test_the_memory_budget_keeps_datums_from_running_together(
        tmp_path: Path, budget: int, together: bool) -> None:
    """Two workers, datums of about 100 MiB each. The first runs alone (nothing is known
    of it yet); then two run at once only if two fit in the budget."""
    engine = Engine(tmp_path / "store", memory=budget)
    try:
        engine.store.create_repo("words")
        engine.create_pipeline(parse_spec(pipeline("hungry", "words", "/*", HUNGRY,
                                                   parallelismSpec={"constant": 2}), "t"))
        entries = []
        for n in range(5):
            (tmp_path / f"{n}.txt").write_text("x")
            entries.append((f"/{n}.txt", tmp_path / f"{n}.txt"))
        engine.store.put_files("words", "master", entries)
        # The engine's own memory must not count: a child holds its parent's pages between
        # fork and exec (so wait4's ru_maxrss would say at least 300 MiB here).
        ballast = bytearray(300 * 2**20)
        ballast[::4096] = b"x" * len(ballast[::4096])
        (report,) = engine.run_pending(workers=2)
        del ballast
        assert report.processed == 5, report.error
        rows = engine.store.db.execute("SELECT * FROM datums ORDER BY started").fetchall()
        assert all(100 * 2**20 < r["peak_memory"] < 150 * 2**20 for r in rows), [
            r["peak_memory"] for r in rows]
        first = rows[0]
        assert all(r["started"] >= first["finished"] for r in rows[1:])  # the first alone
        assert (overlaps(rows) > 0) is together
    finally:
        engine.close()


def most_at_once(rows: list[Any]) -> int:
    """The most of ``rows`` (datums) that ran at the same moment."""
    edges = sorted([(r["started"], 1) for r in rows] + [(r["finished"], -1) for r in rows])
    most = running = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


@pytest.mark.parametrize("batching", [False, True], ids=["plain", "batching"])
def test_max_workers_caps_a_job_and_frees_the_other_workers(tmp_path: Path,
                                                           batching: bool) -> None:
    """Three workers. The capped job runs one datum at a time; a job that arrives meanwhile
    takes the other two workers. Raised to 3 once that job is done, the capped job runs
    several at once from then."""
    farm = MiniFarm(tmp_path / "store", batching, workers=3)

    def done(shot: str, count: int) -> None:
        deadline = time.monotonic() + 120
        while len(farm.datums("render", shot)) < count:
            assert time.monotonic() < deadline, f"{shot} never rendered {count} datums"
            time.sleep(0.02)

    try:
        farm.engine.control.set_max_workers("capped", 1)
        farm.put(tmp_path, "capped", 16)
        done("capped", 1)
        farm.put(tmp_path, "free", 6)
        done("free", 6)
        raised = time.time()
        farm.engine.control.set_max_workers("capped", 3)
        farm.wait_idle()
        capped = farm.datums("render", "capped")
        free = farm.datums("render", "free")
        assert len(capped) == 16 and len(free) == 6
        before = [d for d in capped if d["started"] < raised]
        after = [d for d in capped if d["started"] >= raised]
        assert most_at_once(before) == 1
        assert most_at_once(before + free) == 3  # the other two workers took free's datums
        assert len(after) >= 2 and most_at_once(after) >= 2
        assert farm.engine.control.running("capped") == 0  # every start was ended
    finally:
        farm.close()
