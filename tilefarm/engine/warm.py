"""Batching workers kept warm between jobs (``tilefarm serve``).

Without this, every pipeline job starts its stage processes afresh and each starts its own
Blender: about 7 s of start-ups for a job that arrives alone (docs/performance.md). A warm
pool keeps one process per worker slot of a pipeline alive between its jobs: when a job
has no datum left for it, its ``NextDatum`` call waits for the next job instead of ending
the batch, so the stage process, and the warm Blender sessions it holds (one per
runtime), serve that job too. Each worker keeps one pfs directory across jobs, so a job on
an unchanged .blend finds it at the same path, still loaded.

A pool belongs to one pipeline spec, worker count and thread share; another spec makes
a new pool. Several jobs of the pipeline may run at once (one per shot): a process that
asks for a datum gets the next one over all of them (``pools.SharedPool``). A process
that dies is restarted while a job still has datums; a datum it was serving fails one
try, as in a job of its own (``workers.JobWorkers``).
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from tilefarm.engine.pools import PlainPool, SharedPool
from tilefarm.engine.spawn import StartFailed, spawn
from tilefarm.engine.workers import DatumRun, JobWorkers
from tilefarm.pipelines.specs import PipelineSpec
from tilefarm.pipelines.worker import WORKER_PORT_ENV, WorkerServer
from tilefarm.runtime import memory
from tilefarm.runtime.procs import kill_tree, log_tail


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
        self.finishing = False  # recording the last datum's outcome, outside the lock
        self.log: Path | None = None
        # Counts the processes found dead: a call from one of them may still be recording
        # its last datum when the next process starts, and must not hand that one a datum.
        self.generation = 0

    def _next_datum(self, previous_error: str) -> list[str] | None:
        pool = self.pool
        with pool.cond:
            self.asked = True
            generation = self.generation
            done = self._take_current()
        if done is not None:
            # Its outputs are hashed and copied into the store without the pool's lock, so
            # the other workers take and hand back datums meanwhile.
            job, run, pfs = done
            try:
                job.finish(run, not previous_error, previous_error, pfs)
            finally:
                with pool.cond:
                    self.finishing = False
                    pool.cond.notify_all()
        with pool.cond:
            while True:
                if pool.closing or self.generation != generation:
                    return None  # the asker has gone: its successor asks for itself
                picked = pool.pick()
                if picked is not None:
                    job, run = picked
                    pfs, env = job.prepare(run, self.index)
                    self.job, self.current, self.pfs = job, run, pfs
                    if self.proc is not None:
                        memory.reset_peaks(self.proc.pid)
                    self.started = time.monotonic()
                    if self.proc is not None:
                        job.serving[-1 - self.index] = (self.proc, run)
                    return [f"{k}={v}" for k, v in env.items()]
                pool.idle_wait()

    def _take_current(self) -> tuple[JobWorkers, DatumRun, Path] | None:
        """The served datum, measured and no longer served, for its outcome to be recorded
        (the caller holds the pool's condition; the slot stays busy until ``finishing``
        is cleared)."""
        run, job, pfs = self.current, self.job, self.pfs
        if run is None or job is None or pfs is None:
            return None
        self.current = None
        self.finishing = True
        job.serving.pop(-1 - self.index, None)
        if self.proc is not None and self.proc.poll() is None:
            run.peak = memory.peak(self.proc.pid)
        return job, run, pfs

    def _finish_current(self, ok: bool, error: str) -> None:
        """Record the served datum's outcome now (the caller holds the pool's condition:
        a datum that failed, with no outputs to store)."""
        done = self._take_current()
        if done is not None:
            try:
                done[0].finish(done[1], ok, error, done[2])
            finally:
                self.finishing = False
                self.pool.cond.notify_all()

    def own_pfs(self) -> Path:
        """This slot's pfs directory (``JobWorkers.prepare`` with its index)."""
        return self.pool.work / f"worker-{self.index}" / "pfs"

    def busy(self) -> bool:
        return self.current is not None or self.finishing

    def ensure(self, job: JobWorkers) -> bool:
        """Start the process if it is not running (the caller holds the condition); False
        if it could not start and no datum was left to charge the failure to."""
        if self.proc is not None and self.proc.poll() is None:
            return True
        try:
            self.start(job.spec, job.base_env(), job.logs.parent)
            return True
        except StartFailed as exc:
            self.proc = None
            picked = self.pool.pick(admit=False)
            if picked is None:
                return False
            # A failed try of the next datum, as Pachyderm charges it.
            picked[0].finish(picked[1], False, str(exc), self.own_pfs())
            return True

    def start(self, spec: PipelineSpec, env: dict[str, str], logs: Path) -> None:
        """Start this slot's process (StartFailed if it cannot): it asks for a datum at
        once, and waits for one while no job has any (``_next_datum``). ``logs``: its
        pipeline's, where ``warm-N.log`` goes unless the pool serves one job."""
        self.proc = None
        self.asked = False
        self.log = (self.pool.logs / f"worker-{self.index}.log" if self.pool.logs
                    else logs / f"warm-{self.index}.log")
        self.proc = spawn(spec, {**env, WORKER_PORT_ENV: str(self.server.port)}, self.log)
        threading.Thread(target=self._watch, args=(self.proc,), daemon=True,
                         name=f"warm-{self.index}-exit").start()

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        """Wake the pool when the process ends: ``check`` then handles it."""
        proc.wait()
        with self.pool.cond:
            self.pool.cond.notify_all()

    def check(self, timeout: float | None) -> None:
        """Handle a dead process or a datum past its timeout (the caller holds the lock)."""
        proc = self.proc
        if proc is None:
            return
        if self.current is not None and timeout is not None \
                and time.monotonic() - self.started > timeout:
            kill_tree(proc)
            proc.wait()
            self._finish_current(False, f"timed out after {timeout:g} s (datumTimeout)")
        if proc.poll() is None:
            return
        if self.current is not None:
            self._finish_current(False, f"worker exited with code {proc.returncode} "
                                 f"mid-datum: {log_tail(self.log, 2) if self.log else ''}")
        elif not self.asked and not self.finishing and (picked := self.pool.pick(admit=False)) is not None:
            # "user code exited prematurely": a try of the next datum, charged against this
            # slot's own directory: finish removes the pfs's parent, and any other path
            # could hold another worker's datum.
            picked[0].finish(picked[1], False, f"worker exited with code {proc.returncode} "
                             f"before asking for a datum: {log_tail(self.log, 2) if self.log else ''}",
                             self.own_pfs())
        self.proc = None
        self.generation += 1

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)  # it has been told no datum is left
            except subprocess.TimeoutExpired:
                kill_tree(self.proc)
        self.server.stop()


