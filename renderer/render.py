"""Executes task manifests: one warm Blender session renders every frame of each task."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from tilefarm.blender.runner import BlenderSession
from tilefarm.blender.side.protocol import Region, RenderRequest
from tilefarm.errors import BlenderMemory, RenderError
from tilefarm.plan import layout
from tilefarm.plan.model import PLAN_VERSION, PixelRect, TaskManifest, TileMeta
from tilefarm.plan.schemas import to_document
from tilefarm.runtime.files import write_json


@dataclass(frozen=True)
class RenderOptions:
    threads: int = 0  # 0: Blender's automatic count
    device: str = "CPU"
    timeout: float = 3600.0  # per task


def targets_of(manifest: TaskManifest, out: Path) -> tuple[list[Path], list[Path | None]]:
    """Where each frame of the task goes: raw tiles, or (a whole-frame task has nothing to
    merge) the final frame with its 8-bit preview where the format needs one."""
    task = manifest.task
    final = task.tile is None
    if not final:
        assert task.tile is not None
        return ([layout.tile_path(out, manifest.job, frame, task.tile.index) for frame in task.frames],
                [None for _ in task.frames])
    ext = manifest.output.extension
    return ([layout.final_frame_path(out, manifest.job, frame, ext) for frame in task.frames],
            [layout.final_preview_path(out, manifest.job, frame) if manifest.output.preview
             else None for frame in task.frames])


def render_request(manifest: TaskManifest, blend: Path, out: Path,
                   options: RenderOptions) -> RenderRequest:
    """The request that renders ``manifest`` from ``blend`` into ``out`` (pure: no I/O)."""
    task = manifest.task
    targets, previews = targets_of(manifest, out)
    tile = task.tile
    return RenderRequest(
        blend=str(blend), scene=manifest.scene, mode="final" if tile is None else "tiles",
        width=manifest.width, height=manifest.height, denoise=manifest.denoise,
        threads=options.threads, device=options.device, file_format=manifest.output.file_format,
        frames=list(task.frames),
        region=None if tile is None else Region(**dataclasses.asdict(tile.render)),
        targets=[str(t) for t in targets], previews=[str(p) if p else None for p in previews],
        file_outputs=[str(layout.final_file_output_dir(out, manifest.job, frame))
                      for frame in task.frames])


def render_task(manifest: TaskManifest, blend: Path, out: Path, session: BlenderSession,
                options: RenderOptions) -> list[Path]:
    """Render ``manifest`` from ``blend`` into ``out``; return the tile files written."""
    if not blend.is_file():
        raise RenderError(f"task {manifest.task.id} needs {manifest.blend}, which this datum "
                          "does not hold", path=blend)
    task = manifest.task
    tile_index = task.tile.index if task.tile is not None else 0
    final = task.tile is None
    request = render_request(manifest, blend, out, options)
    targets = [Path(t) for t in request.targets]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        records = session.call(request, timeout=options.timeout,
                               memory_limit=manifest.memory_limit)
    except BlenderMemory as exc:  # one line naming the job, frames and tile
        where = (f"frame {task.frames[0]}" if len(task.frames) == 1
                 else f"frames {task.frames[0]}-{task.frames[-1]}")
        tile = f" tile {task.tile.index}" if task.tile is not None else ""
        raise RenderError(f"{manifest.job}: {where}{tile}: {exc.message}") from None
    planned = (PixelRect(task.tile.x0, task.tile.y0, task.tile.x1, task.tile.y1) if task.tile
               else PixelRect(0, 0, manifest.width, manifest.height))
    for record in records:
        meta = TileMeta(version=PLAN_VERSION, job=manifest.job, task=task.id,
                        frame=record["frame"], tile=tile_index, planned=planned,
                        rendered=PixelRect(**record["rendered"]),
                        render_seconds=record["render_seconds"],
                        peak_memory_mb=record["peak_memory_mb"],
                        blender_version=record["blender_version"], samples=record["samples"],
                        final=Path(record["file"]).name if final else None)
        write_json(layout.tile_meta_path(out, manifest.job, meta.frame, tile_index),
                   to_document("tile", meta))
    return targets


def default_threads() -> int:
    return int(os.environ.get("TILEFARM_THREADS", "0") or 0)
