"""tilefarm's exception hierarchy.

Every error carries what went wrong, the file or flag concerned, and what is
allowed instead, so the one place that turns exceptions into exit codes
(``tilefarm.runtime.exitcodes``) can print a single clear line.
"""

from __future__ import annotations

from pathlib import Path


class TilefarmError(Exception):
    """Base of every error tilefarm reports to a user."""

    exit_code = 1

    def __init__(self, message: str, *, path: Path | str | None = None, flag: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.flag = flag

    def __str__(self) -> str:
        where = []
        if self.path is not None:
            where.append(str(self.path))
        if self.flag is not None:
            where.append(self.flag)
        prefix = ": ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class UsageError(TilefarmError):
    """A command-line flag or job setting has a value that is not allowed."""

    exit_code = 2


class BlendFileError(TilefarmError):
    """The input is not a readable .blend file (missing, empty, truncated, wrong kind)."""


class JobSourceError(TilefarmError):
    """A job entry (a .blend or a job directory) cannot be turned into a job."""


class SettingsError(TilefarmError):
    """``tilefarm.json`` is not valid JSON or does not match its schema."""


class ManifestError(TilefarmError):
    """A plan, task or tile manifest does not match its schema."""


class SceneError(TilefarmError):
    """The scene cannot be rendered as asked (no camera, unknown scene, unsafe content)."""


class BlenderError(TilefarmError):
    """Blender failed: it crashed, timed out or reported an error."""

    def __init__(self, message: str, *, path: Path | str | None = None,
                 log: Path | None = None):
        super().__init__(message, path=path)
        self.log = log

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (Blender log: {self.log})" if self.log else text


class BlenderTimeout(BlenderError):
    """Blender did not finish within its time limit."""


class BlenderMemory(BlenderError):
    """Blender used more memory than its limit, or the kernel's OOM killer ended it."""


class RenderError(TilefarmError):
    """Rendering a task failed."""


class MergeError(TilefarmError):
    """Tiles of a frame are missing or do not fit the plan."""


class EncodeError(TilefarmError):
    """The video could not be made from the frames."""

