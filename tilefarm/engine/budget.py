"""The memory budget: no datum starts whose expected peak would push the sum over it.

A datum's expected peak is the largest peak measured so far among its job's datums of the
same pipeline (or, before any, of the previous job of the same pipeline and shot). A datum
with no expectation yet runs alone: it starts once nothing else runs, and nothing starts
beside it, so its peak is measured clean. A datum retried after running out of memory
runs alone too. A datum alone may exceed the budget: it must run somewhere. While a datum
waits for room, no datum that comes after it in the farm's order (priority, then
submission) starts: the room it waits for is not taken from under it.

The budget spans every pipeline of the engine; each pool asks it before it takes a datum
(``pools.SharedPool.pick``). A release wakes every pool from a thread of the budget's
own, which holds no pool's lock while it takes another's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tilefarm.engine.workers import DatumRun, JobWorkers


class MemoryBudget:
    def __init__(self, total: int) -> None:
        self.total = total
        self.lock = threading.Lock()
        self.running: dict[int, int | None] = {}  # id(run) -> its expected peak (None: alone)
        self.waiting: dict[int, tuple[int, ...]] = {}  # pool -> its refused datum's order
        self._wakers: list[Callable[[], None]] = []
        self._released = threading.Event()
        self._notifier: threading.Thread | None = None

    def expected(self, job: "JobWorkers", run: "DatumRun") -> int | None:
        """The peak ``run`` is expected to reach; None: unknown, or it must run alone."""
        if run.alone:
            return None
        return job.expected_peak()

    def admit(self, job: "JobWorkers", run: "DatumRun", order: tuple[int, ...],
              pool: int) -> bool:
        """Reserve ``run``'s expected peak if it fits now and no datum before it in the
        farm's ``order`` waits for room; False: it must wait (``pool``, the asker, is
        woken on a release)."""
        want = self.expected(job, run)
        with self.lock:
            self.waiting.pop(pool, None)
            fits = not any(v is None for v in self.running.values()) and (
                not self.running or (want is not None and sum(
                    v or 0 for v in self.running.values()) + want <= self.total))
            if not fits or any(other < order for other in self.waiting.values()):
                self.waiting[pool] = order
                return False
            self.running[id(run)] = want
            return True

    def forget(self, pool: int) -> None:
        """``pool`` no longer waits (it found nothing to run)."""
        with self.lock:
            self.waiting.pop(pool, None)

    def release(self, run: "DatumRun") -> None:
        with self.lock:
            if id(run) not in self.running:
                return  # it held no room (a try charged without running): nobody waits
            del self.running[id(run)]
        self._released.set()

    def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (from the budget's thread) after releases: a pool waiting for room.
        Watching twice is watching once."""
        with self.lock:
            if wake in self._wakers:
                return
            self._wakers.append(wake)
            if self._notifier is None:
                self._notifier = threading.Thread(target=self._notify, daemon=True,
                                                  name="memory-budget")
                self._notifier.start()

    def _notify(self) -> None:
        while True:
            self._released.wait()
            self._released.clear()
            with self.lock:
                wakers = list(self._wakers)
            for wake in wakers:
                wake()
