"""Executes task manifests: one warm Blender session renders every frame of each task."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines import layout
from pipelines.atomic import write_json
from pipelines.blender import BlenderSession
from pipelines.errors import RenderError
from pipelines.plan import PLAN_VERSION, PixelRect, TaskManifest, TileMeta
from pipelines.schemas import read_json, to_document

GPU_DEVICES = ("CUDA", "OPTIX", "HIP", "ONEAPI", "METAL")
DEVICES = ("CPU", *GPU_DEVICES)


@dataclass(frozen=True)
class RenderOptions:
    threads: int = 0  # 0: Blender's automatic count
    device: str = "CPU"
    timeout: float = 3600.0  # per task


def read_task(path: Path) -> TaskManifest:
    return read_json(path, "task", TaskManifest)


def render_task(manifest: TaskManifest, blend: Path, out: Path, session: BlenderSession,
                options: RenderOptions) -> list[Path]:
    """Render ``manifest`` from ``blend`` into ``out``; return the tile files written."""
    if not blend.is_file():
        raise RenderError(f"task {manifest.task.id} needs {manifest.blend}, which this datum "
                          "does not hold", path=blend)
    task = manifest.task
    tile_index = task.tile.index if task.tile is not None else 0
    # A whole-frame task has nothing to merge: it renders the final frame directly.
    final = task.tile is None
    ext = manifest.output.extension
    targets = [layout.final_frame_path(out, manifest.job, frame, ext) if final
               else layout.tile_path(out, manifest.job, frame, tile_index) for frame in task.frames]
    previews = [str(layout.final_preview_path(out, manifest.job, frame))
                if final and manifest.output.preview else None for frame in task.frames]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    request = {
        "action": "render", "blend": str(blend), "scene": manifest.scene,
        "task": to_document("task", manifest)["task"], "width": manifest.width,
        "height": manifest.height, "denoise": manifest.denoise, "threads": options.threads,
        "device": options.device, "targets": [str(t) for t in targets],
        "mode": "final" if final else "tiles", "file_format": manifest.output.file_format,
        "previews": previews,
    }
    records = session.call(request, timeout=options.timeout)
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