class WarmPool(SharedPool):
    """The warm processes of one pipeline, and the jobs they serve now."""

    def __init__(self, spec: PipelineSpec, workers: int, work: Path,
                 logs: Path | None = None) -> None:
        """``logs``: where each process logs (``worker-N.log``), for a pool that serves one
        job; without it, ``warm-N.log`` beside the logs of the jobs it serves."""
        super().__init__(workers)
        self.key = (spec.text(), workers)
        self.work = work
        self.logs = logs
        self.slots = [_Slot(self, i) for i in range(workers)]

    def prestart(self, spec: PipelineSpec, env: dict[str, str], logs: Path) -> None:
        """Start every slot's process before the pipeline has a job (``Engine.prestart``),
        so its first job finds them started; a slot that cannot start is left to its job,
        where a failed start costs a datum a try."""
        with self.cond:
            for slot in self.slots:
                if slot.proc is None:
                    try:
                        slot.start(spec, env, logs)
                    except StartFailed:
                        pass  # its job starts it again, and charges the failure to a datum

    def drive(self, job: JobWorkers) -> None:
        """Serve every datum of ``job``, starting missing processes; several jobs' threads
        may drive at once, each until its own job is done."""
        fruitless = 0
        with self.cond:
            while not self.closing:
                for slot in self.slots:
                    slot.check(job.spec.timeout)
                left = job.has_runnable()
                if not left and not any(s.busy() and s.job is job for s in self.slots):
                    return
                if left:
                    dead = [s for s in self.slots if s.proc is None]
                    moved = [slot.ensure(job) for slot in dead]
                    fruitless = fruitless + 1 if dead and not any(moved) else 0
                    if fruitless >= 3:
                        return  # no process will start: the datums left stay pending
                    if any(s.proc is None for s in dead) and any(moved):
                        continue  # a start failed and cost a datum a try: start again
                # Woken when a datum ends or a process exits (``_watch``); the timeout is
                # the next datumTimeout, or a second, in which a pause is noticed.
                self.cond.wait(timeout=self._next_deadline(job.spec.timeout))

    def _next_deadline(self, timeout: float | None) -> float:
        now = time.monotonic()
        left = [s.started + timeout - now for s in self.slots
                if timeout is not None and s.current is not None]
        return max(0.01, min([1.0, *left]))

    def close(self) -> None:
        super().close()
        for slot in self.slots:
            slot.close()

    def close_behind(self) -> threading.Thread:
        """Close, waiting for the processes to exit (each shuts its Blender sessions down,
        about 0.2 s) on a thread of its own: a job's own pool, whose next stage need not
        wait for that. The caller joins the thread."""
        SharedPool.close(self)  # no process is handed a datum from now on
        thread = threading.Thread(target=self.close, daemon=True, name="warm-close")
        thread.start()
        return thread


class WarmPools:
    """The engine's shared pools, one per pipeline: warm batching processes, or slots that
    start a process per datum."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pools: dict[str, tuple[tuple[str, int], SharedPool]] = {}
        self.retired: list[SharedPool] = []  # replaced while their jobs still ran
        self.made = 0
        self.lock = threading.Lock()

    def get(self, spec: PipelineSpec, workers: int) -> SharedPool:
        """The pipeline's pool; a changed spec or worker count replaces it once none of
        its jobs is running (until then its jobs keep the old one)."""
        key = (spec.text(), workers)
        with self.lock:
            for old in [p for p in self.retired if not p.jobs]:
                old.close()
                self.retired.remove(old)
            found = self.pools.get(spec.name)
            if found is not None and found[0] != key:
                if found[1].jobs:
                    self.retired.append(found[1])
                else:
                    found[1].close()
                found = None
            if found is None:
                self.made += 1
                pool: SharedPool = (WarmPool(spec, workers,
                                             self.root / f"warm-{spec.name}-{self.made}")
                                    if spec.batching else PlainPool(workers))
                found = (key, pool)
                self.pools[spec.name] = found
            return found[1]

    def release(self, name: str) -> threading.Thread | None:
        """Close pipeline ``name``'s pool now that it has no job left: a warm pool behind
        the next jobs, on the thread returned (``WarmPool.close_behind``)."""
        with self.lock:
            found = self.pools.pop(name, None)
        if found is None:
            return None
        if isinstance(found[1], WarmPool):
            return found[1].close_behind()
        found[1].close()
        return None

    def close(self) -> None:
        """Tell every pool's processes at once that no datum is left, then wait for them:
        each shuts its Blender down (about 0.2 s), side by side."""
        with self.lock:
            pools = [p for _, p in self.pools.values()] + self.retired
            for pool in pools:
                SharedPool.close(pool)
            for pool in pools:
                pool.close()
            self.pools.clear()
            self.retired.clear()
