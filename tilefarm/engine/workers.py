"""Worker processes that run a job's datums, plain or with datum batching.

Plain: one process per datum (``transform.cmd``), as a Pachyderm worker without
batching runs it. Batching (``transform.datumBatching``): one long-lived
process per worker pulls datum after datum through the ``NextDatum`` gRPC call
on ``PPS_WORKER_GRPC_PORT``, so stage code runs unchanged on both engines.
Each datum sees its inputs under its own pfs directory (``TILEFARM_PFS_ROOT``)
and the per-input variables, and writes to that directory's ``out``.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from tilefarm.engine import backups
from tilefarm.engine.control import ALL, Control, JobControl, shot_of_paths
from tilefarm.engine.datums import Datum
from tilefarm.engine.spawn import StartFailed, spawn, stage_env
from tilefarm.engine.store import Store, records
from tilefarm.pipelines.specs import PipelineSpec
from tilefarm.runtime import memory
from tilefarm.runtime.pfs import PFS_ROOT_ENV
from tilefarm.runtime.procs import kill_tree, log_tail

if TYPE_CHECKING:
    from tilefarm.engine.budget import MemoryBudget
    from tilefarm.engine.pools import SharedPool


@dataclass(eq=False)  # a datum's run is itself: the queue finds it by identity
class DatumRun:
    datum: Datum
    tries: int = 0
    error: str = ""
    order: int = 0  # its place in the job, for a stable order among equal priorities
    peak: int | None = None  # the last try's peak resident memory, bytes (runtime.memory)
    alone: bool = False  # ran out of memory once: its retry runs alone (engine.budget)
    final: bool = False  # this try's outcome is the datum's last (no retry follows)
    started: float = 0.0  # when a worker took it (time.monotonic)
    place: str | None = None  # the machine it runs on, for a backup elsewhere (nodes.pool)
    # Backup copies (engine.backups): a copy's first run, a first run's copy, which won.
    primary: "DatumRun | None" = None
    backup: "DatumRun | None" = None
    winner: "DatumRun | None" = None

    @cached_property
    def shot(self) -> str | None:
        """The render job this datum belongs to (``control.shot_of_paths``)."""
        return shot_of_paths([part.path for part in self.datum.parts])


# (datum run, succeeded, error, datum pfs dir) -> None; called once per try.
Finish = Callable[[DatumRun, bool, str, Path], None]


class JobWorkers:
    """Runs ``runs`` with up to ``workers`` processes; ``finish`` records each outcome."""

    def __init__(self, store: Store, spec: PipelineSpec, job: str, runs: list[DatumRun],
                 workers: int, finish: Finish, work: Path, logs: Path, threads: int,
                 control: Control | None = None,
                 defer: Callable[[DatumRun], None] | None = None,
                 pool: "SharedPool | None" = None, rank: int = 0,
                 budget: "MemoryBudget | None" = None, history_peak: int | None = None) -> None:
        self.store, self.spec, self.job = store, spec, job
        for order, run in enumerate(runs):
            run.order = order
        self.queue: deque[DatumRun] = deque(runs)
        self.control = control
        self.defer_cb = defer
        # The holds this job started with stay: a resume reaches only later jobs.
        self.held_at_start = control.held() if control is not None else set()
        self.serving: dict[int, tuple[subprocess.Popen[bytes], DatumRun]] = {}
        # Datums served on other machines (nodes.pool): what ends each one, by slot.
        self.remote: dict[int, tuple[Callable[[], None], DatumRun]] = {}
        # Worker slots shared with the pipeline's other running jobs (engine.pools); without
        # one, the job's batching processes are its own, and plain ones get a pool of its own.
        self.pool = pool
        self.rank = rank  # the job's place in the farm's order (its shot's submission)
        self.budget = budget  # memory shared with every other running datum
        self.history_peak = history_peak  # the largest peak of the shot's previous job
        self.peaks: list[int] = []  # this job's measured datum peaks
        self.running: set[DatumRun] = set()  # taken and not yet ended, backup copies too
        self.timings = backups.Timings()  # finished datums' seconds, by kind
        self.workers = max(1, workers)
        self.finish_cb = finish
        self.work, self.logs = work, logs
        self.threads = threads
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.ending: threading.Thread | None = None  # its own warm pool closing (run)
        self.processes: set[subprocess.Popen[bytes]] = set()
        self.crash: BaseException | None = None

    # -- shared ----------------------------------------------------------------------------

    def held(self, run: DatumRun, controls: dict[str, JobControl] | None = None) -> bool:
        """Whether ``run``'s shot is paused or cancelled (``controls``: a snapshot of
        ``Control.all()``, read once for a whole queue)."""
        if self.control is None or run.shot is None:
            return False
        if run.shot in self.held_at_start:
            return True
        state = (controls if controls is not None else self.control.all()).get(run.shot)
        return state is not None and state.held

    def peek(self, accept: Callable[[DatumRun], bool] | None = None,
             ) -> tuple[tuple[int, int, int], DatumRun] | None:
        """The pending datum this job would run next, and its place in the farm's order:
        (-priority of its shot, the job's rank, its place in the job); lower goes first.
        The datums of paused or cancelled shots are deferred on the way (they run in a
        later job). ``accept``: only datums it accepts (those a worker can run)."""
        deferred: list[DatumRun] = []
        try:
            with self.lock:
                if self.stopping.is_set() or not self.queue:
                    return None
                if self.control is None and accept is None:
                    return (0, self.rank, self.queue[0].order), self.queue[0]
                controls = self.control.all() if self.control is not None else {}
                if not self.held_at_start and accept is None and not any(
                        c.held or c.priority or c.max_workers for c in controls.values()):
                    return (0, self.rank, self.queue[0].order), self.queue[0]  # unsteered
                best: tuple[tuple[int, int, int], DatumRun] | None = None
                for run in list(self.queue):
                    if self.held(run, controls):
                        self.queue.remove(run)
                        deferred.append(run)
                        continue
                    if accept is not None and not accept(run):
                        continue
                    steer = controls.get(run.shot or "")
                    if steer is not None and steer.max_workers is not None and \
                            self.control is not None and run.shot is not None and \
                            self.control.running(run.shot) >= steer.max_workers:
                        continue  # its job runs as many datums as it may (max_workers)
                    key = (-(steer.priority if steer else 0), self.rank, run.order)
                    if best is None or key < best[0]:
                        best = (key, run)
                return best
        finally:
            for run in deferred:
                self._defer(run)

    def take(self, run: DatumRun) -> bool:
        """Take ``run`` (from ``peek``) off the queue; False if another worker took it, or
        its job has reached its ``max_workers`` since."""
        with self.lock:
            if self.stopping.is_set() or run not in self.queue:
                return False
            if self.control is not None and run.shot is not None and not \
                    self.control.try_start(run.shot, self.control.get(run.shot).max_workers):
                return False  # its job reached max_workers since peek looked
            self.queue.remove(run)
            run.started, run.place = time.monotonic(), None
            self.running.add(run)
        return True

    def next_run(self) -> DatumRun | None:
        """The pending datum of the highest-priority shot not paused or cancelled."""
        while (found := self.peek()) is not None:
            if self.take(found[1]):
                return found[1]
        return None

    def has_runnable(self) -> bool:
        """Whether a pending datum may start now (not of a paused or cancelled shot)."""
        controls = self.control.all() if self.control is not None else {}
        with self.lock:
            return not self.stopping.is_set() and any(not self.held(r, controls)
                                                      for r in self.queue)

    def _defer(self, run: DatumRun) -> None:
        if self.defer_cb is not None:
            self.defer_cb(run)

    def kill_shot(self, shot: str) -> None:
        """Cancel: kill every process serving a datum of ``shot`` (its process group, so
        the Blender it started goes too), here or on another machine (``remote``)."""
        for proc, run in list(self.serving.values()):
            if shot == ALL or run.shot == shot:
                kill_tree(proc)
        for end, run in list(self.remote.values()):
            if shot == ALL or run.shot == shot:
                end()

    def requeue(self, run: DatumRun) -> None:
        """Put back a datum whose worker was lost (its machine left): it runs again
        elsewhere, and the loss costs it no try (a copy whose other copy runs on is
        forgotten)."""
        self.ended(run)
        if backups.drop(self, run):
            return
        with self.lock:
            self.running.discard(run)
            if not self.stopping.is_set():
                self.queue.appendleft(run)
                return
        self._defer(run)

    def ended(self, run: DatumRun) -> None:
        """``run`` (taken) no longer runs: its job may start another (``max_workers``)."""
        if self.control is not None and run.shot is not None:
            self.control.ended(run.shot, self.control.get(run.shot).max_workers is not None)

    def expected_peak(self) -> int | None:
        """What a datum of this job is expected to use: the most any has used so far."""
        return max(self.peaks, default=self.history_peak)

    def finish(self, run: DatumRun, ok: bool, error: str, pfs: Path) -> None:
        """Record one try's outcome, queue its retry, then free its memory reservation
        (after both: the datum is recorded ended, and a retry is in line, before another
        datum may take its room)."""
        try:
            outcome, loser = backups.settle(self, run, ok)
            if loser is not None:
                backups.cancel(self, loser)
            if outcome is not backups.Outcome.RECORD:
                shutil.rmtree(pfs.parent, ignore_errors=True)
                return
            if ok:
                self.timings.record(run, time.monotonic() - run.started)
            primary = run.primary or run
            primary.peak = run.peak
            self._finish(primary, ok, error, pfs)
        finally:
            self.ended(run)
            if self.budget is not None:
                self.budget.release(run)

    def _finish(self, run: DatumRun, ok: bool, error: str, pfs: Path) -> None:
        # Out of memory: the one line that says so; retried once, alone, whatever datumTries.
        line = memory.failure_line(error) if not ok else None
        if line is not None:  # its Blender was stopped before it could be measured
            run.peak = memory.failure_peak(line) or run.peak
        if run.peak is not None:
            self.peaks.append(run.peak)
        if not ok and self.control is not None and run.shot is not None \
                and self.control.get(run.shot).cancelled:
            self._defer(run)  # cut short by a cancel: not a failure, run again on resume
            shutil.rmtree(pfs.parent, ignore_errors=True)
            return
        run.tries += 1
        run.error = error = line or error
        run.final = ok or run.tries >= self.spec.tries or (line is not None and run.alone)
        run.alone = run.alone or line is not None
        self.finish_cb(run, ok, error, pfs)
        shutil.rmtree(pfs.parent, ignore_errors=True)
        if not run.final and not self.stopping.is_set():
            with self.lock:
                self.queue.appendleft(run)  # retried next (datumTries)

    def prepare(self, run: DatumRun, worker: int | None = None) -> tuple[Path, dict[str, str]]:
        """The datum's pfs directory: inputs linked in, an empty out/.

        A batching worker keeps one directory, refilled for each datum, as a Pachyderm
        worker keeps /pfs: a datum's inputs then sit at the same paths as the previous
        datum's, so a warm Blender sees the same .blend and keeps it loaded.
        """
        name = f"worker-{worker}" if worker is not None else \
            f"{run.datum.id}-{run.tries}{'-backup' if run.primary else ''}"
        pfs = self.work / name / "pfs"
        if run.primary is None:  # a backup copy: the datum started with its first copy
            records.start_datum(self.store, self.job, run.datum.id)
        shutil.rmtree(pfs.parent, ignore_errors=True)
        (pfs / "out").mkdir(parents=True)
        for part in run.datum.parts:
            for info in part.files:
                self.store.materialize(info, pfs / part.name / info.path.lstrip("/"))
        return pfs, self.datum_env(run, str(pfs))

    def datum_env(self, run: DatumRun, pfs: str) -> dict[str, str]:
        """The variables a datum runs with, its inputs under ``pfs``."""
        env = run.datum.env(pfs)
        env.update({PFS_ROOT_ENV: pfs, "PACH_DATUM_ID": run.datum.id,
                    "PACH_JOB_ID": self.job, "PPS_PIPELINE_NAME": self.spec.name})
        return env

    def base_env(self) -> dict[str, str]:
        return stage_env(self.spec, self.threads)

    def run(self) -> None:
        """Run every datum; re-raise the first error of tilefarm's own (not a datum's)."""
        from tilefarm.engine.pools import PlainPool
        from tilefarm.engine.warm import WarmPool

        pool = self.pool
        own = pool is None  # the job's own slots, ended with it
        if pool is None:
            pool = (WarmPool(self.spec, self.workers, self.work, logs=self.logs)
                    if self.spec.batching else PlainPool(self.workers))
        forgets = [self.control.on_cancel(self.kill_shot), self.control.on_room(pool.wake)] \
            if self.control is not None else []
        try:
            pool.run(self)
        finally:
            if own and isinstance(pool, WarmPool):
                self.ending = pool.close_behind()
            elif own:
                pool.close()
            for forget in forgets:
                forget()
            for run in list(self.queue):  # held when the last worker stopped asking
                self.queue.remove(run)
                self._defer(run)
        if self.crash is not None:
            raise self.crash

    def failed(self, exc: BaseException) -> None:
        """tilefarm itself failed serving this job: stop it, and raise ``exc`` from ``run``."""
        self.crash = self.crash or exc
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for proc in list(self.processes):
            kill_tree(proc)
        for end, _ in list(self.remote.values()):
            end()

    def _spawn(self, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start ``transform.cmd``, one of this job's processes (``spawn``)."""
        proc = spawn(self.spec, env, log)
        self.processes.add(proc)
        return proc

    # -- one process per datum ---------------------------------------------------------------

    def run_plain(self, run: DatumRun) -> None:
        """One try of ``run`` in a process of its own (``pools.PlainPool``'s slots call it)."""
        pfs, env = self.prepare(run)
        log = self.logs / f"{run.datum.id}.log"
        try:
            proc = self._spawn({**self.base_env(), **env}, log)
        except StartFailed as exc:  # a failed try of this datum, retried up to datumTries
            self.finish(run, False, str(exc), pfs)
            return
        self.serving[proc.pid] = (proc, run)
        if self.held(run) and self.control is not None \
                and self.control.get(run.shot or "").cancelled:
            kill_tree(proc)  # cancelled between the pick and the start
        try:
            code, run.peak = memory.wait(proc, self.spec.timeout)
            error = "" if code == 0 else f"exited with code {code}: {log_tail(log, 2)}"
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            proc.wait()
            error = f"timed out after {self.spec.timeout:g} s (datumTimeout)"
        self.processes.discard(proc)
        self.serving.pop(proc.pid, None)
        self.finish(run, not error, error, pfs)
