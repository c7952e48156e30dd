"""What a job is made of, checked on intake: its packed files, the files its settings name,
and what is missing (STYLE.md 13: everything knowable before rendering is checked before
the first datum runs, naming the user's own file and key).

``render``, ``submit``, ``pack`` and the splitter on a cluster all go through here, so an
unpacked job put with ``pachctl`` fails its plan with the same message instead of
rendering magenta.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from tilefarm.errors import JobSourceError, SettingsError
from tilefarm.plan.facts import SceneFacts
from tilefarm.plan.model import DependencyEntry
from tilefarm.plan.schemas import dump
from tilefarm.plan.settings import SETTINGS_FILE, JobSettings
from tilefarm.splitter.assets import Dependency, trace
from tilefarm.splitter.intake import JobSource
from tilefarm.splitter.pack import Packed, pack

# How many missing files an error lists before it counts the rest.
MISSING_LISTED = 10
# Containers ffmpeg reads audio from, for ``video.audio``.
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aac", ".m4a", ".aif",
                  ".aiff", ".wma", ".mka")


@dataclass(frozen=True)
class Contents:
    """A checked job: its files as packed, plus the files its settings name."""

    packed: Packed
    settings_files: list[tuple[str, Path]]  # (path inside the job, file) named by settings
    missing: list[Dependency]  # missing files the render reads (or may: no facts said not)


def job_contents(source: JobSource, settings: JobSettings, work: Path,
                 facts: SceneFacts | None = None) -> Contents:
    """Pack ``source`` (rewritten .blend files go into ``work``) and check it: missing files
    the render reads are refused unless ``allow_missing``; files named by settings must be
    inside the job. Only ``facts`` (the scene inspected) can tell that a missing file is
    never read, so without them every missing file counts."""
    packed = pack(source.blend, source.root, work)
    unread = unread_paths(source, facts)
    missing = [dep for dep in packed.missing if os.path.normpath(dep.resolved) not in unread]
    if missing and not settings.allow_missing:
        raise JobSourceError(missing_text(missing) + "; put them back, or pass "
                             "--allow-missing (\"allow_missing\": true) to render without them",
                             path=source.blend)
    return Contents(packed, settings_files(source, settings), missing)


def unread_paths(source: JobSource, facts: SceneFacts | None) -> dict[str, str]:
    """{absolute path: why} of the files the .blend names that rendering never reads."""
    if facts is None:
        return {}
    folder = source.blend.parent.absolute()
    return {os.path.normpath(folder / entry.path): entry.why for entry in facts.unread_files}


def unread_notes(source: JobSource, facts: SceneFacts) -> list[str]:
    """One line per file the .blend names that the render never reads: the plan's notes."""
    folder = source.blend.parent.absolute()
    notes = []
    for entry in facts.unread_files:
        state = "" if (folder / entry.path).exists() else "missing, and "
        notes.append(f"{entry.path}: {state}not read to render ({entry.why})")
    return notes


# Tokens Blender keeps in the path of a set of files (UDIM tiles); BAT expands them itself.
_TILE_TOKENS = ("<UDIM>", "<UVTILE>")


def untraced_files(blender_reads: list[str], traced: list[Dependency]) -> list[str]:
    """The files Blender's own path walker lists (``SceneFacts.files``) that Blender Asset
    Tracer did not trace: the packer cannot carry them. BAT 1.23 misses IES and OSL files
    in material and world node trees and soft-body disk caches (among others); rather than
    render a job that lacks them on another machine, such a job is refused."""
    known = {os.path.normpath(dep.resolved) for dep in traced}
    untraced = []
    for path in blender_reads:
        if any(token in path for token in _TILE_TOKENS) or path in known:
            continue
        inside = path.rstrip("/") + "/"
        if not any(k.startswith(inside) for k in known):  # a cache folder BAT listed file by file
            untraced.append(path)
    return untraced


def check_traced(source: JobSource, blender_reads: list[str]) -> None:
    """Refuse a job whose .blend reads files the packer cannot trace (see untraced_files);
    ``blender_reads`` are relative to the .blend's folder (``SceneFacts.files``)."""
    folder = source.blend.parent.absolute()
    reads = [os.path.normpath(folder / path) for path in blender_reads]
    untraced = untraced_files(reads, trace(source.blend))
    if untraced:
        listed = ", ".join(untraced[:MISSING_LISTED])
        more = f" and {len(untraced) - MISSING_LISTED} more" if len(untraced) > MISSING_LISTED else ""
        raise JobSourceError(f"Blender reads {len(untraced)} file(s) that tilefarm's packer "
                             f"(Blender Asset Tracer) does not trace, so the job cannot carry "
                             f"them: {listed}{more}; pack them into the .blend (File > External "
                             "Data > Pack Resources) or leave them out", path=source.blend)


def missing_text(missing: list[Dependency]) -> str:
    """One line: each missing file as the .blend names it and who uses it (the first ten)."""
    listed = "; ".join(dep.describe() for dep in missing[:MISSING_LISTED])
    more = f"; and {len(missing) - MISSING_LISTED} more" if len(missing) > MISSING_LISTED else ""
    return f"{len(missing)} file(s) the scene uses are missing: {listed}{more}"


