"""``tilefarm estimate JOB``: how long a job will take, and on how many machines it is worth it.

It renders probe frames (``plan.estimate.probe_frames``) with ``tilefarm render --workers
1``, exactly as the job will render (its tiles, its Blender), and measures every datum: each
tile's seconds, each merge, the encode, and the start-up (the probe's wall time less its
datums'). Every other frame's tiles are interpolated between the probes', and the job's tasks
are scheduled on 1, 2, 4... machines like this one (``plan.estimate.makespan``). With
``--root``, a store where the job was rendered before, its measured datums stand in for
the probes: no probe is rendered.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tilefarm.cli.flags import add_plan_flags, flag_settings
from tilefarm.cli.render_cmd import PROBE_ENV
from tilefarm.engine.store import Store, records
from tilefarm.errors import TilefarmError, UsageError
from tilefarm.plan import layout
from tilefarm.plan.estimate import (Stages, interpolate, makespan, probe_frames,
                                    with_straggler)
from tilefarm.plan.model import Plan, read_plan
from tilefarm.plan.preempt import COMPOSE, NeverFinishes, distribution, recommend
from tilefarm.plan.wholeframe import whole_frame_reason
from tilefarm.sizes import format_size
from tilefarm.splitter.intake import open_job
from tilefarm.splitter.split import FACTS_CACHE_ENV, plan_job

NOISE = 0.10  # run-to-run spread of a render's time on one machine (bench/estimate.py)
STRAGGLER = 1.5  # the slow machine of the range's high end: half as fast again
WARM_UP = 0.6  # a Blender's start and the file's opening, of planning's inspection
REPLACE = 60.0  # seconds until a preempted spot worker is back: an instance's boot, Blender's


@dataclass
class Measured:
    """What a render of some of a job's frames took, datum by datum."""

    plan: Plan
    tiles: dict[int, dict[int, float]]  # tile index (0: whole frame) -> frame -> seconds
    merges: list[float]
    encode: float
    startup: float
    peak: int | None
    wall: float
    first: tuple[int, int] | None = None  # the (tile, frame) its renderer ran first

    def warm_up(self, most: float) -> None:
        """Move the first render datum's Blender start from its frame to the start-up, where
        a render pays it. ``most``: what starting a Blender, opening the file and inspecting
        it took at planning; the start is WARM_UP of that (bench/estimate.py: a first datum
        ran 0.8 s over the next on the demo scene, where planning took 1.3 s)."""
        if self.first is None:
            return
        tile, frame = self.first
        excess = min(WARM_UP * most, 0.9 * self.tiles[tile][frame])
        self.tiles[tile][frame] -= excess
        self.startup += excess


def measure(root: Path, job: str, wall: float | None) -> Measured:
    """The datum times of ``job``'s last render in the store at ``root``. ``wall``: the
    render's own wall time; None: the store's job times stand in (history)."""
    store = Store(root)
    try:
        head = store.head("splitter")
        plan_info = next((f for f in store.files(head.id if head else None)
                          if f.path == f"/{layout.plan_path(Path(''), job)}"), None)
        if plan_info is None:
            raise UsageError(f"no render of job {job} is in this store", path=root)
        plan = read_plan(store.object_path(plan_info.hash))
        tasks = {task.id: task for task in plan.tasks}
        spent: dict[str, list[float]] = defaultdict(list)
        tiles: dict[int, dict[int, float]] = defaultdict(dict)
        peak, first, last = None, None, None
        earliest: tuple[float, tuple[int, int]] | None = None
        for pipeline in ("splitter", "renderer", "merger", "encoder"):
            # A server's store holds every shot's jobs: this shot's, or whole commits'.
            jobs = [j for j in records.jobs(store, pipeline) if j["state"] == "success"
                    and j["shot"] in (job, None)]
            for row in jobs[:1]:  # the newest
                first = min(first or row["created"], row["created"])
                last = max(last or 0.0, row["finished"] or 0.0)
                for datum in records.job_datums(store, row["id"], "success"):
                    seconds = (datum["finished"] or 0.0) - (datum["started"] or 0.0)
                    spent[pipeline].append(seconds)
                    parts = [path for _, path in json.loads(datum["inputs"])]
                    if pipeline != "renderer":
                        continue
                    peak = max(peak or 0, datum["peak_memory"] or 0) or None
                    task = next((tasks.get(Path(p).stem) for p in parts
                                 if p.startswith(f"/{job}/tasks/")), None)
                    if task is not None:
                        index = task.tile.index if task.tile else 0
                        for frame in task.frames:
                            tiles[index][frame] = seconds / len(task.frames)
                        if earliest is None or datum["started"] < earliest[0]:
                            earliest = (datum["started"], (index, task.frames[0]))
    finally:
        store.close()
    if not tiles:
        raise UsageError(f"no render datum of job {job} is in this store", path=root)
    work = sum(sum(v) for v in spent.values())
    if wall is None:  # history: from the split's start to the encode's end
        wall = (last or 0.0) - (first or 0.0)
    return Measured(plan, dict(tiles), spent["merger"], sum(spent["encoder"]),
                    max(0.0, wall - work) + sum(spent["splitter"]), peak, wall,
                    earliest[1] if earliest and len(tasks) > 1 else None)


