"""Job sources: a ``<job>.blend`` file, or a ``<job>/`` directory holding one top-level
.blend, its assets and an optional ``tilefarm.json``. The job key is the file's stem
or the directory's name (DESIGN.md, "Repos and data layout")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tilefarm.blender.blendfile import check_blend
from tilefarm.errors import JobSourceError
from tilefarm.plan.settings import SETTINGS_FILE, JobSettings, read_settings


@dataclass(frozen=True)
class JobSource:
    job: str
    blend: Path  # where the .blend is on this machine
    relative_blend: str  # its path relative to the blends repo root: "shot.blend", "shot/scene.blend"
    settings: JobSettings
    settings_path: Path | None


def open_job(entry: Path) -> JobSource:
    """Turn a .blend or a job directory into a job; raise a clear error naming ``entry``."""
    if not entry.exists():
        raise JobSourceError("no such file or directory; expected a .blend file or a job "
                             "directory holding one", path=entry)
    if entry.is_dir():
        return _open_dir(entry)
    check_blend(entry)
    return JobSource(job=entry.stem, blend=entry, relative_blend=entry.name,
                     settings=JobSettings(), settings_path=None)


def _open_dir(directory: Path) -> JobSource:
    blends = sorted(p for p in directory.iterdir() if p.suffix.lower() == ".blend" and p.is_file())
    if not blends:
        raise JobSourceError("job directory has no top-level .blend file; put exactly one "
                             "<name>.blend beside its assets", path=directory)
    if len(blends) > 1:
        names = ", ".join(p.name for p in blends)
        raise JobSourceError(f"job directory has {len(blends)} top-level .blend files ({names}); "
                             "it must hold exactly one", path=directory)
    blend = blends[0]
    check_blend(blend)
    settings_path = directory / SETTINGS_FILE
    settings = read_settings(settings_path) if settings_path.exists() else JobSettings()
    return JobSource(job=directory.name, blend=blend,
                     relative_blend=f"{directory.name}/{blend.name}", settings=settings,
                     settings_path=settings_path if settings_path.exists() else None)
