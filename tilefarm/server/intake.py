"""Jobs arriving at a server: the same intake as ``tilefarm render`` (packing, validation,
one-line errors), then one commit into ``blends`` that replaces the job's other form.

A job arrives as a tar of one job (``<job>.blend`` or ``<job>/...``: what
``tilefarm submit --server`` packs) or, from the page, as one ``.blend``. It is unpacked
into a private folder, refusing any member that would land outside it, and planned there
exactly as ``render`` plans it, so a job the server takes is one ``render`` would take.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from tilefarm.engine.control import Control
from tilefarm.engine.store import Store, replace_entries
from tilefarm.errors import JobSourceError, TilefarmError
from tilefarm.plan.settings import JobSettings
from tilefarm.splitter.intake import check_job_name
from tilefarm.splitter.prepare import prepared
from tilefarm.splitter.split import RunnerFor

MAX_UPLOAD = 8 << 30  # bytes; a larger body is refused before it is read


def _entry(folder: Path) -> Path:
    """The one job the folder holds."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) != 1:
        raise JobSourceError("an upload holds exactly one job: a .blend or a job directory "
                             f"(found {len(entries)} entries)", path="upload")
    return entries[0]


def unpack_tar(archive: Path, folder: Path) -> Path:
    """Unpack a job tar into ``folder``; only regular files and directories inside it."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts or not (member.isfile()
                                                                    or member.isdir()):
                    raise JobSourceError(f"member {member.name!r} is not a plain file inside "
                                         "the job; upload what tilefarm submit packs",
                                         path="upload")
            tar.extractall(folder, filter="data")
    except tarfile.TarError as exc:
        raise JobSourceError(f"not a tar archive ({exc}); upload what tilefarm submit packs",
                             path="upload") from None
    return _entry(folder)


def blend_name(name: str) -> str:
    """The file name an uploaded .blend is saved under (its stem names the job), checked
    before its bytes are read."""
    base = PurePosixPath(name.replace("\\", "/")).name
    if not base.lower().endswith(".blend"):
        raise JobSourceError(f"{base!r} is not a .blend file; upload a .blend, or submit a job "
                             "directory with tilefarm submit --server", path="upload")
    check_job_name(base[:-len(".blend")], base, "; rename the file")
    return base


def take(store: Store, entry: Path, runners: RunnerFor,
         flags: JobSettings = JobSettings(), tagged: bool = False) -> list[str]:
    """Plan every job ``entry`` makes (a template makes one per variant), then put them into
    ``blends`` in one commit each; return the job names. Raise before putting anything.
    ``runners`` gives the Blender of each runtime (the server's are warm); ``tagged``:
    the farm has tagged nodes (a Ray cluster)."""
    names = []
    with tempfile.TemporaryDirectory(prefix="tilefarm-intake-") as tmp, \
            prepared(entry, flags, Path(tmp), runners=runners, tagged=tagged) as intake:
        for job in intake.jobs:
            replace_entries(store, "blends", "master", [f"/{job.job}.blend", f"/{job.job}"],
                            job.entries)
            # As its settings say, again: a job submitted anew takes its settings' cap.
            Control(store).take_settings(job.job, job.settings.max_workers, job.settings.tags)
            names.append(job.job)
    return names


def intake_error(exc: TilefarmError, folder: Path) -> str:
    """One line for the response, naming the upload's own file, never a server path."""
    return " ".join(str(exc).replace(f"{folder}/", "").split())