def probe(args: argparse.Namespace, job: str, frames: list[int], work: Path) -> Measured:
    """Render ``frames`` of the job as ``tilefarm render --workers 1`` would, and measure."""
    out = work / "probe"
    argv = [str(Path(sys.executable).with_name("tilefarm")), "render", args.job, "--out",
            str(out), "--frames", ",".join(map(str, frames)), "--workers", "1", "--chunk", "1"]
    for flag in ("tiles", "overscan", "scene", "blender", "memory_limit"):
        value = getattr(args, flag)
        if value is not None:
            argv += [f"--{flag.replace('_', '-')}", str(value)]
    if args.allow_missing:
        argv.append("--allow-missing")
    env = {k: v for k, v in os.environ.items() if k != "TILEFARM_ROOT"}
    env[PROBE_ENV] = "1"  # measured here, whatever nodes the job's tags ask for
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        raise TilefarmError(f"the probe render failed: {lines[-1] if lines else done.returncode}")
    return measure(out / ".tilefarm", job, wall)


def estimate(args: argparse.Namespace, plan: Plan, measured: Measured, probe_seconds: float,
             history: bool) -> dict[str, Any]:
    """The estimate of ``plan`` from ``measured`` (its keys are the ``--json`` contract)."""
    grid = {t.tile.index if t.tile else 0 for t in plan.tasks}
    same_grid = grid <= set(measured.tiles)
    frame_seconds = {f: sum(interpolate(measured.tiles[t], f) for t in measured.tiles)
                     for f in plan.frames}

    def task_seconds(frames: list[int], tile: int, area: float) -> float:
        if same_grid:
            return sum(interpolate(measured.tiles[tile], f) for f in frames)
        return sum(frame_seconds[f] * area for f in frames)  # another grid: by its area

    tasks = tuple(task_seconds(t.frames, t.tile.index if t.tile else 0,
                               ((t.tile.x1 - t.tile.x0) * (t.tile.y1 - t.tile.y0)
                                / (plan.width * plan.height)) if t.tile else 1.0)
                  for t in plan.tasks)
    merge = statistics.fmean(measured.merges) if measured.merges else 0.0
    stages = Stages(measured.startup, tasks, (merge,) * len(plan.frames),
                    measured.encode if plan.video.enabled else 0.0)
    # How much the frames between probes could differ from the line drawn through them:
    # the gap between that line and steps (each frame as its nearest probe).
    probed = {f: sum(v.get(f, 0.0) for v in measured.tiles.values())
              for f in sorted({f for v in measured.tiles.values() for f in v})}
    steps = sum(probed[min(probed, key=lambda p: (abs(p - f), p))] for f in plan.frames)
    line = sum(frame_seconds.values())
    margin = max(NOISE, abs(steps - line) / line if line > 0 else 0.0)
    low = replace(stages, tasks=tuple(t * (1 - margin) for t in tasks))
    high = replace(stages, tasks=tuple(t * (1 + margin) for t in tasks))
    rows = []
    for n in args.workers:
        span = makespan(stages, n)
        rows.append({"workers": n, "makespan_s": round(span, 2),
                     "makespan_low_s": round(makespan(low, n), 2),
                     "makespan_high_s": round(with_straggler(high, n, STRAGGLER), 2),
                     "cost": (round(span / 3600 * n * args.price_per_hour, 4)
                              if args.price_per_hour is not None else None)})
        if args.preempt is not None:
            rows[-1]["preempt"] = spot(args, plan, stages, frame_seconds, merge, n)
    ordered = sorted(frame_seconds.items(), key=lambda kv: (kv[1], kv[0]))
    return {
        "job": plan.job, "frames": len(plan.frames),
        "seconds_per_frame": {"min": round(ordered[0][1], 3),
                              "median": round(statistics.median(frame_seconds.values()), 3),
                              "max": round(ordered[-1][1], 3),
                              "min_frame": ordered[0][0], "max_frame": ordered[-1][0]},
        "cpu_seconds": round(sum(tasks) + sum(stages.merges) + stages.encode, 2),
        "peak_memory_bytes": measured.peak,
        "probe_seconds": round(probe_seconds, 2),
        "from_history": history,
    } | {"workers": rows}


