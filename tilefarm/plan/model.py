"""The job plan and task manifests (schemas ``plan`` and ``task``).

A plan is complete and serialisable: the renderer, merger and encoder act on
it (and on the task manifests cut from it) without re-reading the scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tilefarm.plan.facts import SceneFacts
from tilefarm.plan.schemas import read_json

PLAN_VERSION = 1


@dataclass(frozen=True)
class Region:
    """The pixels a task renders: its tile grown by the overscan, and the border giving them."""

    x0: int
    y0: int
    x1: int
    y1: int
    min_x: float
    max_x: float
    min_y: float
    max_y: float


@dataclass(frozen=True)
class Tile:
    """One tile of the frame: half-open pixel rect, origin top-left."""

    index: int
    x0: int
    y0: int
    x1: int
    y1: int
    render: Region


@dataclass(frozen=True)
class Task:
    id: str
    chunk: int
    frames: list[int]
    tile: Tile | None  # None when the frame is rendered whole


@dataclass(frozen=True)
class OutputSpec:
    file_format: str
    extension: str
    preview: bool  # the final format cannot be encoded directly; the merger writes an 8-bit PNG too
    # How the merger runs the output stage (tilefarm.plan.planner.output_stage):
    # "image_nodes" or "render_result" (Blender's own, through a pass-through engine).
    stage: str


@dataclass(frozen=True)
class VideoSpec:
    enabled: bool
    codec: str
    crf: int
    preset: str
    audio: str | None


@dataclass(frozen=True)
class DependencyEntry:
    """A file the job needs besides its main .blend: where it is inside the packed job (or,
    when missing, the path the .blend names), its size, and whether it is missing."""

    path: str
    bytes: int
    missing: bool


@dataclass(frozen=True)
class Versions:
    """The Blender that saved the file (its header) and the one that renders it."""

    saved_by: str  # major.minor, e.g. "4.5"
    rendered_by: str
    note: str | None  # why they differ, where they do


@dataclass(frozen=True)
class Tiling:
    """The tile grid rendered, the one asked for, and why they differ (None when they don't)."""

    grid: str  # "NXxNY"
    requested: str
    reason: str | None


@dataclass(frozen=True)
class Plan:
    version: int
    job: str
    blend: str  # the .blend's path relative to the blends repo root
    scene: str
    width: int
    height: int
    fps: int
    fps_base: float
    frames: list[int]
    grid: list[int]  # [nx, ny], as rendered
    tiling: Tiling
    chunk: int
    overscan: int
    tiles: list[Tile]
    tasks: list[Task]
    output: OutputSpec
    video: VideoSpec
    facts: SceneFacts
    dependencies: list[DependencyEntry]
    dependencies_bytes: int  # their total size
    blender: Versions
    # One line each on what tilefarm noticed and went past: files the .blend names that the
    # render never reads, an output format replaced by frames and a video.
    notes: list[str]
    memory_limit: int | None = None  # bytes one Blender may use (tilefarm.json memory_limit)

    @property
    def tiled(self) -> bool:
        return len(self.tiles) > 1


@dataclass(frozen=True)
class TaskManifest:
    """What one renderer datum needs: the task and the few plan facts it renders by."""

    version: int
    job: str
    blend: str
    scene: str
    width: int
    height: int
    denoise: bool  # the scene denoises: render its denoising data passes instead
    output: OutputSpec  # the final format, for whole-frame tasks that render final frames
    task: Task
    blender: str  # the runtime (major.minor) that renders it: the plan's blender.rendered_by
    memory_limit: int | None = None  # bytes the rendering Blender may use


def task_manifest(plan: Plan, task: Task) -> TaskManifest:
    return TaskManifest(version=PLAN_VERSION, job=plan.job, blend=plan.blend, scene=plan.scene,
                        width=plan.width, height=plan.height,
                        denoise=plan.facts.denoise.enabled, output=plan.output, task=task,
                        blender=plan.blender.rendered_by, memory_limit=plan.memory_limit)


@dataclass(frozen=True)
class PixelRect:
    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True)
class TileMeta:
    """Written by the renderer beside each tile (schema ``tile``)."""

    version: int
    job: str
    task: str
    frame: int
    tile: int
    planned: PixelRect  # the tile's own pixels
    rendered: PixelRect  # the pixels in the file: the tile plus its overscan
    render_seconds: float
    peak_memory_mb: float
    blender_version: str
    samples: int
    # A whole-frame task runs Blender's own output stage in the render (nothing needs
    # merging): the final frame's file name beside this metadata, else None.
    final: str | None


def read_plan(path: Path) -> Plan:
    """Read and validate a job's ``plan.json``."""
    return read_json(path, "plan", Plan)


def read_task(path: Path) -> TaskManifest:
    """Read and validate a task manifest."""
    return read_json(path, "task", TaskManifest)
