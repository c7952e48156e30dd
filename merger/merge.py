"""Assemble a frame's tiles losslessly, then run Blender's output stage on the whole frame."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tilefarm.merger.exr import Placed, assemble, read_exrs, write_exr

from tilefarm.blender.runner import BlenderSession
from tilefarm.blender.side.protocol import ComposeRequest, DenoiseSettings
from tilefarm.errors import MergeError
from tilefarm.plan import layout
from tilefarm.plan.model import Plan, TileMeta
from tilefarm.plan.schemas import dump, read_json
from tilefarm.plan.tiling import Rect
from tilefarm.plan.wholeframe import denoise_sum_scale
from tilefarm.runtime.files import copy_file, publish


def compose_request(plan: Plan, frame: int, blend: Path, merged: Path, target: Path,
                    preview: Path | None, file_outputs: Path | None = None) -> ComposeRequest:
    """The request that runs the scene's output stage on ``merged`` (pure: no I/O)."""
    denoise = plan.facts.denoise
    return ComposeRequest(
        blend=str(blend), scene=plan.scene, file_format=plan.output.file_format,
        denoise=DenoiseSettings(enabled=denoise.enabled, prefilter=denoise.prefilter,
                                quality=denoise.quality, input_passes=denoise.input_passes,
                                sum_scale=denoise_sum_scale(plan.facts)),
        stage=plan.output.stage, frame=frame, merged=str(merged), target=str(target),
        preview=str(preview) if preview else None,
        file_outputs=str(file_outputs) if file_outputs else None)


def _file_outputs(source: Path, destination: Path) -> list[tuple[Path, Path]]:
    """(file, where it is published) for every File Output node file under ``source``."""
    if not source.is_dir():
        return []
    return [(path, destination / path.relative_to(source))
            for path in sorted(source.rglob("*")) if path.is_file()]


def gather(plan: Plan, frame: int, tiles_root: Path) -> list[Placed]:
    """Every tile of ``frame``, checked against the plan; a clear error for any missing one."""
    found: list[tuple[Path, Rect, Rect]] = []
    for tile in plan.tiles:
        exr = layout.tile_path(tiles_root, plan.job, frame, tile.index)
        meta_path = layout.tile_meta_path(tiles_root, plan.job, frame, tile.index)
        where = f"frame {frame} tile {tile.index} ({tile.x0},{tile.y0})-({tile.x1},{tile.y1})"
        if not exr.exists() or not meta_path.exists():
            missing = exr if not exr.exists() else meta_path
            raise MergeError(f"{where} is missing: no {missing.name} (its render task has not "
                             "finished or failed)", path=missing)
        meta = read_json(meta_path, "tile", TileMeta)
        rendered = Rect(meta.rendered.x0, meta.rendered.y0, meta.rendered.x1, meta.rendered.y1)
        expected = (Rect(tile.render.x0, tile.render.y0, tile.render.x1, tile.render.y1)
                    if plan.tiled else Rect(0, 0, plan.width, plan.height))
        if meta.frame != frame or meta.tile != tile.index or rendered != expected:
            raise MergeError(f"{where}: metadata says frame {meta.frame} tile {meta.tile} "
                             f"rendered {dump(meta.rendered)}, the plan wants {expected}",
                             path=meta_path)
        found.append((exr, Rect(tile.x0, tile.y0, tile.x1, tile.y1), rendered))
    images = read_exrs([exr for exr, _, _ in found])
    return [Placed(image, tile, rendered, exr) for image, (exr, tile, rendered) in zip(images, found)]


def _pass_through(plan: Plan, frame: int, tiles_root: Path, out: Path, target: Path,
                  preview: Path | None) -> Path:
    """A whole-frame task already ran the output stage: check and publish its frame."""
    meta_path = layout.tile_meta_path(tiles_root, plan.job, frame, 0)
    where = f"frame {frame} (rendered whole)"
    if not meta_path.exists():
        raise MergeError(f"{where} is missing: no {meta_path.name} (its render task has not "
                         "finished or failed)", path=meta_path)
    meta = read_json(meta_path, "tile", TileMeta)
    if meta.final is None or meta.frame != frame:
        raise MergeError(f"{where}: the renderer wrote raw tiles, not the final frame; "
                         "re-run the renderer for this plan", path=meta_path)
    files = [(meta_path.parent / meta.final, target)]
    if preview is not None:
        files.insert(0, (layout.final_preview_path(tiles_root, plan.job, frame), preview))
    # File Output nodes' files first too: a final frame implies everything of its frame.
    outputs = layout.final_file_output_dir(tiles_root, plan.job, frame)
    files[:0] = _file_outputs(outputs, layout.file_output_dir(out, plan.job))
    for source, destination in files:
        if not source.is_file():
            raise MergeError(f"{where} is missing its {source.name}", path=source)
        copy_file(source, destination)  # the preview first: a final frame implies its preview
    return target


def merge_frame(plan: Plan, frame: int, tiles_root: Path, blend: Path, out: Path,
                session: BlenderSession, timeout: float = 3600.0) -> Path:
    """Write ``out/<job>/frames/<frame>.<ext>`` (and its preview where needed); return its path."""
    if frame not in plan.frames:
        raise MergeError(f"frame {frame} is not in the plan (frames {plan.frames[0]}..."
                         f"{plan.frames[-1]})", path=tiles_root / plan.job)
    target = layout.frame_path(out, plan.job, frame, plan.output.extension)
    preview = layout.preview_path(out, plan.job, frame) if plan.output.preview else None
    if not plan.tiled:
        return _pass_through(plan, frame, tiles_root, out, target, preview)
    placed = gather(plan, frame, tiles_root)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"tilefarm-merge-{frame}-") as tmp:
        work = Path(tmp)
        if len(placed) == 1 and placed[0].rendered == Rect(0, 0, plan.width, plan.height):
            merged = placed[0].path  # a whole-frame render needs no assembly
        else:
            merged = work / "merged.exr"
            write_exr(merged, assemble(plan.width, plan.height, placed))
        staged_frame = work / f"frame{plan.output.extension}"
        staged_preview = work / "preview.png"
        staged_outputs = work / "file_output"
        session.call(compose_request(plan, frame, blend, merged, staged_frame,
                                     staged_preview if preview else None, staged_outputs),
                     timeout=timeout)
        # File Output files and the preview first: a final frame implies the rest exists.
        for source, destination in _file_outputs(staged_outputs,
                                                 layout.file_output_dir(out, plan.job)):
            publish(source, destination)
        # Publish the preview first: a final frame implies its preview exists.
        if preview is not None:
            preview.parent.mkdir(parents=True, exist_ok=True)
            publish(staged_preview, preview)
        publish(staged_frame, target)
    return target
