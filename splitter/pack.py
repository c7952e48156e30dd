"""Pack a job into a self-contained one: every dependency at a path inside the job, every
.blend naming them by relative ``//`` paths, and no byte copied that need not be.

Built on Blender Asset Tracer's packer (``blender_asset_tracer.pack.Packer``, what Flamenco
packs with): ``strategise()`` traces the main .blend and its libraries and decides where each
file lands in the pack and which .blend files must be rewritten; ``execute()`` rewrites
those (BAT edits the path fields of a copy in place, ``BlendFileBlock.set``) and hands every
file to a transferrer. Here nothing is transferred: ``_send_to_target`` is overridden to
record ``(path inside the job, file to read)``, so unchanged files stay where they are and
the caller's content-addressed store copies each file's bytes once.

Layout of the packed job:

- files inside ``job_root`` keep their relative place (``tex/wood.png``), even when the
  .blend names them by an absolute path (BAT would move those under ``_outside_project``;
  ``_find_new_paths`` is overridden to keep them);
- files outside it (absolute paths, ``//../`` paths, libraries in sibling folders and what
  they use) go under ``_outside_project/<absolute path without its root>`` -- BAT's own
  scheme: readable, and collision-free because it mirrors the one absolute path;
- a sequence or UDIM set lands as each of its files, beside the first;
- missing files are left out (``Packed.missing`` lists them) and keep the path the .blend
  gives them: BAT skips them when planning (``Packer._visit_asset``).
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from blender_asset_tracer import blendfile, bpathlib
from blender_asset_tracer.pack import AssetAction, Packer, transfer

from tilefarm.errors import JobSourceError
from tilefarm.splitter.assets import Dependency, trace

OUTSIDE = "_outside_project"  # BAT's folder for files from outside the job (Packer._find_new_paths)


@dataclass(frozen=True)
class Packed:
    """What a packed job is made of; ``entries`` sorted by path inside the job."""

    entries: list[tuple[str, Path]]  # (path inside the job, e.g. "textures/wood.png"; file to read)
    missing: list[Dependency]  # dependencies whose file is not there (left out of entries)
    rewritten: list[str]  # job paths of .blend files with new bytes (their files are in `work`)


def pack(blend: Path, job_root: Path, work: Path) -> Packed:
    """Plan the self-contained layout of the job whose main file is ``blend``.

    ``job_root`` is the job directory (or the .blend's folder for a single-.blend job).
    Each .blend whose paths must change is rewritten into ``work`` (which the caller owns and
    removes); every other entry names the original file. Entries hold the main .blend and
    what it depends on, nothing else of the job directory (``tilefarm.json`` is the caller's).
    Raises BlendFileError when a .blend cannot be read and JobSourceError when ``blend`` is not
    inside ``job_root``. Not thread-safe (BAT's module-level cache of opened files).
    """
    blend, job_root = bpathlib.make_absolute(blend), bpathlib.make_absolute(job_root)
    work = bpathlib.make_absolute(work)
    try:
        blend.relative_to(job_root)
    except ValueError:
        raise JobSourceError(f"the .blend is not inside its job directory {job_root}",
                             path=blend) from None
    dependencies = trace(blend)  # validates every .blend with clear errors before BAT packs
    work.mkdir(parents=True, exist_ok=True)
    packer = _Packer(blend, job_root, work)
    try:
        packer.strategise()
        packer.execute()
    finally:
        packer.close()
        blendfile.close_all_cached()  # BAT's module-level cache of opened files
    return Packed(entries=sorted(packer.entries.items()),
                  missing=[d for d in dependencies if not d.exists],
                  rewritten=sorted(packer.rewritten))


class _NoTransfer(transfer.FileTransferer):
    """BAT starts a transferrer thread in ``execute()``; this one has nothing to move,
    since ``_Packer._send_to_target`` records instead of queueing."""

    def run(self) -> None:
        return


class _Packer(Packer):
    """BAT's packer that writes only rewritten .blend files (into ``work``) and records the
    rest of the pack as entries instead of copying it."""

    def __init__(self, blend: Path, job_root: Path, work: Path) -> None:
        # The target is a path BAT computes with and never touches here: the transfer is
        # recorded, and _write_info_file (BAT's pack-info.txt) is skipped.
        super().__init__(blend, job_root, str(work / "job"))
        self._rewrite_in = work  # where _rewrite_paths writes the rewritten .blend copies
        self.entries: dict[str, Path] = {}
        self.rewritten: list[str] = []
        self._unchanged: list[AssetAction] = []

    def _create_file_transferer(self) -> transfer.FileTransferer:
        return _NoTransfer()

    def _write_info_file(self) -> None:
        return

    def _find_new_paths(self) -> None:
        """Where each asset BAT cannot use as-is goes: inside the job, its relative place
        (BAT sends a file named by an absolute path to ``_outside_project`` even when it lies
        inside the project); outside it, BAT's ``_outside_project/<absolute path>``."""
        root = bpathlib.make_absolute(self.project)
        for path in self._new_location_paths:
            action = self._actions[path]
            try:
                inside: PurePath = bpathlib.make_absolute(path).relative_to(root)
            except ValueError:
                inside = PurePosixPath(OUTSIDE) / bpathlib.strip_root(path)
            action.new_path = pathlib.Path(self._target_path, inside)

    def _apply_rewrites_to_blendfile(self, bfile: blendfile.BlendFile, action: AssetAction) -> None:
        # BAT copies every .blend that names a moved asset, then skips the fields whose
        # relative path stays the same (a library moved with its textures); such a copy
        # has the original's bytes, and is dropped in _rewrite_paths.
        super()._apply_rewrites_to_blendfile(bfile, action)
        if not bfile.is_modified:
            self._unchanged.append(action)

    def _rewrite_paths(self) -> None:
        super()._rewrite_paths()
        for action in self._unchanged:
            if action.read_from is not None:
                action.read_from.unlink(missing_ok=True)
                action.read_from = None  # the entry then names the original file

    def _send_to_target(self, asset_path: pathlib.Path, target: PurePath,
                        may_move: bool = False) -> None:
        # BAT calls this once per file of the pack: the asset (from its rewritten copy when
        # may_move) and each file of a sequence; the first file of a sequence comes twice.
        job_path = PurePosixPath(*PurePath(target).relative_to(self._target_path).parts).as_posix()
        source = pathlib.Path(os.path.abspath(asset_path))
        known = self.entries.setdefault(job_path, source)
        if known != source:
            raise JobSourceError(f"two files would land at {job_path} in the packed job: "
                                 f"{known} and {source}; rename one", path=self.blendfile)
        if may_move and job_path not in self.rewritten:
            self.rewritten.append(job_path)