def settings_files(source: JobSource, settings: JobSettings) -> list[tuple[str, Path]]:
    """The files job settings name (``video.audio``), each checked: a relative path inside
    the job, existing, of the right kind; errors name ``<job>/tilefarm.json`` and the key."""
    audio = settings.video.audio if settings.video is not None else None
    if audio is None:
        return []
    where = source.settings_path or source.root / SETTINGS_FILE

    def refuse(why: str) -> SettingsError:
        return SettingsError(f"video.audio: {audio!r} {why}", path=where)

    name = PurePosixPath(audio)
    if name.is_absolute() or ".." in name.parts or "\\" in audio:
        raise refuse("is not a path inside the job directory; name a file beside the .blend, "
                     "e.g. \"music/track.wav\"")
    path = source.root.joinpath(*name.parts)
    if not path.is_file():
        raise refuse(f"is not a file in the job directory ({path} does not exist)")
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise refuse(f"is not an audio file; use one of {', '.join(AUDIO_SUFFIXES)}")
    return [(name.as_posix(), path)]


def packed_dir(source: JobSource, staging: Path) -> Path:
    """Where ``stage_job`` keeps the .blend files packing rewrote."""
    return staging / source.job / "packed"


def stage_job(source: JobSource, settings: JobSettings, staging: Path,
              facts: SceneFacts | None = None,
              contents: Contents | None = None) -> list[tuple[str, Path]]:
    """The files the job puts into ``blends``, packed: the main .blend and every dependency at
    relative paths inside ``/<job>/`` (rewritten .blend files staged under ``staging``), the
    files its settings name, and ``tilefarm.json`` carrying the merged settings so every
    engine plans the same. A lone .blend that needs nothing else stays ``/<job>.blend``.
    ``facts`` (the plan's) excuse missing files the render never reads. ``contents``: the
    job as its plan already packed it into ``packed_dir(source, staging)``, not packed again."""
    if contents is None:
        contents = job_contents(source, settings, packed_dir(source, staging), facts)
    document = _pruned(dump(settings))
    # A variant's main file is a substituted copy: it takes the template's name in the job.
    main = PurePosixPath(source.relative_blend).name
    entries = [(main if path == source.blend.name else path, file)
               for path, file in contents.packed.entries]
    single = source.settings_path is None and "/" not in source.relative_blend
    if single and len(entries) == 1 and not contents.settings_files and not document:
        return [(f"/{source.job}.blend", entries[0][1])]
    staged = [(f"/{source.job}/{path}", file)
              for path, file in [*entries, *contents.settings_files]]
    if "/" not in source.relative_blend:  # a lone .blend becomes a directory: name its main file
        document["blend"] = source.blend.name
    if document:
        settings_file = staging / source.job / SETTINGS_FILE
        settings_file.parent.mkdir(parents=True, exist_ok=True)
        settings_file.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        staged.append((f"/{source.job}/{SETTINGS_FILE}", settings_file))
    return staged


def _pruned(value: Any) -> Any:
    """JSON data without the keys whose value is None, at any depth (tilefarm.json's way)."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    return value


def stage_template(source: JobSource, settings: JobSettings, staging: Path,
                   facts: SceneFacts | None = None) -> list[tuple[str, Path]]:
    """A template job packed whole, for a server that makes its variants itself and keeps the
    template to make more (``server.templates``): ``stage_job``'s files, with the variants in
    its ``tilefarm.json``, plus every file a variant names. An image given anywhere
    (``--set images.Photo=/path/cat.png``) is carried in as ``variants/<name>/<key><suffix>``."""
    variants = {}
    extra: dict[str, Path] = {}
    for name, variant in (settings.variants or {}).items():
        images = {}
        for key, value in (variant.images or {}).items():
            inside = (f"variants/{name}/{key}{PurePosixPath(value).suffix}"
                      if os.path.isabs(value) else value)
            extra[inside] = Path(value) if os.path.isabs(value) else source.root / value
            images[key] = inside
        audio = variant.video.audio if variant.video is not None else None
        if audio is not None:
            extra[audio] = source.root / audio
        variants[name] = replace(variant, images=images or None)
    entries = stage_job(source, replace(settings, variants=variants), staging, facts)
    have = {path for path, _ in entries}
    return entries + [(f"/{source.job}/{path}", file) for path, file in sorted(extra.items())
                      if f"/{source.job}/{path}" not in have]


def listing(source: JobSource, contents: Contents) -> list[DependencyEntry]:
    """Every file the job needs but its main .blend, as packed (path inside the job, bytes),
    then the missing ones the render reads as the .blend names them."""
    found = [DependencyEntry(path, file.stat().st_size, False)
             for path, file in [*contents.packed.entries, *contents.settings_files]
             if path != source.blend.name]
    return found + [DependencyEntry(dep.path, 0, True) for dep in contents.missing]
