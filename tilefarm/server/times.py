"""A job's times as the jobs view shows them, the columns render-watch tables have had:
elapsed, queuing (from submission to its first datum's start), processing (the time its
datums ran, over every machine), and the ETA, simulated from its own measured datum times
(``plan.estimate.remaining``) rather than drawn from its progress."""

from __future__ import annotations

import statistics
from typing import Any

from tilefarm.plan.estimate import remaining

Rows = dict[str, list[Any]]  # pipeline -> the job's datum rows (``state.datum_rows``)


def running_now(datum: Any) -> bool:
    """A datum row started and not yet ended (a retry counts from its own start)."""
    return datum["state"] == "pending" and datum["started"] is not None and (
        datum["finished"] is None or datum["started"] >= datum["finished"])


def ran(datum: Any) -> float | None:
    """How long a datum that ended ran (its last try); None if it did not run here."""
    if datum["state"] in ("success", "failed") and datum["started"] and datum["finished"]:
        return max(0.0, datum["finished"] - datum["started"])
    return None


def processing_s(rows: Rows, now: float) -> float:
    """The seconds its datums ran, summed over every machine: ended ones, and running ones
    so far."""
    total = 0.0
    for datums in rows.values():
        for d in datums:
            seconds = now - d["started"] if running_now(d) else ran(d)
            total += max(0.0, seconds or 0.0)
    return round(total, 1)


def queuing_s(submitted: float | None, rows: Rows, now: float) -> float | None:
    """From its submission to its first datum's start (to now, while none has started)."""
    if submitted is None:
        return None
    first = min((d["started"] for datums in rows.values() for d in datums if d["started"]),
                default=None)
    return round(max(0.0, (first if first is not None else now) - submitted), 1)


def eta_s(rows: Rows, tasks_total: int, frames_left: int, video_left: bool, workers: int,
          now: float) -> float | None:
    """Seconds until the job ends: its render tasks, merges and encode left, each costed as
    the median of those of its kind that have ended, scheduled on its workers. None until
    a render task has ended (nothing measured)."""
    def median(pipeline: str) -> float | None:
        seconds = [s for d in rows.get(pipeline, []) if (s := ran(d)) is not None
                   and d["state"] == "success"]
        return statistics.median(seconds) if seconds else None

    per_task = median("renderer")
    if per_task is None:
        return None
    renders = rows.get("renderer", [])
    running = [max(0.0, per_task - (now - d["started"])) for d in renders if running_now(d)]
    done = sum(1 for d in renders if d["state"] in ("success", "skipped"))
    queued = max(0, tasks_total - done - len(running))
    merge = median("merger") or 0.0  # not measured yet: left out until it is
    encode = (median("encoder") or 0.0) if video_left else 0.0
    return round(remaining(running, [per_task] * queued, [merge] * frames_left, encode,
                           max(1, workers)), 1)
