"""Worker slots shared by every running job of one pipeline.

A pipeline has a fixed number of worker slots (``min(--workers, parallelism)``). When
several of its jobs run at once (``tilefarm serve`` runs one job per shot), a free slot
takes the next datum over all of them: the highest priority first, then the shot
submitted first, then the datum's place in its job (``JobWorkers.peek``). A job's thread
calls ``run(job)``, which returns once no datum of the job is left or in flight.

``PlainPool`` runs one process per datum; ``warm.WarmPool`` keeps batching processes
alive between datums and jobs. Slots wait on the pool's condition, which is notified when
a job arrives, a datum ends or the pool closes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tilefarm.engine import backups

if TYPE_CHECKING:
    from tilefarm.engine.budget import MemoryBudget
    from tilefarm.engine.workers import DatumRun, JobWorkers
    from tilefarm.pipelines.specs import PipelineSpec


class SharedPool:
    """The slots of one pipeline and the jobs they serve now."""

    backups = False  # whether a free slot backs up stragglers (engine.backups)

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.cond = threading.Condition()
        self.jobs: list["JobWorkers"] = []
        self.closing = False
        self.recheck: float | None = None  # seconds until a running datum straggles

    def pick(self, admit: bool = True, accept: Callable[["DatumRun"], bool] | None = None,
             budget: "MemoryBudget | None" = None, asker: int | None = None,
             place: str | None = None, only: Callable[["JobWorkers"], bool] | None = None,
             ) -> tuple["JobWorkers", "DatumRun"] | None:
        """Take the next datum over every job (the caller holds the condition). With
        ``admit``, only if the memory budget has room for it (``engine.budget``): else
        None, and the budget wakes the pool on its next release. Without, to charge it a
        failed try. ``accept``, ``budget``, ``asker``: a worker that runs only some
        datums, with a budget of its machine's, on machine ``place`` (``nodes.pool``).
        With nothing queued, a backup copy of a straggling datum (``engine.backups``).
        ``only``: the jobs the worker may take datums of."""
        asker = id(self) if asker is None else asker
        while True:
            best = None
            for job in [j for j in self.jobs if only is None or only(j)]:
                found = job.peek(accept)
                if found is not None:
                    key = self.order(job, found[0])
                    if best is None or key < best[0]:
                        best = (key, job, found[1])
            if best is None:
                for job in self.jobs:
                    if (room := budget or job.budget) is not None:
                        room.forget(asker)
                return self._backup(accept, budget, asker, place, only) if self.backups else None
            order, job, run = best
            room = (budget or job.budget) if admit else None
            if room is not None and not room.admit(job, run, order, asker):
                room.watch(self.wake)
                return None
            if job.take(run):
                return job, run
            if room is not None:
                room.release(run)

    def _backup(self, accept: Callable[["DatumRun"], bool] | None,
                budget: "MemoryBudget | None", asker: int, place: str | None,
                only: Callable[["JobWorkers"], bool] | None,
                ) -> tuple["JobWorkers", "DatumRun"] | None:
        """A backup copy of the longest overdue straggler a worker at ``place`` may run;
        ``recheck`` says when to look again if none is due."""
        now, soonest = time.monotonic(), None
        for job in [j for j in self.jobs if only is None or only(j)]:
            due, wait = backups.stragglers(job, accept, place, now)
            if wait is not None:
                soonest = wait if soonest is None else min(soonest, wait)
            for run in due:
                copy = backups.start(job, run, place)
                if copy is None:
                    continue
                room = budget or job.budget
                if room is not None and not room.admit(job, copy, (0, job.rank, run.order),
                                                       asker):
                    backups.undo(job, copy)
                    room.forget(asker)
                    continue
                backups.announce(job, copy)
                return job, copy
        self.recheck = soonest
        return None

    def order(self, job: "JobWorkers", key: tuple[int, ...]) -> tuple[int, ...]:
        """A datum's place in this pool's order, from its place in its job's
        (``JobWorkers.peek``); lower goes first."""
        return key

    def idle_wait(self) -> None:
        """Wait for a job, a datum's end, room in the memory budget or the close; with
        backups, at the latest until the next running datum straggles."""
        self.cond.wait(timeout=None if self.recheck is None else max(0.02, self.recheck))

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def run(self, job: "JobWorkers") -> None:
        """Serve ``job`` until none of its datums is left or in flight."""
        with self.cond:
            self.jobs.append(job)
            self.cond.notify_all()
        try:
            self.drive(job)
        finally:
            with self.cond:
                self.jobs.remove(job)
                self.cond.notify_all()

    def drive(self, job: "JobWorkers") -> None:
        raise NotImplementedError

    def warm_up(self, specs: "list[PipelineSpec]", series: str | None) -> None:
        """Start these batching pipelines' processes before their jobs, where a pool shared
        by every pipeline keeps them (a Ray cluster's: ``RayPool``); ``series``: the Blender
        the renderer's boot at once. A pool of one pipeline is warmed by ``Engine.prestart``."""

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()


class PlainPool(SharedPool):
    """Slots that each run one process per datum (``transform.cmd``, no batching)."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.busy: dict[int, "JobWorkers"] = {}
        self.threads = [threading.Thread(target=self._slot, args=(n,), daemon=True,
                                         name=f"slot-{n}") for n in range(self.workers)]
        for thread in self.threads:
            thread.start()

    def drive(self, job: "JobWorkers") -> None:
        with self.cond:
            # Notified when a datum ends; the timeout only bounds how late a pause of a job
            # whose datums all wait behind other jobs' is noticed.
            while not self.closing and (job.has_runnable() or job in self.busy.values()):
                self.cond.wait(timeout=1.0)

    def _slot(self, index: int) -> None:
        while True:
            with self.cond:
                picked = None
                while not self.closing and (picked := self.pick()) is None:
                    self.idle_wait()
                if picked is None:
                    return
                job, run = picked
                self.busy[index] = job
            try:
                job.run_plain(run)
            except BaseException as exc:  # tilefarm's own failure: the job ends with it
                job.failed(exc)
            finally:
                with self.cond:
                    del self.busy[index]
                    self.cond.notify_all()

    def close(self) -> None:
        super().close()
        for thread in self.threads:
            thread.join(timeout=10)
