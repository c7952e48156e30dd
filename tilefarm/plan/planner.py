"""The pure planner: scene facts + job settings -> plan and task manifests. No ``bpy``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tilefarm.errors import SceneError, UsageError
from tilefarm.plan.facts import SceneFacts
from tilefarm.plan.formats import FORMATS, MOVIE_FORMATS, FrameFormat, frame_format, movie_note
from tilefarm.plan.frames import parse_frames, scene_frames
from tilefarm.plan.model import (
    PLAN_VERSION,
    DependencyEntry,
    OutputSpec,
    Plan,
    Region,
    Task,
    Tile,
    Tiling,
    Versions,
    VideoSpec,
)
from tilefarm.plan.settings import DEFAULT_CHUNK, MAX_AUTO_OVERSCAN, JobSettings, parse_size
from tilefarm.plan.tiling import Rect, border_for, grid_tiles, parse_grid
from tilefarm.plan.wholeframe import adaptive_filter_passes, output_stage, whole_frame_reason

DEFAULT_VIDEO = VideoSpec(enabled=True, codec="h264", crf=18, preset="medium", audio=None)


def make_plan(job: str, blend: str, facts: SceneFacts, settings: JobSettings,
              origins: Mapping[str, str] | None = None, source: str | None = None,
              dependencies: Sequence[DependencyEntry] = (), versions: Versions | None = None,
              notes: Sequence[str] = ()) -> Plan:
    """Plan ``job``: which frames, tiles and tasks, in what order.

    ``origins`` names where each setting came from (``--tiles``, ``tilefarm.json: tiles``)
    so errors point at the flag or file the user wrote; ``source`` is the .blend's path
    as the user knows it, for scene errors. ``versions`` is the runtime chosen for the file
    (``versions.choose_runtime``); the facts must come from that runtime. ``notes`` are the
    splitter's one-line notes (files the render never reads); the plan adds its own.
    """
    origin = dict(origins or {})
    where = source or blend

    def flag(name: str) -> str:
        return origin.get(name, name)

    if facts.freestyle_script:
        raise SceneError(f"scene {facts.scene!r} renders Freestyle with a Python line style, "
                         "which runs code from the file; use parameter-editor line styles",
                         path=where)
    versions = check_runtime(versions, facts, where)
    if facts.camera is None and not facts.camera_markers:
        raise SceneError(f"scene {facts.scene!r} has no camera; set an active camera "
                         "(or bind one to a timeline marker)", path=where)

    if settings.frames is not None:
        frames = parse_frames(settings.frames, flag=flag("frames"))
    else:
        frames = scene_frames(facts.frame_start, facts.frame_end, facts.frame_step)
        if not frames:
            raise SceneError(f"scene {facts.scene!r} has an empty frame range "
                             f"{facts.frame_start}-{facts.frame_end}", path=where)

    check_settings(settings, origin)
    nx, ny = parse_grid(settings.tiles, flag=flag("tiles")) if settings.tiles else (1, 1)
    grid_tiles(facts.width, facts.height, nx, ny, flag=flag("tiles"))  # a bad grid is an error
    requested = f"{nx}x{ny}"
    fmt, extension = output_format(facts, settings, origin, where)
    reason = whole_frame_reason(facts, fmt.blender) if (nx, ny) != (1, 1) else None
    if reason is not None:
        nx, ny = 1, 1
    rects = grid_tiles(facts.width, facts.height, nx, ny, flag=flag("tiles"))
    chunk = settings.chunk if settings.chunk is not None else DEFAULT_CHUNK
    overscan = settings.overscan if settings.overscan is not None else auto_overscan(facts)

    tiles = [_tile(i, rect, facts.width, facts.height, overscan) for i, rect in enumerate(rects)]
    chunks = [frames[i:i + chunk] for i in range(0, len(frames), chunk)]
    tasks = [
        Task(id=task_id(c, tile.index if len(tiles) > 1 else None), chunk=c, frames=chunk_frames,
             tile=tile if len(tiles) > 1 else None)
        for c, chunk_frames in enumerate(chunks) for tile in tiles
    ]

    video = settings.video
    video_spec = DEFAULT_VIDEO if video is None else VideoSpec(
        enabled=video.enabled if video.enabled is not None else DEFAULT_VIDEO.enabled,
        codec=video.codec or DEFAULT_VIDEO.codec,
        crf=video.crf if video.crf is not None else DEFAULT_VIDEO.crf,
        preset=video.preset or DEFAULT_VIDEO.preset,
        audio=video.audio)

    return Plan(
        version=PLAN_VERSION, job=job, blend=blend, scene=facts.scene,
        width=facts.width, height=facts.height, fps=facts.fps, fps_base=facts.fps_base,
        frames=frames, grid=[nx, ny], tiling=Tiling(f"{nx}x{ny}", requested, reason),
        chunk=chunk, overscan=overscan, tiles=tiles, tasks=tasks,
        output=OutputSpec(file_format=fmt.blender, extension=extension,
                          preview=not fmt.encodable, stage=output_stage(facts, fmt.blender)),
        video=video_spec, facts=facts, dependencies=list(dependencies),
        dependencies_bytes=sum(d.bytes for d in dependencies), blender=versions,
        notes=[*notes, *_format_notes(facts, settings)],
        memory_limit=memory_limit(settings, origin))


def _format_notes(facts: SceneFacts, settings: JobSettings) -> list[str]:
    """The plan's line where the scene's own output is a movie (a job's ``output_format``
    names a still format, which is written as asked)."""
    movie = movie_note(facts.output.file_format) if settings.output_format is None else None
    return [movie] if movie else []


def output_format(facts: SceneFacts, settings: JobSettings, origin: Mapping[str, str],
                  where: str) -> tuple[FrameFormat, str]:
    """The format final frames are written in, and their extension: the job's
    ``output_format`` or the scene's own. Never silently another: a movie format gives
    frames (the plan notes it), a format tilefarm does not know is refused."""
    scene_format = facts.output.file_format
    if settings.output_format is not None:
        fmt = frame_format(settings.output_format, origin.get("output_format", "output_format"))
        return fmt, fmt.extension
    if scene_format not in FORMATS and scene_format not in MOVIE_FORMATS:
        raise SceneError(f"scene {facts.scene!r} writes {scene_format} frames, a format "
                         "tilefarm cannot write exactly; set the output to one of "
                         f"{', '.join(FORMATS)}", path=where)
    fmt = frame_format(scene_format)
    # The scene's own extension: JPEG 2000's depends on its codec (.jp2 or .j2c).
    return fmt, facts.output.extension if scene_format in FORMATS else fmt.extension


def check_runtime(versions: Versions | None, facts: SceneFacts, where: str) -> Versions:
    """The chosen runtime, checked against the Blender that inspected the scene: facts read
    by another Blender than the one that renders would plan for other pixels."""
    major, minor = facts.blender_version.split()[0].split(".")[:2]
    inspected = f"{int(major)}.{int(minor)}"
    if versions is None:
        return Versions(inspected, inspected, None)
    if versions.rendered_by != inspected:
        raise SceneError(f"the scene was inspected by Blender {inspected}, but the job renders "
                         f"with {versions.rendered_by}; inspect it with that runtime",
                         path=where)
    return versions


def auto_overscan(facts: SceneFacts) -> int:
    """The margin a tile needs to match the whole-frame render.

    In Cycles a pixel's samples depend on its neighbours only through adaptive sampling's
    filter (path guiding aside: it learns from the whole render, and with it even two of
    Blender's own renders differ):
    each pass marks the pixels around an unconverged one unconverged too, so a pixel can
    feel one more pixel away per pass, and a margin of one pixel per pass makes a tile
    exact. Without adaptive filtering (adaptive sampling off, or fewer samples than its
    first pass) tiles need none. Above ``MAX_AUTO_OVERSCAN`` passes the margin stays at
    that, the 16 px DESIGN.md measured; a job that wants the proof sets ``overscan`` to
    the pass count.
    """
    return min(adaptive_filter_passes(facts), MAX_AUTO_OVERSCAN)


def check_settings(settings: JobSettings, origins: Mapping[str, str] | None = None) -> None:
    """Check the settings that need no scene facts, so bad flags fail before Blender starts."""
    origin = dict(origins or {})
    if settings.frames is not None:
        parse_frames(settings.frames, flag=origin.get("frames", "frames"))
    if settings.tiles is not None:
        parse_grid(settings.tiles, flag=origin.get("tiles", "tiles"))
    if settings.chunk is not None and settings.chunk < 1:
        raise UsageError(f"{settings.chunk} frames per task is not allowed; use 1 or more",
                         flag=origin.get("chunk", "chunk"))
    if settings.overscan is not None and settings.overscan < 0:
        raise UsageError(f"overscan {settings.overscan} is not allowed; use 0 or more pixels",
                         flag=origin.get("overscan", "overscan"))
    if settings.max_workers is not None and settings.max_workers < 1:
        raise UsageError(f"{settings.max_workers} workers is not allowed; use 1 or more",
                         flag=origin.get("max_workers", "max_workers"))
    memory_limit(settings, origin)


def memory_limit(settings: JobSettings, origins: Mapping[str, str] | None = None) -> int | None:
    """The job's ``memory_limit`` in bytes, or None."""
    if settings.memory_limit is None:
        return None
    return parse_size(str(settings.memory_limit),
                      dict(origins or {}).get("memory_limit", "memory_limit"))


def task_id(chunk: int, tile: int | None) -> str:
    """``c00003`` for a whole-frame task, ``c00003-t0002`` for a tile; fixed widths sort."""
    return f"c{chunk:05d}" if tile is None else f"c{chunk:05d}-t{tile:04d}"


def _tile(index: int, rect: Rect, width: int, height: int, overscan: int) -> Tile:
    grown = rect.grow(overscan, width, height)
    border = border_for(grown, width, height)
    region = Region(grown.x0, grown.y0, grown.x1, grown.y1,
                    border.min_x, border.max_x, border.min_y, border.max_y)
    return Tile(index=index, x0=rect.x0, y0=rect.y0, x1=rect.x1, y1=rect.y1, render=region)
