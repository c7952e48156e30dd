"""Steering render jobs across pipelines: priority, pause, cancel, re-render.

A render job (a shot) is a top-level entry of the ``blends`` repo: ``/SHOT.blend`` or
``/SHOT/``. Its datums in every pipeline carry its name as their first path component
(``/SHOT/tasks/...``, ``/SHOT/tiles/000005``), which is how a datum is told apart.

- **Priority** orders which pending datum a worker takes next, across shots.
- **Pause** starts no new datum of the shot; running ones finish. Its pending datums are
  recorded as ``deferred`` and the pipeline job ends without them (its other shots go on
  downstream); a resume runs them in a new job, skipping finished work as a rerun does.
- **Workers per job** (``max_workers``): at most N datums of the shot run at once, over
  every pipeline; the other workers take other shots' datums meanwhile. The count of
  running datums is this engine's (``try_start``/``ended``), kept in memory.
- **Cancel** also kills the processes serving the shot (Blender included: each runs in its
  own process group) and records their datums as ``deferred``, never ``failed``, so the
  store holds only whole outputs and a resume renders what was cut short.

A pipeline job keeps the holds it started with: a resume reaches only jobs started after
it, so a merger job already running never merges a frame whose tiles were deferred.
The state lives in the store (``job_control``) and survives restarts.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tilefarm.engine.store import Store, records

ALL = "*"  # not a job name (job names never hold "*"): every job, for kill_all


@dataclass(frozen=True)
class JobControl:
    job: str
    priority: int = 0
    paused: bool = False
    cancelled: bool = False
    max_workers: int | None = None
    tags: tuple[str, ...] = ()  # the node tags it runs on (plan.tags)

    @property
    def held(self) -> bool:
        return self.paused or self.cancelled


def shot_of_paths(paths: list[str]) -> str | None:
    """The render job a datum belongs to: the first component of its first path, without
    ``.blend`` (``/shot.blend`` and ``/shot/tasks/c0.json`` are both ``shot``)."""
    for path in paths:
        first = path.strip("/").split("/", 1)[0]
        if first:
            return first.removesuffix(".blend")
    return None


def shot_of_inputs(inputs_json: str) -> str | None:
    """``shot_of_paths`` for a datum row's ``inputs`` column (``[[name, path], ...]``)."""
    return shot_of_paths([path for _, path in json.loads(inputs_json)])


class Control:
    """The job-control state of a store, and the processes to kill on cancel."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._killers: list[Callable[[str], None]] = []
        self._wakers: list[Callable[[], None]] = []
        self._running: dict[str, int] = {}  # shot -> its datums running now, on this engine
        self._guard = threading.Lock()

    @staticmethod
    def _of(row: Any) -> JobControl:
        return JobControl(row["job"], row["priority"], bool(row["paused"]),
                          bool(row["cancelled"]), row["max_workers"],
                          tuple(t for t in (row["tags"] or "").split(",") if t))

    def get(self, job: str) -> JobControl:
        row = records.control(self.store, job)
        return JobControl(job) if row is None else self._of(row)

    def all(self) -> dict[str, JobControl]:
        return {r["job"]: self._of(r) for r in records.controls(self.store)}

    def held(self) -> set[str]:
        return {job for job, c in self.all().items() if c.held}

    def _set(self, job: str, **values: Any) -> None:
        current = dataclasses.replace(self.get(job), **values)
        records.put_control(self.store, job, current.priority, int(current.paused),
                            int(current.cancelled), current.max_workers,
                            ",".join(current.tags) or None)

    def take_settings(self, job: str, max_workers: int | None,
                      tags: Sequence[str] | None) -> None:
        """What a job's settings steer, as a submission gives them (each submission anew)."""
        self._set(job, tags=tuple(sorted(tags or ())))
        self.set_max_workers(job, max_workers)

    def set_max_workers(self, job: str, workers: int | None) -> None:
        """At most ``workers`` datums of ``job`` at once (None: no cap beyond the farm's)."""
        self._set(job, max_workers=workers)
        self._wake()

    # -- datums running now, for max_workers ---------------------------------------------------

    def try_start(self, shot: str, cap: int | None) -> bool:
        """Count one more running datum of ``shot``, unless ``cap`` are running already
        (checked and counted at once: workers of every pipeline ask)."""
        with self._guard:
            running = self._running.get(shot, 0)
            if cap is not None and running >= cap:
                return False
            self._running[shot] = running + 1
            return True

    def ended(self, shot: str | None, capped: bool) -> None:
        """A datum of ``shot`` ended; ``capped``: its shot has a cap, so workers of every
        pipeline waiting for room are woken."""
        if shot is None:
            return
        with self._guard:
            left = self._running.get(shot, 0) - 1
            if left > 0:
                self._running[shot] = left
            else:
                self._running.pop(shot, None)
        if capped:
            self._wake()

    def running(self, shot: str) -> int:
        with self._guard:
            return self._running.get(shot, 0)

    def on_room(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake()`` whenever a capped shot may take one more datum, until the returned
        function is called."""
        return self._listen(self._wakers, wake)

    def _listen(self, listeners: list[Any], listener: Any) -> Callable[[], None]:
        """Add ``listener`` to ``listeners``; the returned function removes it."""
        with self._guard:
            listeners.append(listener)

        def forget() -> None:
            with self._guard:
                if listener in listeners:
                    listeners.remove(listener)
        return forget

    def _wake(self) -> None:
        # Woken on a thread of its own: the caller may hold one pool's lock, and a waker
        # takes another's.
        with self._guard:
            wakers = list(self._wakers)
        if wakers:
            threading.Thread(target=lambda: [w() for w in wakers], daemon=True,
                             name="max-workers-wake").start()

    def set_priority(self, job: str, priority: int) -> None:
        self._set(job, priority=priority)

    def pause(self, job: str) -> None:
        self._set(job, paused=True)

    def resume(self, job: str) -> None:
        """Un-pause and un-cancel: the shot's deferred datums run in the next job."""
        self._set(job, paused=False, cancelled=False)

    def cancel(self, job: str) -> None:
        self._set(job, cancelled=True)
        with self._guard:
            killers = list(self._killers)
        for kill in killers:
            kill(job)

    def kill_all(self) -> None:
        """Kill every process serving any datum (the engine is shutting down)."""
        with self._guard:
            killers = list(self._killers)
        for kill in killers:
            kill(ALL)

    def on_cancel(self, kill: Callable[[str], None]) -> Callable[[], None]:
        """Call ``kill(job)`` on every cancel until the returned function is called."""
        return self._listen(self._killers, kill)
