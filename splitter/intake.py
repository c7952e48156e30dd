"""Job sources: a ``<job>.blend`` file, or a ``<job>/`` directory holding the main .blend,
the libraries and assets it uses, and an optional ``tilefarm.json``. The job key is the
file's stem or the directory's name (DESIGN.md, "Repos and data layout"). The main .blend
of a directory is the one ``tilefarm.json`` names (``"blend"``), else the only top-level
.blend that no other top-level .blend links (studios keep the shot beside its libraries).

A job name becomes a path component everywhere downstream (``/pfs/out/<job>/``,
``OUT/<job>/``, the paths ``submit`` replaces and ``render`` removes), so it obeys one
strict rule, checked here where every job enters: letters, digits, ``.``, ``_`` and
``-``, not starting with ``.``. A file named ``...blend`` (job ``..``) or
``.hidden.blend`` never becomes a job. The manifest schemas carry the same rule
(``specs/schemas/plan.schema.json``, ``$defs/job``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tilefarm.blender.blendfile import check_blend
from tilefarm.errors import JobSourceError
from tilefarm.plan.settings import SETTINGS_FILE, JobSettings, read_settings

# The job name rule; the schemas' $defs/job pattern is the same expression.
JOB_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
JOB_NAME_RULE = "letters, digits, '.', '_' and '-', not starting with '.'"
_SUFFIX = ".blend"
_RENAME_FILE = "; the job is named by the file's stem: rename the file"
_RENAME_DIR = "; the job is named by the directory: rename it"


@dataclass(frozen=True)
class JobSource:
    job: str
    blend: Path  # where the .blend is on this machine
    relative_blend: str  # its path relative to the blends repo root: "shot.blend", "shot/scene.blend"
    settings: JobSettings
    settings_path: Path | None
    root: Path  # the job directory, or the folder of a single .blend: what "inside the job" means
    saved_by: str  # the Blender major.minor that saved the main .blend, from its header


def check_job_name(name: str, path: Path | str, hint: str = "") -> str:
    """Return ``name`` if it is a valid job name; else raise JobSourceError naming ``path``
    (the file, or the flag the name came from), ``hint`` saying what to do."""
    if JOB_NAME.fullmatch(name) is None:
        raise JobSourceError(f"job name {name!r} is not allowed: job names are {JOB_NAME_RULE}"
                             f"{hint}", path=path)
    return name


def open_job(entry: Path) -> JobSource:
    """Turn a .blend or a job directory into a job; raise a clear error naming ``entry``."""
    if not entry.exists():
        raise JobSourceError("no such file or directory; expected a .blend file or a job "
                             "directory holding one", path=entry)
    # The name as the path spells it; only "." (an empty name) is made absolute, so that
    # `tilefarm plan .` inside a job directory names the directory. ".." stays "..".
    name = entry.name or Path(os.path.abspath(entry)).name
    if entry.is_dir():
        return _open_dir(entry, check_job_name(name, entry, _RENAME_DIR))
    if not name.lower().endswith(_SUFFIX):
        check_blend(entry)  # says it is not a .blend file, whatever its name
    job = check_job_name(name[:-len(_SUFFIX)], entry, _RENAME_FILE)
    header = check_blend(entry)
    return JobSource(job=job, blend=entry, relative_blend=name, settings=JobSettings(),
                     settings_path=None, root=entry.parent, saved_by=header.blender)


def _open_dir(directory: Path, job: str) -> JobSource:
    settings_path = directory / SETTINGS_FILE
    settings = read_settings(settings_path) if settings_path.exists() else JobSettings()
    # Backups (shot.blend1) are not .blend files: their suffix differs.
    blends = sorted(p for p in directory.iterdir() if p.suffix.lower() == ".blend" and p.is_file())
    if settings.blend is not None:
        blend = directory / settings.blend
        if blend not in blends:
            have = ", ".join(p.name for p in blends) or "none"
            raise JobSourceError(f"blend: {settings.blend!r} is not a top-level .blend of the "
                                 f"job directory (it has: {have})", path=settings_path)
    else:
        blend = _main_blend(directory, blends)
    header = check_blend(blend)
    return JobSource(job=job, blend=blend, relative_blend=f"{job}/{blend.name}", settings=settings,
                     settings_path=settings_path if settings_path.exists() else None,
                     root=directory, saved_by=header.blender)


def _main_blend(directory: Path, blends: list[Path]) -> Path:
    """The only top-level .blend no other top-level .blend links; a clear error otherwise."""
    if not blends:
        raise JobSourceError("job directory has no top-level .blend file; put the shot's "
                             "<name>.blend beside its assets", path=directory)
    if len(blends) == 1:
        return blends[0]
    from tilefarm.splitter.assets import trace  # BAT reads the files: only when there is a choice

    linked = {dep.resolved.resolve() for b in blends for dep in trace(b) if dep.kind == "library"}
    roots = [b for b in blends if b.resolve() not in linked]
    if len(roots) == 1:
        return roots[0]
    names = ", ".join(p.name for p in (roots or blends))
    raise JobSourceError(f"job directory has {len(blends)} top-level .blend files and cannot "
                         f"tell the shot from its libraries (candidates: {names}); name it in "
                         f'{SETTINGS_FILE}, e.g. {{"blend": "{(roots or blends)[0].name}"}}',
                         path=directory)
