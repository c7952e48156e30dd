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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tilefarm.engine.workers import DatumRun, JobWorkers


class SharedPool:
    """The slots of one pipeline and the jobs they serve now."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.cond = threading.Condition()
        self.jobs: list["JobWorkers"] = []
        self.closing = False

    def pick(self, admit: bool = True) -> tuple["JobWorkers", "DatumRun"] | None:
        """Take the next datum over every job (the caller holds the condition). With
        ``admit``, only if the memory budget has room for it (``engine.budget``): else
        None, and the budget wakes the pool on its next release. Without, to charge it a
        failed try."""
        while True:
            best = None
            for job in list(self.jobs):
                found = job.peek()
                if found is not None and (best is None or found[0] < best[0]):
                    best = (found[0], job, found[1])
            if best is None:
                for job in self.jobs:
                    if job.budget is not None:
                        job.budget.forget(id(self))
                return None
            order, job, run = best
            budget = job.budget if admit else None
            if budget is not None and not budget.admit(job, run, order, id(self)):
                budget.watch(self.wake)
                return None
            if job.take(run):
                return job, run
            if budget is not None:
                budget.release(run)

    def idle_wait(self) -> None:
        """Wait for a job, a datum's end, room in the memory budget or the close."""
        self.cond.wait()

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
