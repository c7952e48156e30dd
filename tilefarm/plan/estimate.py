"""Estimating a job before it renders: which frames to probe, and the scheduler simulated.

Pure: the probe renders and their measurements come from ``tilefarm estimate``
(``cli/estimate_cmd.py``). A job renders as ``tilefarm render`` runs it: a start-up (intake,
the split, the first Blender), then every render task, then every frame's merge, then the
encode, each stage starting once the one before is done (one job per pipeline, as in
Pachyderm). On N machines, each free machine takes the next task in the plan's order.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass


def probe_frames(frames: Sequence[int], share: float = 0.1, least: int = 2,
                 most: int = 8) -> list[int]:
    """The frames to render as probes: ``share`` of them (at least ``least``, at most
    ``most``), each the middle frame of an equal part of the range, so that a look that
    changes along the shot (a camera move, an object entering) is sampled all along it."""
    count = min(len(frames), max(least, min(most, math.floor(share * len(frames)))))
    if count == 0:
        return []
    return sorted({frames[min(len(frames) - 1, int((i + 0.5) * len(frames) / count))]
                   for i in range(count)})


def next_probe(frames: Sequence[int], probed: dict[int, float], floor: float = 0.1
               ) -> int | None:
    """The frame to probe next: the middle of the stretch of frames between probes (or
    between a probe and the range's end) where the line drawn through the probes is least
    sure. A stretch counts its frames times the change of seconds across it, at least
    ``floor`` of the probes' mean (an end's change is unknown: the floor). None: every
    frame is probed."""
    if not probed:
        return None
    mean = sum(probed.values()) / len(probed)
    points = sorted(probed)
    stretches = [(None, points[0])] + list(zip(points, points[1:])) + [(points[-1], None)]
    best, pick = 0.0, None
    for low, high in stretches:
        inside = [f for f in frames if (low is None or f > low) and (high is None or f < high)]
        if not inside:
            continue
        change = (abs(probed[high] - probed[low]) if low is not None and high is not None
                  else 0.0)
        score = len(inside) * max(change, floor * mean)
        if score > best:
            best, pick = score, inside[(len(inside) - 1) // 2]
    return pick


def interpolate(measured: dict[int, float], frame: int) -> float:
    """A frame's value from the probes': linear between the two nearest, flat beyond."""
    points = sorted(measured.items())
    if frame <= points[0][0]:
        return points[0][1]
    if frame >= points[-1][0]:
        return points[-1][1]
    for (f0, v0), (f1, v1) in zip(points, points[1:]):
        if f0 <= frame <= f1:
            return v0 + (v1 - v0) * (frame - f0) / (f1 - f0)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Stages:
    """What a job costs on one machine, stage by stage, in seconds."""

    startup: float  # before the first render task: intake, split, the first Blender
    tasks: tuple[float, ...]  # each render task, in the plan's order
    merges: tuple[float, ...]  # each frame's merge
    encode: float


def list_schedule(durations: Sequence[float], workers: int) -> float:
    """When the last of ``durations`` ends, each going to the machine free first."""
    if not durations:
        return 0.0
    free = [0.0] * max(1, workers)
    for duration in durations:
        heapq.heapreplace(free, free[0] + duration)
    return max(free)


def makespan(stages: Stages, workers: int) -> float:
    """The wall time of the job on ``workers`` machines like the one measured."""
    return (stages.startup + list_schedule(stages.tasks, workers)
            + list_schedule(stages.merges, workers) + stages.encode)


def with_straggler(stages: Stages, workers: int, slowdown: float) -> float:
    """The makespan when one machine runs ``slowdown`` times slower (a straggler: a throttled
    or busy machine holds its last task). On one machine, every task is slow."""
    if workers <= 1:
        return makespan(Stages(stages.startup, tuple(t * slowdown for t in stages.tasks),
                               tuple(m * slowdown for m in stages.merges), stages.encode), 1)
    free = [(0.0, i) for i in range(workers)]
    for duration in stages.tasks:
        at, machine = heapq.heappop(free)
        heapq.heappush(free, (at + duration * (slowdown if machine == 0 else 1.0), machine))
    renders = max(at for at, _ in free)
    return stages.startup + renders + list_schedule(stages.merges, workers) + stages.encode



def remaining(running: Sequence[float], queued: Sequence[float], merges: Sequence[float],
              encode: float, workers: int) -> float:
    """Seconds until a running job ends: each running task's time left on its own machine,
    then the queued tasks each to the machine free first, then the merges, then the encode
    (the stages in turn, as ``makespan`` has them)."""
    free = sorted(running)[-max(1, workers):] if running else []
    free = [0.0] * max(0, max(1, workers) - len(free)) + free
    heapq.heapify(free)
    for duration in queued:
        heapq.heapreplace(free, free[0] + duration)
    return max(free) + list_schedule(merges, workers) + encode
