"""The local engine: pipelines from specs, jobs per input commit, run in provenance order.

One engine owns a store at a time (an exclusive lock on ``engine.lock``), so a
second engine on the same store is refused instead of corrupting it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tilefarm.engine.datums import Datum, datums
from tilefarm.engine.store import FileInfo, Store, StoreError
from tilefarm.engine.workers import DatumRun, JobWorkers
from tilefarm.errors import TilefarmError
from tilefarm.pipelines.specs import PipelineSpec, parse_spec, provenance_order

ROOT_ENV = "TILEFARM_ROOT"


class EngineBusy(TilefarmError):
    """Another engine holds the store."""


@dataclass
class JobReport:
    id: str
    pipeline: str
    state: str
    total: int
    processed: int
    skipped: int
    failed: int
    error: str | None


Progress = Callable[[str, dict[str, int]], None]  # (job id, counts) on every datum outcome


class Engine:
    def __init__(self, root: Path, *, lock: bool = True) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_file = None
        if lock:
            self._lock_file = (root / "engine.lock").open("a+")
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._lock_file.seek(0)
                holder = self._lock_file.read().strip() or "another process"
                self._lock_file.close()
                raise EngineBusy(f"another tilefarm engine ({holder}) is using this store; wait "
                                 "for it to finish or use another --root", path=root) from None
            self._lock_file.seek(0)
            self._lock_file.truncate()
            self._lock_file.write(f"pid {os.getpid()}")
            self._lock_file.flush()
        self.store = Store(root)
        if lock:
            # Jobs left running by an engine that was killed are over: mark them so.
            self.store.db.execute("UPDATE jobs SET state='killed', finished=? WHERE state='running'",
                                  (time.time(),))
            shutil.rmtree(root / "work", ignore_errors=True)

    def close(self) -> None:
        self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pipelines ---------------------------------------------------------------------------

    def create_pipeline(self, spec: PipelineSpec, *, update: bool = False) -> bool:
        """Create (or with ``update``, replace) a pipeline and its output repo; True if changed."""
        row = self.store.db.execute("SELECT spec, version FROM pipelines WHERE name=?",
                                    (spec.name,)).fetchone()
        if row is not None and not update:
            raise StoreError(f"pipeline {spec.name!r} already exists; use `update pipeline`")
        if row is not None and row["spec"] == spec.text():
            return False
        for repo in spec.input_repos():
            if not self.store.has_repo(repo):
                raise StoreError(f"pipeline {spec.name!r} reads repo {repo!r}, which does not "
                                 "exist; create it first (`tilefarm create repo`)")
        version = (row["version"] + 1) if row is not None else 1
        with self.store.transaction() as db:
            db.execute("INSERT INTO pipelines VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE "
                       "SET spec=excluded.spec, version=excluded.version",
                       (spec.name, spec.text(), version, time.time()))
        self.store.create_repo(spec.name, exist_ok=True)
        return True

    def pipelines(self) -> list[tuple[PipelineSpec, int]]:
        rows = self.store.db.execute("SELECT name, spec, version FROM pipelines").fetchall()
        specs = {r["name"]: (parse_spec(json.loads(r["spec"]), r["name"]), r["version"]) for r in rows}
        return [(s, specs[s.name][1]) for s in provenance_order([v[0] for v in specs.values()])]

    # -- datums --------------------------------------------------------------------------------

    def input_commits(self, spec: PipelineSpec) -> dict[str, str | None]:
        heads = {}
        for repo in spec.input_repos():
            head = self.store.head(repo)
            heads[repo] = head.id if head else None
        return heads

    def list_datums(self, spec: PipelineSpec) -> list[Datum]:
        """The datums ``spec`` has over the current heads of its inputs (a dry run)."""
        def source(pfs: Mapping[str, Any]) -> tuple[list[FileInfo], str | None]:
            head = self.store.head(str(pfs["repo"]), str(pfs.get("branch") or "master"))
            return self.store.files(head.id if head else None), head.id if head else None

        unique: dict[str, Datum] = {}
        for datum in datums(spec.input, source):
            unique.setdefault(datum.id, datum)
        return list(unique.values())

    # -- jobs -------------------------------------------------------------------------------------

    def pending(self, spec: PipelineSpec, version: int) -> dict[str, str | None] | None:
        """The input commits a job should run on, or None if the last such job succeeded."""
        inputs = self.input_commits(spec)
        if all(c is None for c in inputs.values()):
            return None
        done = self.store.db.execute(
            "SELECT 1 FROM jobs WHERE pipeline=? AND version=? AND inputs=? AND state='success'",
            (spec.name, version, json.dumps(inputs, sort_keys=True))).fetchone()
        return None if done else inputs

    def run_pending(self, *, workers: int = 1, progress: Progress | None = None,
                    on_job: Callable[[str, str, int], None] | None = None) -> list[JobReport]:
        """Run every pending job in provenance order until nothing is pending.

        A job whose inputs failed upstream is not attempted: its inputs did not move.
        ``on_job(job, pipeline, total)`` announces each job before it starts.
        """
        reports: list[JobReport] = []
        attempted: set[tuple[str, str]] = set()
        while True:
            started = False
            for spec, version in self.pipelines():
                inputs = self.pending(spec, version)
                if inputs is None:
                    continue
                key = (spec.name, json.dumps(inputs, sort_keys=True))
                if key in attempted:
                    continue
                attempted.add(key)
                reports.append(self.run_job(spec, version, inputs, workers=workers,
                                            progress=progress, on_job=on_job))
                started = True
                break  # re-read provenance: this job may have made downstream work
            if not started:
                return reports

    def run_job(self, spec: PipelineSpec, version: int, inputs: dict[str, str | None], *,
                workers: int = 1, progress: Progress | None = None,
                on_job: Callable[[str, str, int], None] | None = None) -> JobReport:
        job = uuid.uuid4().hex
        all_datums = self.list_datums(spec)
        slots = max(1, min(workers, spec.parallelism))
        db = self.store.db
        db.execute("INSERT INTO jobs (id, pipeline, version, inputs, state, created, started, total,"
                   " workers) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                   (job, spec.name, version, json.dumps(inputs, sort_keys=True), time.time(),
                    time.time(), len(all_datums), slots))
        counts = {"total": len(all_datums), "processed": 0, "skipped": 0, "failed": 0}
        if on_job is not None:
            on_job(job, spec.name, len(all_datums))
        runs = []
        with self.store.transaction() as tx:
            for datum in all_datums:
                done = tx.execute("SELECT 1 FROM datums WHERE pipeline=? AND version=? AND id=? "
                                  "AND state='success' LIMIT 1", (spec.name, version, datum.id)).fetchone()
                state = "skipped" if done else "pending"
                tx.execute("INSERT INTO datums (job, id, pipeline, version, inputs, state) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           (job, datum.id, spec.name, version,
                            json.dumps([[p.name, p.path] for p in datum.parts]), state))
                if done:
                    counts["skipped"] += 1
                else:
                    runs.append(DatumRun(datum))
        self._count(job, counts, progress)

        def finish(run: DatumRun, ok: bool, error: str, pfs: Path) -> None:
            final = ok or run.tries >= spec.tries
            outputs = self._collect(pfs / "out") if ok else []
            with self.store.transaction() as tx:
                if ok:
                    tx.executemany("INSERT OR REPLACE INTO datum_outputs VALUES (?, ?, ?, ?, ?, ?)",
                                   [(spec.name, version, run.datum.id, p, f.hash, f.size)
                                    for p, f in outputs])
                state = "success" if ok else ("failed" if final else "pending")
                tx.execute("UPDATE datums SET state=?, tries=?, finished=?, error=? "
                           "WHERE job=? AND id=?",
                           (state, run.tries, time.time(), error or None, job, run.datum.id))
            if final:
                counts["processed" if ok else "failed"] += 1
                self._count(job, counts, progress)

        threads = max(1, (os.cpu_count() or 1) // slots)
        pool = JobWorkers(self.store, spec, job, runs, slots, finish,
                          self.root / "work" / job, self.root / "logs" / spec.name / job, threads)
        crash = None
        try:
            pool.run()
        except Exception as exc:
            crash = f"the engine failed running datums: {exc.__class__.__name__}: {exc}"
        finally:
            pool.stop()
            shutil.rmtree(self.root / "work" / job, ignore_errors=True)
        return self._close_job(spec, version, job, inputs, counts, crash)

    def _collect(self, out: Path) -> list[tuple[str, FileInfo]]:
        files = []
        for path in sorted(out.rglob("*")):
            if path.is_file():
                files.append(("/" + path.relative_to(out).as_posix(), self.store.add_object(path)))
        return files

    def _count(self, job: str, counts: dict[str, int], progress: Progress | None) -> None:
        with self.store.lock:
            self.store.db.execute("UPDATE jobs SET processed=?, skipped=?, failed=? WHERE id=?",
                                  (counts["processed"], counts["skipped"], counts["failed"], job))
        if progress is not None:
            progress(job, dict(counts))

    def _close_job(self, spec: PipelineSpec, version: int, job: str,
                   inputs: dict[str, str | None], counts: dict[str, int],
                   crash: str | None = None) -> JobReport:
        db = self.store.db
        error = crash
        if counts["failed"] and error is None:
            row = db.execute("SELECT error FROM datums WHERE job=? AND state='failed' LIMIT 1",
                             (job,)).fetchone()
            error = f"{counts['failed']} datum(s) failed: {row['error'] if row else ''}"
        files: dict[str, FileInfo] = {}
        owner: dict[str, str] = {}
        if error is None:
            rows = db.execute("SELECT o.datum, o.path, o.hash, o.size FROM datums d JOIN datum_outputs o "
                              "ON o.pipeline=d.pipeline AND o.version=d.version AND o.datum=d.id "
                              "WHERE d.job=? ORDER BY o.path", (job,)).fetchall()
            for r in rows:
                if r["path"] in owner and owner[r["path"]] != r["datum"]:
                    # Pachyderm 2.x fails the job when two datums write the same path.
                    error = (f"datums {owner[r['path']][:12]} and {r['datum'][:12]} both wrote "
                             f"{r['path']}")
                    break
                owner[r["path"]] = r["datum"]
                files[r["path"]] = FileInfo(r["path"], r["hash"], r["size"])
        head = self.store.head(spec.name)
        state = "failure" if error else "success"
        commit = self.store.write_commit(spec.name, "master", files if not error else {},
                                         parent=head.id if head else None,
                                         state="failed" if error else "finished", job=job,
                                         move_head=not error)
        db.execute("UPDATE jobs SET state=?, finished=?, output=?, error=? WHERE id=?",
                   (state, time.time(), commit.id, error, job))
        return JobReport(job, spec.name, state, counts["total"], counts["processed"],
                         counts["skipped"], counts["failed"], error)
