"""What ``tilefarm estimate`` measures: probe frames rendered in the Blender that planned the
job, or a store's history of an earlier render of it.

A probe renders its frames exactly as the renderer's datums would (the same request: the
plan's tiles as border regions, Blender's own persistent data), merges them as the merger
would and encodes them as the encoder would, all in the one Blender session that inspected
the scene for planning: a probe pays for its frames only, not for a ``tilefarm render`` of
its own (seconds of start-up, docs/performance.md). What a render pays besides its datums is
measured here too, piece by piece (``Startup``), and added up as the render pays it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tilefarm.renderer.render import RenderOptions, render_request, render_task

from tilefarm.blender.runner import BlenderSession
from tilefarm.blender.side.protocol import Region
from tilefarm.engine.store import Store, records
from tilefarm.errors import UsageError
from tilefarm.plan import layout
from tilefarm.plan.model import Plan, TaskManifest, read_plan, task_manifest
from tilefarm.plan.tiling import Rect, border_for

WARM_UP = 0.6  # a Blender's start and the file's opening, of planning's inspection
# What the engine adds to each datum around the stage's own work: handing it out, linking
# its inputs, hashing and storing its outputs. Measured: a render datum's seconds over its
# request's, 0.01-0.03 s; a whole frame's merge datum, 0.003-0.013 s.
DATUM_OVERHEAD = 0.01
# The one datum of the splitter and of the encoder is their fresh process's first: it pays
# lazy imports and the plan's schema, besides its work. Measured: the split datum 0.10-0.11
# s; the encoder's datum 0.23-0.27 s where ffmpeg alone took 0.06-0.10 s (24 frames).
FRESH_DATUM = 0.12
STAGES = 4  # started early: splitter, renderer and its Blender beside intake; merger after


def frames_of(tiles: dict[int, dict[int, float]]) -> list[int]:
    """The frames measured in ``tiles`` (tile index -> frame -> seconds)."""
    return sorted({f for v in tiles.values() for f in v})


@dataclass
class Measured:
    """What a render of some of a job's frames took, datum by datum."""

    plan: Plan
    tiles: dict[int, dict[int, float]]  # tile index (0: whole frame) -> frame -> seconds
    merges: list[float]
    encode: float  # the whole job's
    startup: float
    peak: int | None
    wall: float  # what measuring cost: the probes' wall time, or the render's (history)
    per_datum: float = 0.0  # each render datum's own cost, over its frames'
    first: tuple[int, int] | None = None  # history: the (tile, frame) its renderer ran first

    def frames(self) -> list[int]:
        """The frames measured."""
        return frames_of(self.tiles)

    def warm_up(self, most: float) -> None:
        """History: move the first render datum's Blender start from its frame to the
        start-up, where a render pays it. ``most``: what starting a Blender, opening the file
        and inspecting it took at planning; the start is WARM_UP of that (bench/estimate.py: a
        first datum ran 0.8 s over the next on the demo scene, where planning took 1.3 s)."""
        if self.first is None:
            return
        tile, frame = self.first
        excess = min(WARM_UP * most, 0.9 * self.tiles[tile][frame])
        self.tiles[tile][frame] -= excess
        self.startup += excess


@dataclass(frozen=True)
class Startup:
    """What ``tilefarm render --workers 1`` pays besides its datums, measured here.

    ``render`` starts its stage processes before their jobs (``Engine.prestart``): the
    splitter's, the renderer's and its Blender beside intake, the merger's once intake is
    done. They cost no hand-off, but they share the cores with intake or the first datums,
    which took about one stage start longer for each of them (docs/performance.md: intake
    1.45-1.54 s before, 1.72-1.85 s after)."""

    cli: float  # this process's own start: Python and tilefarm's imports
    planning: float  # intake: a Blender's start, the inspection, tracing and packing
    stage: float  # a stage process's start (python -m tilefarm.renderer and its imports)
    first_render: float  # the renderer's first datum over the next: the file's load, sync
    compose_start: float  # the merger's Blender start, where it composes in Blender

    def total(self) -> float:
        return (self.cli + self.planning + STAGES * self.stage + FRESH_DATUM
                + self.first_render + self.compose_start)


