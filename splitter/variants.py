"""Template jobs: one .blend, many personalised renders (``variants`` in ``tilefarm.json``).

Each variant becomes a job of its own, ``<job>-<variant>``: tilefarm's Blender-side code
opens the template with scripts disabled, substitutes the variant's text bodies, images and
scene custom properties, and saves a copy beside the template (so its relative paths hold);
the copy is then planned, checked and packed like any job, as the template's main file.
The packed jobs share the template's files: the store keeps each file's bytes once.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from tilefarm import __version__
from tilefarm.blender.runner import BlenderRunner
from tilefarm.blender.side.protocol import SubstituteRequest
from tilefarm.errors import SettingsError, UsageError
from tilefarm.plan.settings import (
    SETTINGS_FILE,
    VariantSettings,
    read_settings,
    variant_settings,
)
from tilefarm.runtime.files import copy_file, sha256_file
from tilefarm.splitter.intake import JobSource, check_job_name


@dataclass(frozen=True)
class Variant:
    name: str
    source: JobSource  # the variant's job: its .blend is the substituted copy


def selected(source: JobSource, names: Sequence[str] | None) -> list[str]:
    """The variants to render: those named (``--variant``), else all; a clear error for a
    name the job does not have."""
    variants = source.settings.variants or {}
    if names and not variants:
        raise UsageError(f"job {source.job} has no variants in {SETTINGS_FILE}", flag="--variant")
    for name in names or []:
        if name not in variants:
            raise UsageError(f"job {source.job} has no variant {name!r}; it has: "
                             f"{', '.join(sorted(variants))}", flag="--variant")
    return list(names) if names else sorted(variants)


def with_sets(source: JobSource, names: Sequence[str] | None,
              sets: Sequence[str]) -> JobSource:
    """``source`` with the variant named by ``--variant`` added or changed by ``--set
    KIND.NAME=VALUE`` (``text.Title="AMY REED"``, ``images.Photo=amy.png``, ``values.tint=0.35``).
    An image file may be anywhere: its absolute path is packed into the job like any
    file the .blend uses."""
    if not sets:
        return source
    if not names or len(names) != 1:
        raise UsageError("name the one variant the --set values make, e.g. --variant amy",
                         flag="--set")
    name = names[0]
    found: dict[str, dict[str, object]] = {"text": {}, "images": {}, "values": {}}
    for item in sets:
        key, eq, value = item.partition("=")
        kind, dot, field = key.partition(".")
        if not eq or not dot or not field or kind not in found:
            raise UsageError(f"{item!r} is not KIND.NAME=VALUE with KIND text, images or values, "
                             'e.g. text.Title="AMY REED"', flag="--set")
        if kind == "images":
            found[kind][field] = os.path.abspath(value)
        elif kind == "values":
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = value
            found[kind][field] = parsed if isinstance(parsed, (bool, int, float, str)) else value
        else:
            found[kind][field] = value
    old = (source.settings.variants or {}).get(name, VariantSettings())
    variant = replace(old, text={**(old.text or {}), **found["text"]},  # type: ignore[dict-item]
                      images={**(old.images or {}), **found["images"]},  # type: ignore[dict-item]
                      values={**(old.values or {}), **found["values"]})  # type: ignore[dict-item]
    return replace(source, settings=replace(
        source.settings, variants={**(source.settings.variants or {}), name: variant}))


@contextmanager
def expanded(source: JobSource, names: Sequence[str] | None,
             runner: BlenderRunner) -> Iterator[list[Variant]]:
    """The variant jobs of a template (its copies exist while the context lasts); a job
    without variants is its own one job."""
    if not source.settings.variants:
        yield [Variant("", source)]
        return
    copies: list[Path] = []
    try:
        found = []
        for name in selected(source, names):
            variant = source.settings.variants[name]
            job = check_job_name(f"{source.job}-{name}", source.settings_path or source.root)
            # A fixed name: the copy's bytes (which record its path) are the same each run, so an
            # unchanged variant makes no new commit and renders nothing again.
            copy = source.blend.parent / f".tilefarm-variant-{job}.blend"
            copies.append(copy)
            _substitute(_request(source, name, variant, copy), source, runner, job)
            found.append(Variant(name, replace(
                source, job=job, blend=copy, relative_blend=f"{job}/{source.blend.name}",
                settings=variant_settings(source.settings, variant))))
        yield found
    finally:
        for copy in copies:
            copy.unlink(missing_ok=True)


# Where the engine keeps substituted copies by what made them (``tilefarm render`` sets it):
# Blender never writes a file twice with the same bytes (block headers hold memory
# addresses), so an unchanged variant reuses its copy and renders nothing again.
VARIANT_CACHE_ENV = "TILEFARM_VARIANT_CACHE"


def _substitute(request: SubstituteRequest, source: JobSource, runner: BlenderRunner,
                job: str) -> None:
    cache = os.environ.get(VARIANT_CACHE_ENV)
    key = json.dumps({**dataclasses.asdict(request), "target": None}, sort_keys=True)
    cached = (Path(cache) / (sha256_file(source.blend, f"\0{key}\0{__version__}".encode())
                             + ".blend")) if cache else None
    if cached is not None and cached.is_file():
        copy_file(cached, Path(request.target))
        return
    runner.run(request, label=f"variant-{job}")
    if cached is not None:
        copy_file(Path(request.target), cached)


def _request(source: JobSource, name: str, variant: VariantSettings,
             copy: Path) -> SubstituteRequest:
    images = {key: _image_path(source, name, key, value)
              for key, value in (variant.images or {}).items()}
    return SubstituteRequest(blend=str(source.blend), scene=source.settings.scene, variant=name,
                             text=dict(variant.text or {}), images=images,
                             values=dict(variant.values or {}), target=str(copy))


def _in_settings_file(source: JobSource, variant: str, key: str, value: str) -> bool:
    """Whether ``tilefarm.json`` itself names ``value`` (there, files must be inside the job)."""
    if source.settings_path is None:
        return False
    written = (read_settings(source.settings_path).variants or {}).get(variant)
    return written is not None and (written.images or {}).get(key) == value


def _image_path(source: JobSource, variant: str, key: str, value: str) -> str:
    """``//<path>`` for an image file inside the job, as the copy beside the template names it."""
    where = source.settings_path or source.root / SETTINGS_FILE
    name = PurePosixPath(value)
    if name.is_absolute() and os.path.isfile(value) and not _in_settings_file(source, variant,
                                                                               key, value):
        return value  # from --set: a file anywhere, which packing carries into the job
    if name.is_absolute() or ".." in name.parts or "\\" in value:
        raise SettingsError(f"variant {variant}: images.{key}: {value!r} is not a path inside "
                            "the job directory", path=where)
    path = source.root.joinpath(*name.parts)
    if not path.is_file():
        raise SettingsError(f"variant {variant}: images.{key}: {value!r} is not a file in the "
                            f"job directory ({path} does not exist)", path=where)
    return "//" + os.path.relpath(path, source.blend.parent).replace(os.sep, "/")
