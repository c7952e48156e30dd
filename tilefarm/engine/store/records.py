"""The store's records of work: pipelines, jobs, datums, their outputs, and job control.

Every statement the engine, the server and the CLI run on them is here, by what it means.
A function taking ``tx`` runs inside its caller's transaction (``Store.transaction``);
one taking ``store`` holds the store's lock itself.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable

from tilefarm.engine.store import FileInfo, Store

Row = sqlite3.Row


def _one(store: Store, sql: str, *args: object) -> Row | None:
    with store.lock:
        row: Row | None = store.db.execute(sql, args).fetchone()
        return row


def _all(store: Store, sql: str, *args: object) -> list[Row]:
    with store.lock:
        return store.db.execute(sql, args).fetchall()


def _run(store: Store, sql: str, *args: object) -> None:
    with store.lock:
        store.db.execute(sql, args)


# -- pipelines ---------------------------------------------------------------------------------

def pipeline(store: Store, name: str) -> Row | None:
    """``spec``, ``version`` and ``salt`` of a pipeline, or None."""
    return _one(store, "SELECT spec, version, salt FROM pipelines WHERE name=?", name)


def pipelines(store: Store) -> list[Row]:
    return _all(store, "SELECT name, spec, version FROM pipelines")


def put_pipeline(tx: sqlite3.Connection, name: str, spec: str, version: int, salt: int) -> None:
    tx.execute("INSERT INTO pipelines (name, spec, version, created, salt) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT(name) DO UPDATE SET spec=excluded.spec, version=excluded.version, "
               "salt=excluded.salt", (name, spec, version, time.time(), salt))


# -- jobs --------------------------------------------------------------------------------------

def kill_running_jobs(store: Store) -> None:
    """Jobs left running by an engine that was killed are over."""
    _run(store, "UPDATE jobs SET state='killed', finished=? WHERE state='running'", time.time())


def insert_job(store: Store, job: str, pipeline: str, version: int, inputs: str, state: str,
               shot: str | None, *, total: int = 0, workers: int = 0, output: str | None = None,
               error: str | None = None) -> None:
    now = time.time()
    _run(store, "INSERT INTO jobs (id, pipeline, version, inputs, output, state, created, started, "
         "finished, total, workers, error, shot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
         job, pipeline, version, inputs, output, state, now, now,
         now if state != "running" else None, total, workers, error, shot)


def count_job(store: Store, job: str, processed: int, skipped: int, failed: int) -> None:
    _run(store, "UPDATE jobs SET processed=?, skipped=?, failed=? WHERE id=?",
         processed, skipped, failed, job)


def end_job(store: Store, job: str, state: str, output: str, error: str | None) -> None:
    _run(store, "UPDATE jobs SET state=?, finished=?, output=?, error=? WHERE id=?",
         state, time.time(), output, error, job)


def last_success(store: Store, pipeline: str, version: int, inputs: str,
                 shot: str | None) -> Row | None:
    """The newest job of ``pipeline`` that succeeded on exactly ``inputs`` (and shot)."""
    return _one(store, "SELECT id FROM jobs WHERE pipeline=? AND version=? AND inputs=? AND "
                "shot IS ? AND state='success' ORDER BY created DESC LIMIT 1",
                pipeline, version, inputs, shot)


def supersede_jobs(tx: sqlite3.Connection, pipeline: str) -> None:
    """Its successful jobs no longer count: the pipeline runs again on the same inputs."""
    tx.execute("UPDATE jobs SET state='superseded' WHERE pipeline=? AND state='success'",
               (pipeline,))


def jobs(store: Store, pipeline: str | None = None) -> list[Row]:
    """Every job (of ``pipeline``), the newest first."""
    if pipeline is None:
        return _all(store, "SELECT * FROM jobs ORDER BY created DESC")
    return _all(store, "SELECT * FROM jobs WHERE pipeline=? ORDER BY created DESC", pipeline)


def jobs_of_shot(store: Store, shot: str) -> list[Row]:
    """Jobs of ``shot`` or over whole commits (never another shot's), the newest first."""
    return _all(store, "SELECT * FROM jobs WHERE shot IS NULL OR shot=? ORDER BY created DESC",
                shot)


def job_states(store: Store) -> list[Row]:
    """``id, shot, state`` and the counts of every job: what a jobs view can change by."""
    return _all(store, "SELECT id, shot, state, processed, skipped, failed FROM jobs")


def find_job(store: Store, pipeline: str, prefix: str) -> Row | None:
    """The job of ``pipeline`` whose id starts with ``prefix``."""
    return _one(store, "SELECT * FROM jobs WHERE pipeline=? AND id LIKE ?", pipeline,
                prefix + "%")


# -- datums ------------------------------------------------------------------------------------

def datum_succeeded(tx: sqlite3.Connection, pipeline: str, salt: int, datum: str) -> bool:
    """Whether the datum was processed for these inputs already (it is then skipped)."""
    return tx.execute("SELECT 1 FROM datums WHERE pipeline=? AND version=? AND id=? AND "
                      "state='success' LIMIT 1", (pipeline, salt, datum)).fetchone() is not None


def insert_datum(tx: sqlite3.Connection, job: str, datum: str, pipeline: str, salt: int,
                 inputs: list[list[str]], state: str) -> None:
    tx.execute("INSERT INTO datums (job, id, pipeline, version, inputs, state) "
               "VALUES (?, ?, ?, ?, ?, ?)", (job, datum, pipeline, salt, json.dumps(inputs), state))


def start_datum(store: Store, job: str, datum: str) -> None:
    _run(store, "UPDATE datums SET started=? WHERE job=? AND id=?", time.time(), job, datum)


def end_datum(tx: sqlite3.Connection, job: str, datum: str, state: str, tries: int,
              error: str | None, peak: int | None) -> None:
    tx.execute("UPDATE datums SET state=?, tries=?, finished=?, error=?, peak_memory=? "
               "WHERE job=? AND id=?", (state, tries, time.time(), error, peak, job, datum))


def defer_datum(store: Store, job: str, datum: str) -> None:
    _run(store, "UPDATE datums SET state='deferred', finished=? WHERE job=? AND id=?",
         time.time(), job, datum)


def put_outputs(tx: sqlite3.Connection, pipeline: str, salt: int, datum: str,
                outputs: Iterable[tuple[str, FileInfo]]) -> None:
    tx.executemany("INSERT OR REPLACE INTO datum_outputs VALUES (?, ?, ?, ?, ?, ?)",
                   [(pipeline, salt, datum, path, f.hash, f.size) for path, f in outputs])


def job_datums(store: Store, job: str, state: str | None = None) -> list[Row]:
    """The job's datum rows (in a ``state``), by id."""
    if state is None:
        return _all(store, "SELECT * FROM datums WHERE job=? ORDER BY id", job)
    return _all(store, "SELECT * FROM datums WHERE job=? AND state=? ORDER BY id", job, state)


def job_outputs(store: Store, job: str) -> list[Row]:
    """``datum, path, hash, size`` of every output of the job's datums (skipped ones: their
    earlier run's), by path."""
    return _all(store, "SELECT o.datum, o.path, o.hash, o.size FROM datums d JOIN datum_outputs o "
                "ON o.pipeline=d.pipeline AND o.version=d.version AND o.datum=d.id "
                "WHERE d.job=? ORDER BY o.path", job)


def datum_outputs(store: Store, pipeline: str, version: int, datum: str) -> list[FileInfo]:
    return [FileInfo(r["path"], r["hash"], r["size"]) for r in _all(
        store, "SELECT path, hash, size FROM datum_outputs WHERE pipeline=? AND version=? AND "
        "datum=?", pipeline, version, datum)]


def succeeded_datums(store: Store, pipeline: str, salt: int) -> list[Row]:
    """``id, inputs`` of the pipeline's datums that count as done."""
    return _all(store, "SELECT DISTINCT id, inputs FROM datums WHERE pipeline=? AND version=? "
                "AND state='success'", pipeline, salt)


def invalidate_datums(tx: sqlite3.Connection, pipeline: str, salt: int,
                      ids: Iterable[str]) -> None:
    """Forget that these datums succeeded: the next job runs them again."""
    tx.executemany("UPDATE datums SET state='invalidated' WHERE pipeline=? AND version=? AND "
                   "id=? AND state='success'", [(pipeline, salt, i) for i in ids])


def success_peak(store: Store, pipeline: str, version: int, datum: str) -> int | None:
    """The peak memory of the run that made a datum's outputs."""
    row = _one(store, "SELECT peak_memory FROM datums WHERE pipeline=? AND version=? AND id=? "
               "AND state='success' ORDER BY finished DESC LIMIT 1", pipeline, version, datum)
    return row["peak_memory"] if row else None


def shot_peak(store: Store, pipeline: str, shot: str) -> int | None:
    """The largest peak memory of the shot's datums of ``pipeline``, in any job."""
    row = _one(store, "SELECT MAX(d.peak_memory) AS peak FROM datums d JOIN jobs j ON "
               "j.id=d.job WHERE j.pipeline=? AND j.shot=?", pipeline, shot)
    return int(row["peak"]) if row and row["peak"] is not None else None


# -- commits, by what a job looks for --------------------------------------------------------

def commit_seqs(store: Store, repo: str) -> dict[str, int]:
    """Each commit of ``repo`` -> its place in the store's history."""
    return {r["id"]: int(r["seq"]) for r in _all(store, "SELECT id, seq FROM commits WHERE "
                                                 "repo=?", repo)}


def commit_place(store: Store, commit: str) -> tuple[str | None, int]:
    """A commit's parent and its place in the store's history."""
    row = _one(store, "SELECT parent, seq FROM commits WHERE id=?", commit)
    assert row is not None, commit
    return row["parent"], int(row["seq"])


def commit_in(store: Store, repo: str, commit: str) -> bool:
    return _one(store, "SELECT 1 FROM commits WHERE repo=? AND id=?", repo, commit) is not None


def whole_commits(store: Store, repo: str) -> list[Row]:
    """``id, provenance`` of the repo's commits made over whole commits (not by a shot
    job), the newest first."""
    return _all(store, "SELECT id, provenance FROM commits WHERE repo=? AND shot IS NULL "
                "ORDER BY seq DESC", repo)


def shot_commit(store: Store, repo: str, shot: str,
                provenance: dict[str, str | None]) -> Row | None:
    """``id, state`` of the newest commit a job of ``shot`` made from ``provenance``."""
    return _one(store, "SELECT id, state FROM commits WHERE repo=? AND shot=? AND provenance=? "
                "ORDER BY seq DESC LIMIT 1", repo, shot, json.dumps(provenance, sort_keys=True))


# -- job control -------------------------------------------------------------------------------

def control(store: Store, job: str) -> Row | None:
    return _one(store, "SELECT * FROM job_control WHERE job=?", job)


def controls(store: Store) -> list[Row]:
    return _all(store, "SELECT * FROM job_control")


def put_control(store: Store, job: str, priority: int, paused: int, cancelled: int,
                max_workers: int | None, tags: str | None) -> None:
    _run(store, "INSERT INTO job_control (job, priority, paused, cancelled, max_workers, "
         "tags, changed) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(job) DO UPDATE SET "
         "priority=excluded.priority, paused=excluded.paused, cancelled=excluded.cancelled, "
         "max_workers=excluded.max_workers, tags=excluded.tags, changed=excluded.changed",
         job, priority, paused, cancelled, max_workers, tags, time.time())
