"""The local engine: pipelines from specs, jobs per input commit, run in provenance order.

Jobs run only on provenance-consistent inputs, as Pachyderm 2.x commit sets guarantee:
every input of a job traces back to the same commits of the origin repos (those no
pipeline writes). When an upstream job fails, the downstream job of that commit set is
not run: it is recorded as ``unrunnable`` naming the failed upstream pipelines (pachd's
JOB_UNRUNNABLE, "unrunnable because the following upstream pipelines failed: ...";
``src/server/pps/server/registry.go`` processJobStarting), its output commit fails too so
the failure reaches further down, and every branch keeps its last good output.

One engine owns a store at a time (an exclusive lock on ``engine.lock``), so a
second engine on the same store is refused instead of corrupting it.

``tilefarm serve`` runs jobs by shot instead (``engine.shots``): a job with
``Inputs.shot`` runs on that shot's datums only and replaces only that shot's files in
its output commit.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tilefarm.blender.runtimes import WARM_ENV
from tilefarm.engine.budget import MemoryBudget
from tilefarm.engine.commits import conflicts, job_error, job_files
from tilefarm.engine.control import Control, shot_of_inputs
from tilefarm.engine.datums import Datum, datums
from tilefarm.engine.pools import SharedPool
from tilefarm.engine.provenance import Inputs, resolve
from tilefarm.engine.store import Commit, FileInfo, Store, StoreError, in_shot, records
from tilefarm.engine.spawn import stage_env, threads_each
from tilefarm.engine.warm import WarmPool, WarmPools
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
    def __init__(self, root: Path, *, lock: bool = True, warm: bool = False,
                 memory: int | None = None, remote: SharedPool | None = None) -> None:
        """``memory``: the budget of every datum running at once, in bytes (engine.budget;
        ``serve`` and ``render`` give one). None: no budget, as in Pachyderm (``run``).
        ``remote``: slots on other machines that run every pipeline's datums instead of
        this machine (``tilefarm.nodes.pool``: a Ray cluster; budgets are its nodes')."""
        self.root = root.resolve()
        self.budget = MemoryBudget(memory) if memory is not None else None
        self.remote = remote
        # Batching workers kept alive between jobs (tilefarm serve): engine.warm.
        self.warm = WarmPools(self.root / "work") if warm else None
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
        self.control = Control(self.store)
        self.closing = threading.Event()
        self._settling: list[threading.Thread] = []  # work directories removed behind
        if lock:
            # Jobs left running by an engine that was killed are over: mark them so.
            records.kill_running_jobs(self.store)
            shutil.rmtree(root / "work", ignore_errors=True)

    def close(self) -> None:
        self.closing.set()
        for thread in self._settling:
            thread.join()
        if self.warm is not None:
            self.warm.close()
        if self.remote is not None:
            self.remote.close()
        self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pipelines ---------------------------------------------------------------------------

    def create_pipeline(self, spec: PipelineSpec, *, update: bool = False,
                        reprocess: bool = False) -> bool:
        """Create (or with ``update``, replace) a pipeline and its output repo; True if changed.

        An update keeps the datums the pipeline already processed, as ``pachctl update
        pipeline`` keeps its salt (``api_server.go``: the old ``Details.Salt`` unless
        ``Reprocess``); ``reprocess`` (or ``"reprocess": true`` in the spec) starts afresh."""
        row = records.pipeline(self.store, spec.name)
        if row is not None and not update:
            raise StoreError(f"pipeline {spec.name!r} already exists; use `update pipeline`")
        reprocess = reprocess or bool(spec.raw.get("reprocess"))
        if row is not None and row["spec"] == spec.text() and not reprocess:
            return False
        for repo in spec.input_repos():
            if not self.store.has_repo(repo):
                raise StoreError(f"pipeline {spec.name!r} reads repo {repo!r}, which does not "
                                 "exist; create it first (`tilefarm create repo`)")
        version = (row["version"] + 1) if row is not None else 1
        # The salt is the version whose datums still count: datum results are kept by it.
        salt = version if row is None or reprocess else (row["salt"] or row["version"])
        with self.store.transaction() as tx:
            records.put_pipeline(tx, spec.name, spec.text(), version, salt)
        self.store.create_repo(spec.name, exist_ok=True)
        return True

    def pipelines(self) -> list[tuple[PipelineSpec, int]]:
        rows = records.pipelines(self.store)
        specs = {r["name"]: (parse_spec(json.loads(r["spec"]), r["name"]), r["version"]) for r in rows}
        return [(s, specs[s.name][1]) for s in provenance_order([v[0] for v in specs.values()])]

    def salt(self, pipeline: str) -> int:
        row = records.pipeline(self.store, pipeline)
        assert row is not None, pipeline
        return int(row["salt"] or row["version"])

    # -- provenance ----------------------------------------------------------------------------

    def resolve(self, spec: PipelineSpec) -> Inputs | None:
        """The inputs a job of ``spec`` runs on now (``provenance.resolve``)."""
        return resolve(self.store, {s.name: s for s, _ in self.pipelines()}, spec)

    # -- datums --------------------------------------------------------------------------------

    def list_datums(self, spec: PipelineSpec, commits: Mapping[str, str | None] | None = None,
                    shot: str | None = None) -> list[Datum]:
        """The datums ``spec`` has over ``commits`` (input repo -> commit), by default the
        current heads of its inputs (a dry run); with ``shot``, over that shot's files only."""
        def source(pfs: Mapping[str, Any]) -> tuple[list[FileInfo], str | None]:
            repo = str(pfs["repo"])
            if commits is not None:
                commit = commits.get(repo)
            else:
                head = self.store.head(repo, str(pfs.get("branch") or "master"))
                commit = head.id if head else None
            files = self.store.files(commit)
            if shot is not None:
                files = [f for f in files if in_shot(f.path, shot)]
            return files, commit

        unique: dict[str, Datum] = {}
        for datum in datums(spec.input, source):
            unique.setdefault(datum.id, datum)
        return list(unique.values())

    # -- jobs -------------------------------------------------------------------------------------

    def pending(self, spec: PipelineSpec, version: int) -> Inputs | None:
        """The inputs a job should run on, or None if nothing is to run (the last job on
        them succeeded, the inputs are empty, or an upstream has yet to run)."""
        inputs = self.resolve(spec)
        if inputs is None or all(c is None for c in inputs.commits.values()):
            return None
        return inputs if self.wanted(spec, version, inputs) else None

    def wanted(self, spec: PipelineSpec, version: int, inputs: Inputs) -> bool:
        """Whether a job of ``spec`` on ``inputs`` is to run: none succeeded on them, or the
        last one deferred datums of a shot that has been resumed since."""
        done = records.last_success(self.store, spec.name, version, inputs.key(), inputs.shot)
        if done is None:
            return True
        deferred = records.job_datums(self.store, done["id"], "deferred")
        if not deferred:
            return False
        # Datums deferred by a pause or cancel run again once their shot is resumed.
        waiting = {shot_of_inputs(r["inputs"]) for r in deferred}
        return bool(waiting - self.control.held())

    def run_pending(self, *, workers: int = 1, progress: Progress | None = None,
                    on_job: Callable[[str, str, int], None] | None = None,
                    release: bool = False) -> list[JobReport]:
        """Run every pending job in provenance order until nothing is pending.

        A job whose inputs failed upstream is not attempted: its inputs did not move.
        ``on_job(job, pipeline, total)`` announces each job before it starts. ``release``
        (``render``, whose inputs are all put before): a pipeline's warm processes close
        behind the next jobs once neither it nor a pipeline before it has a job left.
        """
        reports: list[JobReport] = []
        attempted: set[tuple[str, str]] = set()
        while True:
            started = False
            for index, (spec, version) in enumerate(pipelines := self.pipelines()):
                inputs = self.pending(spec, version)
                if inputs is None:
                    continue
                key = (spec.name, inputs.key())
                if key in attempted:
                    continue
                attempted.add(key)
                if release and self.warm is not None:
                    for done, _ in pipelines[:index]:
                        if (closing := self.warm.release(done.name)) is not None:
                            self._settling.append(closing)
                if inputs.failed:
                    reports.append(self.unrunnable(spec, version, inputs))
                else:
                    reports.append(self.run_job(spec, version, inputs, workers=workers,
                                                progress=progress, on_job=on_job))
                started = True
                break  # re-read provenance: this job may have made downstream work
            if not started:
                return reports

    def prestart(self, workers: int = 1, series: str | None = None,
                 only: Collection[str] | None = None) -> None:
        """Start every batching pipeline's warm processes now, before its first job (``render``
        starts them beside intake). ``series``: the Blender the renderer's processes boot at
        once (``WARM_ENV``); ``only``: these pipelines' (a pool already started is left)."""
        chosen = [spec for spec, _ in self.pipelines() if only is None or spec.name in only]
        if self.remote is not None:  # each worker slot of a Ray cluster (RayPool.warm_up)
            self.remote.warm_up([spec for spec in chosen if spec.batching], series)
        if self.warm is None:
            return
        for spec in chosen:
            pool = self.warm.get(spec, slots := spec.slots(workers))
            if isinstance(pool, WarmPool):
                env = stage_env(spec, threads_each(slots))
                if series is not None:
                    env[WARM_ENV] = series
                pool.prestart(spec, env, self.root / "logs" / spec.name)

    def unrunnable(self, spec: PipelineSpec, version: int, inputs: Inputs) -> JobReport:
        """Record a job that cannot run because an upstream job of its commit set failed;
        its output commit fails too (so the failure reaches further down) and the branch
        keeps its last good output."""
        job = uuid.uuid4().hex
        error = ("unrunnable because the following upstream pipelines failed: "
                 + ", ".join(inputs.failed))
        commit = self._write_output(spec, inputs, {}, job, ok=False)
        records.insert_job(self.store, job, spec.name, version, inputs.key(), "unrunnable",
                           inputs.shot, output=commit.id, error=error)
        return JobReport(job, spec.name, "unrunnable", 0, 0, 0, 0, error)

    def run_job(self, spec: PipelineSpec, version: int, inputs: Inputs, *,
                workers: int = 1, progress: Progress | None = None,
                on_job: Callable[[str, str, int], None] | None = None,
                rank: int = 0) -> JobReport:
        """Run one job; ``rank`` orders its datums after those of lower rank among equal
        priorities, in slots shared with the pipeline's other running jobs."""
        job = uuid.uuid4().hex
        with self.store.lock:
            salt = self.salt(spec.name)
            all_datums = self.list_datums(spec, inputs.commits, inputs.shot)
        slots = spec.slots(workers)
        records.insert_job(self.store, job, spec.name, version, inputs.key(), "running",
                           inputs.shot, total=len(all_datums), workers=slots)
        counts = {"total": len(all_datums), "processed": 0, "skipped": 0, "failed": 0,
                  "deferred": 0}
        if on_job is not None:
            on_job(job, spec.name, len(all_datums))
        runs = []
        with self.store.transaction() as tx:
            for datum in all_datums:
                done = records.datum_succeeded(tx, spec.name, salt, datum.id)
                state = "skipped" if done else "pending"
                records.insert_datum(tx, job, datum.id, spec.name, salt,
                                     [[p.name, p.path] for p in datum.parts], state)
                if done:
                    counts["skipped"] += 1
                else:
                    runs.append(DatumRun(datum))
        self._count(job, counts, progress)

        def finish(run: DatumRun, ok: bool, error: str, pfs: Path) -> None:
            final = run.final
            outputs = self._collect(pfs / "out") if ok else []
            with self.store.transaction() as tx:
                if ok:
                    records.put_outputs(tx, spec.name, salt, run.datum.id, outputs)
                state = "success" if ok else ("failed" if final else "pending")
                records.end_datum(tx, job, run.datum.id, state, run.tries, error or None,
                                  run.peak)
            if final:
                counts["processed" if ok else "failed"] += 1
                self._count(job, counts, progress)

        def defer(run: DatumRun) -> None:
            records.defer_datum(self.store, job, run.datum.id)
            counts["deferred"] += 1
            self._count(job, counts, progress)

        threads = threads_each(slots)
        shared = self.remote or (self.warm.get(spec, slots) if self.warm is not None else None)
        workers_ = JobWorkers(self.store, spec, job, runs, slots, finish,
                              shared.work if isinstance(shared, WarmPool)
                              else self.root / "work" / job,
                              self.root / "logs" / spec.name / job, threads,
                              control=self.control, defer=defer, pool=shared, rank=rank,
                              budget=self.budget if self.remote is None else None,
                              history_peak=records.shot_peak(self.store, spec.name, inputs.shot)
                              if inputs.shot else None)
        crash = None
        try:
            workers_.run()
        except Exception as exc:
            crash = f"the engine failed running datums: {exc.__class__.__name__}: {exc}"
        finally:
            workers_.stop()
            self._settle(workers_.ending, self.root / "work" / job)
        if self.closing.is_set() and sum(counts[k] for k in ("processed", "skipped", "failed")) \
                < counts["total"]:
            crash = crash or "the engine stopped before the job ended"
        return self._close_job(spec, job, inputs, counts, crash)

    def _settle(self, ending: threading.Thread | None, work: Path) -> None:
        """Remove a job's work directory once its processes have exited: behind the next
        stage's job when they are still exiting (``close`` waits for them)."""
        def settle() -> None:
            if ending is not None:
                ending.join()
            shutil.rmtree(work, ignore_errors=True)
        if ending is None or not ending.is_alive():
            return settle()
        self._settling = [t for t in self._settling if t.is_alive()]
        self._settling.append(threading.Thread(target=settle, daemon=True, name="settle"))
        self._settling[-1].start()

    def _collect(self, out: Path) -> list[tuple[str, FileInfo]]:
        files = []
        for path in sorted(out.rglob("*")):
            if path.is_file():
                files.append(("/" + path.relative_to(out).as_posix(), self.store.add_object(path)))
        return files

    def _count(self, job: str, counts: dict[str, int], progress: Progress | None) -> None:
        records.count_job(self.store, job, counts["processed"], counts["skipped"],
                          counts["failed"])
        if progress is not None:
            progress(job, dict(counts))

    def _close_job(self, spec: PipelineSpec, job: str, inputs: Inputs, counts: dict[str, int],
                   crash: str | None = None) -> JobReport:
        with self.store.lock:
            error = job_error(self.store, job, counts["failed"], crash)
            files = {} if error else job_files(self.store, job)
            if files and error is None:
                error = conflicts(files, inputs.shot)
            state = "failure" if error else "success"
            commit = self._write_output(spec, inputs, {p: f for p, (_, f) in files.items()},
                                        job, ok=not error)
            records.end_job(self.store, job, state, commit.id, error)
        return JobReport(job, spec.name, state, counts["total"], counts["processed"],
                         counts["skipped"], counts["failed"], error)

    def _write_output(self, spec: PipelineSpec, inputs: Inputs, files: dict[str, FileInfo],
                      job: str, *, ok: bool) -> Commit:
        """The job's output commit; a failed one holds nothing and leaves the head alone."""
        if inputs.shot is not None:
            return self.store.write_shot_commit(spec.name, inputs.shot, files,
                                                state="finished" if ok else "failed", job=job,
                                                provenance=inputs.provenance)
        head = self.store.head(spec.name)
        return self.store.write_commit(spec.name, "master", files if ok else {},
                                       parent=head.id if head else None,
                                       state="finished" if ok else "failed", job=job,
                                       move_head=ok, provenance=inputs.provenance)
