"""``tilefarm estimate JOB``: how long a job will take, and on how many machines it is worth it.

It plans the job in a warm Blender, then renders probe frames in that same Blender exactly
as the renderer's datums would (``cli.probes``): first frames spread over the range
(``plan.estimate.probe_frames``), then, within a tenth of the job's predicted time, more
where the line through them is least sure (``next_probe``). It merges and encodes them as
the job would, and times what a render pays besides (its start-up, piece by piece). Every
other frame's tiles are interpolated between the probes', and the job's tasks are scheduled
on 1, 2, 4... machines like this one (``plan.estimate.makespan``). With ``--root``, a store
where the job was rendered before, its measured datums stand in for the probes: no probe is
rendered.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from tilefarm.blender import runtimes
from tilefarm.blender.runner import BlenderSession
from tilefarm.blender.runtimes import WarmRunner
from tilefarm.cli.flags import add_plan_flags, flag_settings
from tilefarm.cli.probes import (DATUM_OVERHEAD, Measured, Prober, Startup, measure,
                                 own_start, stage_seconds, stage_start)
from tilefarm.errors import UsageError
from tilefarm.plan.estimate import (Stages, interpolate, makespan, next_probe, probe_frames,
                                    with_straggler)
from tilefarm.plan.model import Plan
from tilefarm.plan.preempt import COMPOSE, NeverFinishes, distribution, recommend
from tilefarm.plan.wholeframe import whole_frame_reason
from tilefarm.sizes import format_size
from tilefarm.splitter.intake import open_job
from tilefarm.splitter.split import plan_job

NOISE = 0.10  # run-to-run spread of a render's time on one machine (bench/estimate.py)
STRAGGLER = 1.5  # the slow machine of the range's high end: half as fast again
REPLACE = 60.0  # seconds until a preempted spot worker is back: an instance's boot, Blender's
SHARE = 0.10  # of the job's predicted wall time, what probes may spend at most (issue 23)


def probe(plan: Plan, blend: Path, session: BlenderSession, work: Path,
          startup: Callable[[Prober], Startup]) -> Measured:
    """Render probe frames of ``plan``: first ``probe_frames``, then, while the probes have
    spent less than SHARE of the job's predicted wall time, the frames the line through them
    is least sure of (``next_probe``); then merge and encode them as the job would."""
    prober = Prober(plan, blend, session, work)
    for frame in probe_frames(plan.frames):
        prober.frame(frame)
    while True:
        per_frame = prober.spent / len(prober.frames())
        measured = _measured(plan, prober, startup(prober), 0.0)
        budget = SHARE * makespan(stages_of(plan, measured), 1)
        more = next_probe(plan.frames, frame_totals(measured))
        if more is None or prober.spent + per_frame > budget:
            break
        prober.frame(more)
    prober.merge()
    prober.settle()
    return _measured(plan, prober, startup(prober), prober.encode_seconds(len(plan.frames)))


def _measured(plan: Plan, prober: Prober, startup: Startup, encode: float) -> Measured:
    return Measured(plan, {t: dict(v) for t, v in prober.tiles.items()},
                    [m + DATUM_OVERHEAD for m in prober.merges.values()], encode,
                    startup.total(), int(prober.peak_mb * 2**20) or None, prober.spent,
                    per_datum=prober.per_request() + DATUM_OVERHEAD)


def frame_totals(measured: Measured) -> dict[int, float]:
    """Each measured frame's seconds, all its tiles."""
    return {f: sum(v.get(f, 0.0) for v in measured.tiles.values())
            for f in measured.frames()}


def stages_of(plan: Plan, measured: Measured) -> Stages:
    """What ``plan`` costs stage by stage, from ``measured``."""
    return _model(plan, measured)[0]


def _model(plan: Plan, measured: Measured) -> tuple[Stages, dict[int, float], float]:
    """``plan``'s stages from ``measured``, each frame's seconds, and the margin of the
    frames between probes."""
    grid = {t.tile.index if t.tile else 0 for t in plan.tasks}
    same_grid = grid <= set(measured.tiles)
    frame_seconds = {f: sum(interpolate(measured.tiles[t], f) for t in measured.tiles)
                     for f in plan.frames}

    def task_seconds(frames: list[int], tile: int, area: float) -> float:
        if same_grid:
            return sum(interpolate(measured.tiles[tile], f) for f in frames)
        return sum(frame_seconds[f] * area for f in frames)  # another grid: by its area

    tasks = tuple(measured.per_datum
                  + task_seconds(t.frames, t.tile.index if t.tile else 0,
                                 ((t.tile.x1 - t.tile.x0) * (t.tile.y1 - t.tile.y0)
                                  / (plan.width * plan.height)) if t.tile else 1.0)
                  for t in plan.tasks)
    merge = statistics.fmean(measured.merges) if measured.merges else 0.0
    stages = Stages(measured.startup, tasks, (merge,) * len(plan.frames),
                    measured.encode if plan.video.enabled else 0.0)
    # How much the frames between probes could differ from the line drawn through them:
    # the gap between that line and steps (each frame as its nearest probe).
    probed = frame_totals(measured)
    steps = sum(probed[min(probed, key=lambda p: (abs(p - f), p))] for f in plan.frames)
    line = sum(frame_seconds.values())
    margin = max(NOISE, abs(steps - line) / line if line > 0 else 0.0)
    return stages, frame_seconds, margin


def estimate(args: argparse.Namespace, plan: Plan, measured: Measured, probe_seconds: float,
             history: bool) -> dict[str, Any]:
    """The estimate of ``plan`` from ``measured`` (its keys are the ``--json`` contract)."""
    stages, frame_seconds, margin = _model(plan, measured)
    tasks = stages.tasks
    merge = stages.merges[0] if stages.merges else 0.0
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
    cli = own_start()
    warm: dict[str, WarmRunner] = {}

    def runner_for(series: str) -> WarmRunner:  # planning's Blender renders the probes too
        if series not in warm:
            warm[series] = WarmRunner(runtimes.runner_for(series))
        return warm[series]

    work = Path(tempfile.mkdtemp(prefix="tilefarm-estimate-"))
    began = time.monotonic()
    # A stage process's start, timed beside planning on the other core (probes only: the
    # history has the render's own start-up).
    stage = None if args.root else stage_start()
    try:
        plan = plan_job(source, flags, runner_for)  # what render refuses is refused here
        planning = time.monotonic() - began
        if stage is None:
            measured = measure(Path(args.root), source.job)
            measured.warm_up(most=planning)
            result = estimate(args, plan, measured, 0.0, history=True)
        else:
            stage_s = stage_seconds(stage, began)
            measured = probe(plan, source.blend, runner_for(plan.blender.rendered_by).session,
                             work, lambda p: Startup(cli, planning, stage_s, p.first_excess,
                                                     p.compose_first))
            result = estimate(args, plan, measured, measured.wall, history=False)
        frames = measured.frames()
    finally:
        if stage is not None:
            stage.kill()
        for runner in warm.values():
            runner.close()
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
