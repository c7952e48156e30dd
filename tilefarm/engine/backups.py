"""Backup copies of straggling datums, as MapReduce's backup tasks.

On a farm of mixed machines the last datum on the slowest one sets a job's end. So, when a
job has no queued datum left and a worker is free, a running datum that has taken more
than ``FACTOR`` times the median of the job's finished datums of the same kind (``kind``:
a chunk, a tile, a frame's merge) gets a copy on that worker, on another machine than the
first copy's. The first copy to finish wins: its outcome is recorded once, and the other
copy is cancelled (its Blender ended) and forgotten. A copy that fails while the other
still runs is forgotten too: the other decides the datum's outcome, and a failure costs
the datum one try, as without backups. A datum gets one backup a try.

A copy is a ``DatumRun`` of its own (``primary`` names the first), so the memory budget,
``max_workers`` and cancel count it as the running datum it is. Backups run on Ray pools
(``nodes.pool``), where a worker may be a slower machine; a local pool's workers share
one machine, where a copy cannot finish sooner.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from tilefarm.runtime.procs import kill_tree

if TYPE_CHECKING:
    from tilefarm.engine.workers import DatumRun, JobWorkers

FACTOR = 2.0  # a datum running longer than FACTOR x its kind's median straggles


def kind(run: "DatumRun") -> str:
    """What a datum is, without its numbers: ``/shot/tasks/c#-t#.json`` for any tile."""
    return "\0".join(f"{p.name}:{re.sub(r'[0-9]+', '#', p.path)}" for p in run.datum.parts)


@dataclass
class Timings:
    """How long a job's finished datums took, by kind."""

    seconds: dict[str, list[float]] = field(default_factory=dict)

    def record(self, run: "DatumRun", seconds: float) -> None:
        self.seconds.setdefault(kind(run), []).append(seconds)

    def limit(self, run: "DatumRun") -> float | None:
        """The running time past which ``run`` straggles; None before a datum of its kind
        has finished."""
        done = self.seconds.get(kind(run))
        return FACTOR * statistics.median(done) if done else None


class Outcome(Enum):
    RECORD = "record"  # this copy's outcome is the datum's
    DROP = "drop"  # failed while the other copy runs on: that one decides
    LOST = "lost"  # the other copy won; this one's outcome is discarded


def stragglers(job: "JobWorkers", accept: Callable[["DatumRun"], bool] | None,
               place: str | None, now: float) -> tuple[list["DatumRun"], float | None]:
    """The running datums of ``job`` a worker at ``place`` may back up now, the longest
    overdue first, and the seconds until the next one straggles (None: none will)."""
    due: list[tuple[float, "DatumRun"]] = []
    soonest: float | None = None
    with job.lock:
        if job.queue or job.stopping.is_set():
            return [], None
        running = [r for r in job.running if r.primary is None and r.backup is None]
    for run in running:
        limit = job.timings.limit(run)
        if limit is None or (place is not None and run.place == place) \
                or (accept is not None and not accept(run)):
            continue
        overdue = now - run.started - limit
        if overdue > 0:
            due.append((overdue, run))
        else:
            soonest = -overdue if soonest is None else min(soonest, -overdue)
    return [run for _, run in sorted(due, key=lambda d: -d[0])], soonest


def start(job: "JobWorkers", run: "DatumRun", place: str | None) -> "DatumRun | None":
    """A backup copy of ``run``, counted as running; None if ``run`` no longer straggles
    alone, or its job runs as many datums as it may (``max_workers``)."""
    from tilefarm.engine.workers import DatumRun

    now = time.monotonic()
    with job.lock:
        if run not in job.running or run.backup is not None or job.stopping.is_set():
            return None
        if job.control is not None and run.shot is not None and not \
                job.control.try_start(run.shot, job.control.get(run.shot).max_workers):
            return None
        copy = DatumRun(run.datum, tries=run.tries, order=run.order, alone=run.alone,
                        final=run.final, started=now, primary=run, place=place)
        run.backup = copy
        job.running.add(copy)
    return copy


def undo(job: "JobWorkers", copy: "DatumRun") -> None:
    """Forget ``copy`` before it ran (no room for it in the memory budget)."""
    assert copy.primary is not None
    with job.lock:
        job.running.discard(copy)
        copy.primary.backup = None
    job.ended(copy)


def announce(job: "JobWorkers", copy: "DatumRun") -> None:
    """Say that ``copy`` starts, and why."""
    run = copy.primary
    assert run is not None
    limit = job.timings.limit(run) or 0.0
    say(job, run, f"has run {copy.started - run.started:.1f} s, over {FACTOR:g}x the median "
        f"of its kind ({limit / FACTOR:.1f} s), on {run.place or 'its worker'}: a backup copy "
        f"starts on {copy.place or 'another worker'}")


def settle(job: "JobWorkers", copy: "DatumRun", ok: bool) -> tuple[Outcome, "DatumRun | None"]:
    """What ``copy``'s outcome means for its datum, and the other copy to cancel (the
    loser, when ``copy`` wins while it runs)."""
    primary = copy.primary or copy
    with job.lock:
        job.running.discard(copy)
        twin = primary.backup if copy is primary else primary
        if twin is None:
            return Outcome.RECORD, None  # never copied
        if primary.winner is not None and primary.winner is not copy:
            primary.backup = primary.winner = None
            return Outcome.LOST, None
        if twin in job.running:
            if not ok:  # one backup a try: a failed one is not made again
                return Outcome.DROP, None
            primary.winner = copy
            outcome: tuple[Outcome, "DatumRun | None"] = (Outcome.RECORD, twin)
        else:  # the last copy standing decides
            primary.backup = primary.winner = None
            outcome = (Outcome.RECORD, None)
    if outcome[1] is not None:
        which = "backup" if copy is not primary else "first"
        say(job, primary, f"the {which} copy on {copy.place or 'its worker'} won; the other "
            f"copy, on {twin.place or 'its worker'}, is cancelled")
    return outcome


def drop(job: "JobWorkers", copy: "DatumRun") -> bool:
    """Forget ``copy`` if the other copy of its datum runs on (it was lost with its node):
    True if it was forgotten, False if it was the datum's only copy."""
    primary = copy.primary or copy
    with job.lock:
        twin = primary.backup if copy is primary else primary
        if twin is None or twin not in job.running:
            if copy is primary:
                primary.backup = primary.winner = None
            return False
        job.running.discard(copy)
        return True


def cancel(job: "JobWorkers", copy: "DatumRun") -> None:
    """End ``copy`` (the other copy won), wherever it runs, its Blender included."""
    for proc, served in list(job.serving.values()):
        if served is copy:
            kill_tree(proc)
    for end, served in list(job.remote.values()):
        if served is copy:
            end()


def moot(run: "DatumRun") -> bool:
    """Whether the other copy of ``run``'s datum has already won."""
    primary = run.primary or run
    return primary.winner is not None and primary.winner is not run


def say(job: "JobWorkers", run: "DatumRun", what: str) -> None:
    """One line in the datum's log and on stderr, naming the datum by its task."""
    task = max((p.path for p in run.datum.parts), key=len, default=run.datum.id)
    line = f"tilefarm: {job.spec.name}: datum {run.datum.id[:12]} ({task}): {what}"
    print(line, file=sys.stderr, flush=True)
    log = job.logs / f"{run.datum.id}.log"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as sink:
            sink.write(line + "\n")
    except OSError:
        pass