def spot(args: argparse.Namespace, plan: Plan, stages: Stages, frame_seconds: dict[int, float],
         merge: float, workers: int) -> dict[str, Any]:
    """The makespan on ``workers`` spot machines (``--preempt``), as planned and with the
    tile grid and chunk that suit them best (``plan.preempt``)."""
    rate, back = args.preempt, args.replace_seconds
    untiled = max(0.0, merge - COMPOSE) if plan.tiled else merge
    tileable = whole_frame_reason(plan.facts, plan.output.file_format) is None
    grids = [(n, n) for n in (1, 2, 3, 4) if n == 1 or (
        tileable and plan.width // n >= 32 and plan.height // n >= 32)]
    chunks = [c for c in (1, 2, 4, 8) if c == 1 or c <= len(plan.frames) // workers]
    try:
        spread = distribution(stages, workers, rate, back)
        grid, chunk, best = recommend(frame_seconds, grids, chunks, untiled, stages.startup,
                                      stages.encode, workers, rate, back)
    except NeverFinishes as exc:
        raise UsageError(f"{exc} at {rate:g} interruptions a worker-hour", flag="--preempt"
                         ) from None
    return {"rate_per_hour": rate, "median_s": round(spread.median_s, 2),
            "p90_s": round(spread.p90_s, 2),
            "recommended": {"tiles": f"{grid[0]}x{grid[1]}", "chunk": chunk,
                            "median_s": round(best.median_s, 2), "p90_s": round(best.p90_s, 2)}}


def cmd_estimate(args: argparse.Namespace) -> int:
    args.workers = _workers(args.workers)
    if args.preempt is not None and not 0 <= args.preempt <= 3600:
        raise UsageError(f"{args.preempt:g} is not a rate; give interruptions per worker-hour, "
                         "0-3600", flag="--preempt")
    if args.replace_seconds is not None and args.preempt is None:
        raise UsageError("--replace-seconds is how long a preempted worker takes to come back; "
                         "give --preempt RATE with it", flag="--replace-seconds")
    if args.replace_seconds is not None and args.replace_seconds < 0:
        raise UsageError(f"{args.replace_seconds:g} is not a duration; use 0 or more seconds",
                         flag="--replace-seconds")
    if args.replace_seconds is None:
        args.replace_seconds = REPLACE
    if args.price_per_hour is not None and args.price_per_hour < 0:
        raise UsageError(f"{args.price_per_hour:g} is not a price; use 0 or more",
                         flag="--price-per-hour")
    flags = flag_settings(args)
    source = open_job(Path(args.job))
    work = Path(tempfile.mkdtemp(prefix="tilefarm-estimate-"))
    try:
        # The probe's intake and split reuse what planning here learnt of the file; a
        # render learns it once at intake: its start-up gains that inspection's time.
        os.environ[FACTS_CACHE_ENV] = str(work / "facts")
        start = time.perf_counter()
        plan = plan_job(source, flags)  # what render refuses is refused here, before a probe
        inspect = time.perf_counter() - start
        if args.root:
            measured = measure(Path(args.root), source.job, None)
            measured.warm_up(most=inspect)
            result = estimate(args, plan, measured, 0.0, history=True)
            frames: list[int] = sorted({f for v in measured.tiles.values() for f in v})
        else:
            frames = probe_frames(plan.frames)
            measured = probe(args, source.job, frames, work)
            measured.startup += inspect
            measured.warm_up(most=inspect)  # a Blender start is part of an inspection
            result = estimate(args, plan, measured, measured.wall, history=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
        return 0
    spf = result["seconds_per_frame"]
    how = (f"from the render in {args.root} ({len(frames)} frames measured), no probe"
           if args.root else f"{len(frames)} probe frames ({', '.join(map(str, frames))}) "
           f"rendered in {result['probe_seconds']:.1f} s")
    print(f"{plan.job}: {result['frames']} frames; {how}")
    print(f"seconds per frame: min {spf['min']:.2f} (frame {spf['min_frame']}), median "
          f"{spf['median']:.2f}, max {spf['max']:.2f} (frame {spf['max_frame']})")
    peak = result["peak_memory_bytes"]
    print(f"work: {result['cpu_seconds']:.1f} s of this machine; peak memory per Blender "
          f"{format_size(peak) if peak else 'not measured'}")
    print(f"{'WORKERS':>7}  {'MAKESPAN':>9}  {'RANGE':>17}  COST")
    for row in result["workers"]:
        cost = f"{row['cost']:.2f}" if row["cost"] is not None else "-"
        print(f"{row['workers']:>7}  {row['makespan_s']:>7.1f} s  "
              f"{row['makespan_low_s']:>7.1f}-{row['makespan_high_s']:.1f} s  {cost}")
    if args.preempt is not None:
        print(f"on spot workers, {args.preempt:g} interruptions a worker-hour, each back "
              f"{args.replace_seconds:g} s later:")
        print(f"{'WORKERS':>7}  {'MEDIAN':>9}  {'P90':>9}  BEST TILES, CHUNK: MEDIAN, P90")
        for row in result["workers"]:
            spot_, best = row["preempt"], row["preempt"]["recommended"]
            print(f"{row['workers']:>7}  {spot_['median_s']:>7.1f} s  {spot_['p90_s']:>7.1f} s  "
                  f"{best['tiles']}, {best['chunk']}: {best['median_s']:.1f} s, "
                  f"{best['p90_s']:.1f} s")
    return 0


def _workers(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise UsageError(f"{text!r} is not a list of worker counts; give e.g. 1,2,4,8",
                         flag="--workers")
    return sorted(set(counts))


def _estimate_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("estimate", help="how long a job takes, and on how many machines",
                       description="Render a few probe frames of a job as tilefarm render "
                                   "would, then simulate the whole job on 1, 2, 4... machines "
                                   "like this one: makespan, its range, and cost.")
    p.add_argument("job", metavar="SCENE.blend|JOB_DIR")
    add_plan_flags(p)
    p.add_argument("--workers", default="1,2,4,8,16", metavar="N[,N...]",
                   help="machine counts to simulate (default 1,2,4,8,16)")
    p.add_argument("--price-per-hour", type=float, metavar="X",
                   help="what one machine costs an hour: the table gets a cost column")
    p.add_argument("--root", metavar="DIR",
                   help="a store where the job was rendered before (e.g. OUT/.tilefarm): "
                        "its measured times stand in for probes")
    p.add_argument("--preempt", type=float, metavar="RATE",
                   help="simulate spot workers taken away RATE times per worker-hour: the "
                        "makespan's median and p90, and the tiles and chunk that suit them")
    p.add_argument("--replace-seconds", type=float, metavar="S",
                   help=f"with --preempt: how long a taken worker takes to come back (a new "
                        f"instance boots and starts Blender; default {REPLACE:g})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_estimate)


ESTIMATE_COMMANDS = [_estimate_parser]
