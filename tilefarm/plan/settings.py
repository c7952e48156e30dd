"""Job settings: ``tilefarm.json`` in a job directory (schema ``settings``).

One configuration path (STYLE.md, 12): defaults, then this file, then
environment, then command-line flags. ``JobSettings.merged`` applies a later
layer over an earlier one; a field left ``None`` keeps the earlier value.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from tilefarm.errors import SettingsError, UsageError
from tilefarm.plan.formats import CODECS, FORMATS
from tilefarm.plan.schemas import load, validate
from tilefarm.sizes import size_of

SETTINGS_FILE = "tilefarm.json"
# The most overscan chosen for a scene when the job sets none (tilefarm.plan.planner.auto_overscan).
MAX_AUTO_OVERSCAN = 16
DEFAULT_CHUNK = 1


@dataclass(frozen=True)
class VideoSettings:
    enabled: bool | None = None
    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    audio: str | None = None  # a file in the job directory, used instead of the scene's sound


@dataclass(frozen=True)
class VariantSettings:
    """One personalised render of a template job (``variants`` in ``tilefarm.json``): what
    tilefarm's Blender-side code substitutes in the template, and job settings it overrides."""

    text: dict[str, str] | None = None  # text (FONT) object name -> its body
    images: dict[str, str] | None = None  # image datablock name -> a file inside the job
    values: dict[str, bool | int | float | str] | None = None  # scene custom property -> value
    frames: str | None = None
    tiles: str | None = None
    chunk: int | None = None
    video: VideoSettings | None = None


@dataclass(frozen=True)
class JobSettings:
    frames: str | None = None
    tiles: str | None = None
    chunk: int | None = None
    overscan: int | None = None
    scene: str | None = None
    output_format: str | None = None
    video: VideoSettings | None = None
    blend: str | None = None  # the job directory's main .blend, where it holds several
    allow_missing: bool | None = None  # render although dependencies are missing
    blender: str | None = None  # the runtime (major.minor) to render with, overriding the file's
    notify: str | None = None  # tilefarm serve's webhook URL for this job
    memory_limit: str | int | None = None  # the most one Blender may use (runtime.memory sizes)
    max_workers: int | None = None  # the most datums of this job that run at once
    tags: list[str] | None = None  # run only on nodes with all these tags (plan.tags)
    variants: dict[str, VariantSettings] | None = None  # a template job's personalised renders

    def merged(self, later: "JobSettings") -> "JobSettings":
        """These settings with every field ``later`` sets taken from ``later``."""
        values = {f.name: getattr(later, f.name) if getattr(later, f.name) is not None
                  else getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.video is not None and later.video is not None:
            values["video"] = VideoSettings(**{
                f.name: getattr(later.video, f.name) if getattr(later.video, f.name) is not None
                else getattr(self.video, f.name) for f in dataclasses.fields(VideoSettings)})
        return JobSettings(**values)


def variant_settings(settings: JobSettings, variant: VariantSettings) -> JobSettings:
    """The settings of one variant's job: the template's, with what the variant overrides."""
    later = JobSettings(frames=variant.frames, tiles=variant.tiles, chunk=variant.chunk,
                        video=variant.video)
    return dataclasses.replace(settings.merged(later), variants=None)


def read_settings(path: Path) -> JobSettings:
    """Read and validate a ``tilefarm.json``; raise SettingsError naming it on any problem."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read job settings ({exc.__class__.__name__})", path=path) from None
    except json.JSONDecodeError as exc:
        raise SettingsError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                            path=path) from None
    validate("settings", document, path=path, error=SettingsError)
    settings = load(JobSettings, document)
    check_registries(settings, path)
    return settings


def check_registries(settings: JobSettings, path: Path | None = None) -> None:
    """Names the schema leaves to the registries (``tilefarm.plan.formats``) must be in them."""
    video_codec = settings.video.codec if settings.video is not None else None
    for key, value, allowed in (("output_format", settings.output_format, FORMATS),
                                ("video/codec", video_codec, CODECS)):
        if value is not None and value not in allowed:
            raise SettingsError(f"{key}: {value!r} is not one of "
                                f"{', '.join(map(repr, allowed))}", path=path)


def parse_size(text: str, flag: str) -> int:
    """A size a user typed (``tilefarm.sizes``: ``4GiB``); UsageError naming ``flag`` if it
    is not one."""
    size = size_of(text)
    if size is None:
        raise UsageError(f"{text!r} is not a size; use a number of bytes or a number with "
                         "KiB, MiB or GiB (512MiB, 4GiB)", flag=flag)
    return size
