"""Steering render jobs across pipelines: priority, pause, cancel, re-render.

A render job (a shot) is a top-level entry of the ``blends`` repo: ``/SHOT.blend`` or
``/SHOT/``. Its datums in every pipeline carry its name as their first path component
(``/SHOT/tasks/...``, ``/SHOT/tiles/000005``), which is how a datum is told apart.

- **Priority** orders which pending datum a worker takes next, across shots.
- **Pause** starts no new datum of the shot; running ones finish. Its pending datums are
  recorded as ``deferred`` and the pipeline job ends without them (its other shots go on
  downstream); a resume runs them in a new job, skipping finished work as a rerun does.
- **Cancel** also kills the processes serving the shot (Blender included: each runs in its
  own process group) and records their datums as ``deferred``, never ``failed``, so the
  store holds only whole outputs and a resume renders what was cut short.

A pipeline job keeps the holds it started with: a resume reaches only jobs started after
it, so a merger job already running never merges a frame whose tiles were deferred.
The state lives in the store (``job_control``) and survives restarts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tilefarm.engine.store import Store, records

ALL = "*"  # not a job name (job names never hold "*"): every job, for kill_all


@dataclass(frozen=True)
class JobControl:
    job: str
    priority: int = 0
    paused: bool = False
    cancelled: bool = False

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
        self._guard = threading.Lock()

    def get(self, job: str) -> JobControl:
        row = records.control(self.store, job)
        if row is None:
            return JobControl(job)
        return JobControl(job, row["priority"], bool(row["paused"]), bool(row["cancelled"]))

    def all(self) -> dict[str, JobControl]:
        return {r["job"]: JobControl(r["job"], r["priority"], bool(r["paused"]),
                                     bool(r["cancelled"])) for r in records.controls(self.store)}

    def held(self) -> set[str]:
        return {job for job, c in self.all().items() if c.held}

    def _set(self, job: str, **values: int) -> None:
        current = self.get(job)
        row = {"priority": current.priority, "paused": int(current.paused),
               "cancelled": int(current.cancelled), **values}
        records.put_control(self.store, job, row["priority"], row["paused"], row["cancelled"])

    def set_priority(self, job: str, priority: int) -> None:
        self._set(job, priority=priority)

    def pause(self, job: str) -> None:
        self._set(job, paused=1)

    def resume(self, job: str) -> None:
        """Un-pause and un-cancel: the shot's deferred datums run in the next job."""
        self._set(job, paused=0, cancelled=0)

    def cancel(self, job: str) -> None:
        self._set(job, cancelled=1)
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
        with self._guard:
            self._killers.append(kill)

        def forget() -> None:
            with self._guard:
                if kill in self._killers:
                    self._killers.remove(kill)
        return forget