def own_start() -> float:
    """Seconds since this process started (Linux: /proc; elsewhere 0)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def stage_start() -> subprocess.Popen[bytes]:
    """Start what a stage's process starts with: Python and the renderer's imports. It
    prints the monotonic clock (one clock for every process) once they are done."""
    return subprocess.Popen([sys.executable, "-c", "import tilefarm.renderer.__main__, time; "
                             "print(time.monotonic())"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def stage_seconds(proc: subprocess.Popen[bytes], started: float) -> float:
    """How long ``proc`` (``stage_start``, begun at ``time.monotonic()`` ``started``) took to
    be ready; 0 if it failed."""
    out, _ = proc.communicate()
    try:
        return max(0.0, float(out.decode().strip()) - started)
    except ValueError:
        return 0.0


class Prober:
    """Renders, merges and encodes probe frames of ``plan`` in ``session``, and keeps each
    one's seconds."""

    def __init__(self, plan: Plan, blend: Path, session: BlenderSession, work: Path) -> None:
        self.plan, self.blend, self.session, self.work = plan, blend, session, work
        self.tiles: dict[int, dict[int, float]] = defaultdict(dict)
        self.calls: list[float] = []  # each render request's seconds over its frame's render
        self.merges: dict[int, float] = {}
        self.peak_mb = 0.0
        self.warmed = False  # the warm-up render ran (``_warm_up``)
        self.first_excess = 0.0
        self.compose_first = 0.0
        self.spent = 0.0

    def frame(self, frame: int) -> None:
        """Render ``frame``'s tiles."""
        began = time.perf_counter()
        out = self.work / "tiles"
        for task in self.plan.tasks:
            if frame not in task.frames:
                continue
            manifest = task_manifest(self.plan, dataclasses.replace(task, frames=[frame]))
            if not self.warmed:
                self._warm_up(manifest, frame)
            start = time.perf_counter()
            render_task(manifest, self.blend, out, self.session, RenderOptions())
            seconds = time.perf_counter() - start
            tile = task.tile.index if task.tile else 0
            meta = json.loads(layout.tile_meta_path(out, self.plan.job, frame, tile)
                              .read_text(encoding="utf-8"))
            self.peak_mb = max(self.peak_mb, float(meta["peak_memory_mb"]))
            rendered = float(meta["render_seconds"])
            self.tiles[tile][frame] = rendered
            self.calls.append(seconds - rendered)
        self.spent += time.perf_counter() - began

    def _warm_up(self, manifest: TaskManifest, frame: int) -> None:
        """Render 8x8 pixels of the first probe frame, as its task's request: the file's
        load and Blender's first sync of the scene (its BVH, shaders, images), which the
        renderer pays once, at its first datum. The probes after it render warm."""
        plan, out = self.plan, self.work / "warm-up"
        request = render_request(manifest, self.blend, out, RenderOptions())
        x, y = max(0, plan.width // 2 - 4), max(0, plan.height // 2 - 4)
        rect = Rect(x, y, min(plan.width, x + 8), min(plan.height, y + 8))
        border = border_for(rect, plan.width, plan.height)
        out.mkdir(parents=True, exist_ok=True)
        request = dataclasses.replace(
            request, region=Region(rect.x0, rect.y0, rect.x1, rect.y1, border.min_x,
                                   border.max_x, border.min_y, border.max_y),
            targets=[str(out / f"{frame}{Path(request.targets[0]).suffix}")], previews=[None],
            file_outputs=[str(out / "file_outputs")])
        start = time.perf_counter()
        self.session.call(request)
        self.warmed, self.first_excess = True, time.perf_counter() - start

    def merge(self) -> None:
        """Merge every probe frame, after all renders: a compose loads the file for itself,
        and a render after it would load it again, which the renderer's warm Blender does
        not."""
        from tilefarm.merger.merge import merge_frame  # numpy and OpenEXR: not at every CLI start

        began = time.perf_counter()
        for frame in self.frames():
            start = time.perf_counter()
            merge_frame(self.plan, frame, self.work / "tiles", self.blend, self.work / "frames",
                        self.session)
            self.merges[frame] = time.perf_counter() - start
        self.spent += time.perf_counter() - began

    def settle(self) -> None:
        """What the first render and the first compose took over the others: the file's
        load and Blender's first sync, paid once by each stage (``Startup``)."""
        self.first_excess = max(0.0, self.first_excess - self.per_request())
        if self.plan.tiled and len(self.merges) > 1:
            first = min(self.merges)
            rest = statistics.median(v for f, v in self.merges.items() if f != first)
            self.compose_first = max(0.0, self.merges[first] - rest)
            self.merges[first] = rest

    def frames(self) -> list[int]:
        """The frames rendered."""
        return frames_of(self.tiles)

    def per_request(self) -> float:
        """A render request's seconds over its frames' render (the frame change, writing)."""
        return statistics.median(self.calls) if self.calls else 0.0

    def encode_seconds(self, frames: int) -> float:
        """The encoder's datum for ``frames`` frames: ffmpeg timed on all the probe frames,
        then on one, drawn as a line (its start, then each frame's cost)."""
        from tilefarm.encoder.encode import encode

        if not self.plan.video.enabled:
            return 0.0
        probed = sorted(self.merges)
        times = {}
        for count in sorted({len(probed), 1}, reverse=True):
            plan = dataclasses.replace(self.plan, frames=probed[:count])
            start = time.perf_counter()
            encode(plan, self.work / "frames", self.work / f"video-{count}")
            times[count] = time.perf_counter() - start
        self.spent += sum(times.values())
        each = (max(0.0, (times[len(probed)] - times[1]) / (len(probed) - 1))
                if len(probed) > 1 else times[1])
        return FRESH_DATUM + times[1] + each * (frames - 1)


def measure(root: Path, job: str) -> Measured:
    """The datum times of ``job``'s last render in the store at ``root`` (history: no probe).
    One render is one split: the plan and every stage's job are those of the split the newest
    finished render of the shot consumed, though a newer version may be split by now."""
    store = Store(root)
    try:
        runs = {pipeline: [j for j in records.jobs(store, pipeline) if j["state"] == "success"
                           and j["shot"] in (job, None)]  # this shot's, or whole commits'
                for pipeline in ("splitter", "renderer", "merger", "encoder")}
        split = next((json.loads(j["inputs"]).get("splitter") for j in runs["renderer"]), None)
        plan_path = f"/{layout.plan_path(Path(''), job)}"
        plan_info = next((f for f in store.files(split) if f.path == plan_path),
                         None) if split else None
        if plan_info is None:
            raise UsageError(f"no render of job {job} is in this store", path=root)
        plan = read_plan(store.object_path(plan_info.hash))
        tasks = {task.id: task for task in plan.tasks}
        spent: dict[str, list[float]] = defaultdict(list)
        tiles: dict[int, dict[int, float]] = defaultdict(dict)
        peak, first, last = None, None, None
        earliest: tuple[float, tuple[int, int]] | None = None
        for pipeline, rows in runs.items():
            of_split = [j for j in rows if (j["output"] if pipeline == "splitter"
                                            else json.loads(j["inputs"]).get("splitter")) == split]
            for row in of_split[:1]:  # the newest
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
    wall = (last or 0.0) - (first or 0.0)  # from the split's start to the encode's end
    return Measured(plan, dict(tiles), spent["merger"], sum(spent["encoder"]),
                    max(0.0, wall - work) + sum(spent["splitter"]), peak, wall,
                    first=earliest[1] if earliest and len(tasks) > 1 else None)
