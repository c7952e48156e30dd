"""Batching workers kept warm between jobs (``tilefarm serve``).

Without this, every pipeline job starts its stage processes afresh and each starts its own
Blender: about 7 s of start-ups for a job that arrives alone (docs/performance.md). A warm
pool keeps one process per worker slot of a pipeline alive between its jobs: when a job
has no datum left for it, its ``NextDatum`` call waits for the next job instead of ending
the batch, so the stage process, and the warm Blender sessions it holds (one per
runtime), serve that job too. Each worker keeps one pfs directory across jobs, so a job on
an unchanged .blend finds it at the same path, still loaded.

A pool belongs to one pipeline spec, worker count and thread share; another spec makes
a new pool. A process that dies is restarted when its job still has datums; a datum it
was serving fails one try, as in a job of its own (``workers.JobWorkers``).
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from tilefarm.engine.workers import DatumRun, JobWorkers, StartFailed
from tilefarm.pipelines.specs import PipelineSpec
from tilefarm.pipelines.worker import WORKER_PORT_ENV, WorkerServer
from tilefarm.runtime.procs import kill_group, log_tail


class _Slot:
    """One warm worker process and the datum it is serving."""

    def __init__(self, pool: "WarmPool", index: int) -> None:
        self.pool, self.index = pool, index
        self.server = WorkerServer(self._next_datum)
        self.proc: subprocess.Popen[bytes] | None = None
        self.job: JobWorkers | None = None  # the job of the datum being served
        self.current: DatumRun | None = None
        self.pfs: Path | None = None
        self.started = 0.0
        self.asked = False
        self.log: Path | None = None

    def _next_datum(self, previous_error: str) -> list[str] | None:
        pool = self.pool
        with pool.cond:
            self.asked = True
            self._finish_current(not previous_error, previous_error)
            while True:
                if pool.closing:
                    return None
                job = pool.job
                run = job.next_run() if job is not None else None
                if job is not None and run is not None:
                    pfs, env = job.prepare(run, self.index)
                    self.job, self.current, self.pfs = job, run, pfs
                    self.started = time.monotonic()
                    if self.proc is not None:
                        job.serving[-1 - self.index] = (self.proc, run)
                    return [f"{k}={v}" for k, v in env.items()]
                pool.cond.wait()

    def _finish_current(self, ok: bool, error: str) -> None:
        """Record the served datum's outcome (the caller holds the pool's condition)."""
        run, job, pfs = self.current, self.job, self.pfs
        if run is None or job is None or pfs is None:
            return
        self.current = None
        job.serving.pop(-1 - self.index, None)
        job.finish(run, ok, error, pfs)
        self.pool.cond.notify_all()

    def own_pfs(self) -> Path:
        """This slot's pfs directory (``JobWorkers.prepare`` with its index)."""
        return self.pool.work / f"worker-{self.index}" / "pfs"

    def busy(self) -> bool:
        return self.current is not None

    def ensure(self, job: JobWorkers) -> None:
        """Start the process if it is not running (the caller holds the condition)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.asked = False
        self.log = job.logs.parent / f"warm-{self.index}.log"
        env = {**job.base_env(), WORKER_PORT_ENV: str(self.server.port)}
        try:
            self.proc = job._spawn(env, self.log)
            job.processes.discard(self.proc)  # it outlives the job: JobWorkers.stop spares it
        except StartFailed as exc:
            self.proc = None
            run = job.next_run()
            if run is not None:  # a failed try of the next datum, as Pachyderm charges it
                job.finish(run, False, str(exc), self.own_pfs())

    def check(self, timeout: float | None) -> None:
        """Handle a dead process or a datum past its timeout (the caller holds the lock)."""
        proc = self.proc
        if proc is None:
            return
        if self.busy() and timeout is not None and time.monotonic() - self.started > timeout:
            kill_group(proc)
            proc.wait()
            self._finish_current(False, f"timed out after {timeout:g} s (datumTimeout)")
        if proc.poll() is None:
            return
        if self.busy():
            self._finish_current(False, f"worker exited with code {proc.returncode} "
                                 f"mid-datum: {log_tail(self.log, 2) if self.log else ''}")
        elif not self.asked and self.pool.job is not None:
            run = self.pool.job.next_run()
            if run is not None:  # "user code exited prematurely": a try of the next datum
                # Charged against this slot's own directory: finish removes the pfs's
                # parent, and any other path could hold another worker's datum.
                self.pool.job.finish(run, False, f"worker exited with code {proc.returncode} "
                                     "before asking for a datum", self.own_pfs())
        self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)  # it has been told no datum is left
            except subprocess.TimeoutExpired:
                kill_group(self.proc)
        self.server.stop()


class WarmPool:
    """The warm processes of one pipeline, and the job they serve now."""

    def __init__(self, spec: PipelineSpec, workers: int, work: Path) -> None:
        self.key = (spec.text(), workers)
        self.work = work
        self.cond = threading.Condition()
        self.job: JobWorkers | None = None
        self.closing = False
        self.slots = [_Slot(self, i) for i in range(workers)]

    def run(self, job: JobWorkers) -> None:
        """Serve every datum of ``job`` with the pool's processes, starting missing ones."""
        with self.cond:
            self.job = job
            self.cond.notify_all()
        try:
            fruitless = 0
            while True:
                with self.cond:
                    for slot in self.slots:
                        slot.check(job.spec.timeout)
                    left = job.has_runnable()
                    if not left and not any(s.busy() and s.job is job for s in self.slots):
                        return
                    if left:
                        dead = [s for s in self.slots if s.proc is None]
                        for slot in dead:
                            slot.ensure(job)
                        fruitless = fruitless + 1 if dead and all(
                            s.proc is None for s in dead) else 0
                        if fruitless >= 3:
                            return  # no process will start: the datums left stay pending
                    self.cond.wait(timeout=0.05)
        finally:
            with self.cond:
                self.job = None

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        for slot in self.slots:
            slot.close()


class WarmPools:
    """The engine's warm pools, one per pipeline."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pools: dict[str, WarmPool] = {}

    def get(self, spec: PipelineSpec, workers: int) -> WarmPool:
        pool = self.pools.get(spec.name)
        if pool is not None and pool.key != (spec.text(), workers):
            pool.close()
            pool = None
        if pool is None:
            pool = WarmPool(spec, workers, self.root / f"warm-{spec.name}")
            self.pools[spec.name] = pool
        return pool

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()
