"""Spot workers in the estimate (``tilefarm estimate --preempt RATE``): machines taken away.

A spot (preemptible) machine is taken away at random, as Brenda's spot bids and a cloud
farm's spot instances are: RATE interruptions per worker-hour, a Poisson process over the
time it renders (no memory: the time to the next one is drawn anew at each task's start).
An interrupted task's work is lost; the task goes back to the front of the queue (the
engine requeues a lost node's datum at no try's cost) and the machine comes back
``replace`` seconds later (a new instance boots and starts Blender). The head, which
plans and holds the store, is not preempted. Stages run one after another, as in
``plan.estimate.makespan``.

The simulation is run many times with seeded draws: a distribution (median, p90), the
same for the same inputs. ``recommend`` runs it over other tile grids and chunk sizes,
with each task's fixed cost and a tiled frame's compose as measured (``TASK_COST``,
``COMPOSE``): finer tasks lose less work to an interruption and balance better, and pay
more fixed cost.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tilefarm.plan.estimate import Stages

Gaps = Callable[[int], float]  # worker -> how long it runs from now before it is taken away

# A render task's fixed cost on a warm worker, and the compose of a tiled frame in the
# merger (docs/performance.md: 24 frames of 2.2 s, untiled 3 s over Blender's own render,
# 2x2 10 s over; issue 25: about 0.3 s a tiled frame).
TASK_COST = 0.1
COMPOSE = 0.3
MOST_TRIES = 1000  # a task lost this many times never finishes at this rate


class NeverFinishes(ValueError):
    """At this rate of interruptions a task is taken away before it can end, again and again."""


def interrupted_schedule(durations: Sequence[float], workers: int, gaps: Gaps,
                         replace: float) -> float:
    """When the last of ``durations`` ends on ``workers`` machines, each free machine taking
    the next task, where ``gaps(w)`` is how long machine w runs a task before it is taken
    away (``math.inf``: not); an interrupted task goes back to the queue's front and its
    machine is free again ``replace`` seconds after the interruption."""
    free = [(0.0, w) for w in range(max(1, workers))]
    queue = deque(durations)
    end, lost = 0.0, 0
    while queue:
        at, worker = heapq.heappop(free)
        duration = queue.popleft()
        gap = gaps(worker)
        if gap < duration:
            lost += 1
            if lost > MOST_TRIES * len(durations):
                raise NeverFinishes(f"a task of {duration:.1f} s is interrupted before it ends "
                                    "again and again")
            queue.appendleft(duration)
            heapq.heappush(free, (at + gap + replace, worker))
        else:
            heapq.heappush(free, (at + duration, worker))
            end = max(end, at + duration)
    return end


def interrupted_makespan(stages: Stages, workers: int, gaps: Gaps, replace: float) -> float:
    """``plan.estimate.makespan`` with machines taken away (``interrupted_schedule``)."""
    return (stages.startup + interrupted_schedule(stages.tasks, workers, gaps, replace)
            + interrupted_schedule(stages.merges, workers, gaps, replace)
            + interrupted_schedule([stages.encode] if stages.encode else [], workers, gaps,
                                   replace))


def spot_gaps(rate_per_hour: float, draw: random.Random) -> Gaps:
    """Exponential gaps: ``rate_per_hour`` interruptions per hour a machine renders."""
    if rate_per_hour <= 0:
        return lambda worker: math.inf
    return lambda worker: draw.expovariate(rate_per_hour / 3600.0)


@dataclass(frozen=True)
class Spread:
    median_s: float
    p90_s: float


def distribution(stages: Stages, workers: int, rate: float, replace: float, runs: int = 400,
                 seed: int = 0) -> Spread:
    """The makespan's median and 90th percentile over ``runs`` seeded simulations."""
    draw = random.Random(seed)
    spans = sorted(interrupted_makespan(stages, workers, spot_gaps(rate, draw), replace)
                   for _ in range(runs))
    return Spread(statistics.median(spans), spans[min(len(spans) - 1, math.ceil(0.9 * runs) - 1)])


def split(frame_seconds: dict[int, float], grid: tuple[int, int], chunk: int, merge: float,
          startup: float, encode: float) -> Stages:
    """The stages of the job rendered as ``grid`` tiles and ``chunk`` frames a task: a tile's
    time is its share of the frame's area, plus each task's fixed cost; a tiled frame's
    merge pays the compose. ``merge``: an untiled frame's merge."""
    frames = sorted(frame_seconds)
    count = grid[0] * grid[1]
    tasks = tuple(sum(frame_seconds[f] for f in frames[i:i + chunk]) / count + TASK_COST
                  for i in range(0, len(frames), chunk) for _ in range(count))
    return Stages(startup, tasks, (merge + (COMPOSE if count > 1 else 0.0),) * len(frames),
                  encode)


def recommend(frame_seconds: dict[int, float], grids: Sequence[tuple[int, int]],
              chunks: Sequence[int], merge: float, startup: float, encode: float,
              workers: int, rate: float, replace: float, runs: int = 200
              ) -> tuple[tuple[int, int], int, Spread]:
    """The grid and chunk whose makespan's p90 is least on ``workers`` spot machines (ties:
    the fewer tasks), with its spread."""
    best: tuple[float, int, tuple[int, int], int, Spread] | None = None
    for grid in grids:
        for chunk in chunks:
            stages = split(frame_seconds, grid, chunk, merge, startup, encode)
            try:
                spread = distribution(stages, workers, rate, replace, runs)
            except NeverFinishes:
                continue
            mine = (spread.p90_s, len(stages.tasks), grid, chunk, spread)
            if best is None or mine[:2] < best[:2]:
                best = mine
    if best is None:
        raise NeverFinishes(f"at {rate:g} interruptions a worker-hour no task size finishes")
    return best[2], best[3], best[4]
