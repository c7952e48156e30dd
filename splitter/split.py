"""Splitting a job: inspect the scene in Blender, plan in pure Python, write the manifests."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from tilefarm.splitter.contents import (Contents, check_traced, job_contents, listing,
                                        unread_notes)
from tilefarm.splitter.intake import JobSource
from tilefarm.splitter.pack import Packed

from tilefarm import __version__
from tilefarm.blender import runtimes
from tilefarm.blender.runner import BlenderRunner
from tilefarm.blender.side.protocol import InspectRequest
from tilefarm.errors import ManifestError, SceneError, SettingsError
from tilefarm.plan import layout
from tilefarm.plan.facts import SceneFacts
from tilefarm.plan.model import Plan, Versions, task_manifest
from tilefarm.plan.planner import make_plan
from tilefarm.plan.schemas import load, to_document, validate
from tilefarm.plan.settings import JobSettings
from tilefarm.plan.versions import choose_runtime
from tilefarm.runtime.files import sha256_file, write_bytes, write_json

FACTS_CACHE_ENV = "TILEFARM_FACTS_CACHE"
RunnerFor = Callable[[str], BlenderRunner]


def inspect(source: JobSource, scene: str | None, runner: BlenderRunner) -> SceneFacts:
    """Read the scene facts of ``source`` in a Blender child process.

    Where ``TILEFARM_FACTS_CACHE`` names a directory (the local engine sets it), facts
    are kept there by the .blend's content, scene, Blender and tilefarm version, so
    ``tilefarm render``'s up-front check and the splitter inspect a file once.
    """
    cache = _cache_path(source.blend, scene, runner)
    if cache is not None and cache.is_file():
        try:
            result = json.loads(cache.read_text(encoding="utf-8"))
            validate("scene_facts", result, path=cache)
            return load(SceneFacts, result)
        except (OSError, ValueError, ManifestError):
            pass  # a damaged cache entry is just a miss
    result = runner.run(InspectRequest(blend=str(source.blend), scene=scene),
                        label=f"inspect-{source.job}", timeout=300)
    validate("scene_facts", result, path=source.blend)
    if cache is not None:
        write_json(cache, result)
    return load(SceneFacts, result)


def _cache_path(blend: Path, scene: str | None, runner: BlenderRunner) -> Path | None:
    """``<cache>/<the .blend's sha256>/<sha256 of scene, Blender, tilefarm>.json``: a file's
    facts are found by its content alone (``cached_facts``), and two machines with the same
    Blender version name them alike (its path only where the version is not known)."""
    base = os.environ.get(FACTS_CACHE_ENV)
    if not base:
        return None
    blender = runner.version or f"{runner.executable or runner.python}"
    key = f"{scene}\0{blender}\0{__version__}".encode()
    return Path(base) / sha256_file(blend) / f"{hashlib.sha256(key).hexdigest()}.json"


def cached_facts(digest: str) -> list[tuple[str, bytes]]:
    """Every facts document this machine's cache holds of the .blend whose sha256 is
    ``digest`` (name, bytes): a Ray head sends them with a datum of that file, so that a node
    does not inspect again what the head's intake inspected."""
    base = os.environ.get(FACTS_CACHE_ENV)
    if not base or not (Path(base) / digest).is_dir():
        return []
    return [(path.name, path.read_bytes()) for path in sorted((Path(base) / digest).glob("*.json"))]


def learn_facts(base: Path, digest: str, documents: list[tuple[str, bytes]]) -> None:
    """Keep ``cached_facts`` of another machine in the facts cache ``base``."""
    for name, data in documents if re.fullmatch("[0-9a-f]{64}", digest) else ():
        path = base / digest / name
        if re.fullmatch("[0-9a-f]{64}[.]json", name) and not path.exists():
            write_bytes(path, data)


def remember_packed(source: JobSource, scene: str | None, runner: BlenderRunner,
                    facts: SceneFacts, packed: Packed) -> None:
    """Cache the facts of the packed main .blend where packing rewrote it (absolute paths,
    files outside the job), so the splitter, which inspects the packed job, finds them instead
    of starting a Blender again. BAT edits path fields only: the packed file's facts are the
    original's with each file where the pack put it, relative to the .blend's folder as
    Blender reports them. Nothing is cached where a path cannot be mapped so: a missing file
    (the packed .blend still names it as before, from another folder) or a sound strip (its
    path is kept as written)."""
    main = source.blend.absolute().relative_to(source.root.absolute()).as_posix()
    if main not in packed.rewritten or facts.sound_strips:
        return  # an unchanged .blend's facts are cached already, under its own bytes
    cache = _cache_path(dict(packed.entries)[main], scene, runner)
    if cache is None:
        return
    where = {os.path.normpath(file.absolute()): job_path for job_path, file in packed.entries}
    folder, inside = source.blend.parent.absolute(), posixpath.dirname(main)
    moved = [where.get(os.path.normpath(folder / path)) for path in
             [*facts.files, *(entry.path for entry in facts.unread_files)]]
    if any(path is None for path in moved):
        return
    relative = [posixpath.relpath(path, inside or ".") for path in moved if path is not None]
    files, unread = relative[:len(facts.files)], relative[len(facts.files):]
    write_json(cache, to_document("scene_facts", dataclasses.replace(
        facts, files=sorted(files), unread_files=[dataclasses.replace(entry, path=path) for entry,
                                                  path in zip(facts.unread_files, unread)])))


def job_versions(source: JobSource, flags: JobSettings = JobSettings()) -> Versions:
    """The Blender runtime that renders ``source``: the one of the Blender that saved it
    (its header), unless the job's ``blender`` setting or ``--blender`` names another."""
    wanted, flag = flags.blender, "--blender"
    if wanted is None and source.settings.blender is not None:
        wanted, flag = source.settings.blender, f"{source.settings_path}: blender"
    available = runtimes.available_series()
    if not available and os.environ.get(runtimes.CLUSTER_ENV) is not None:
        raise SceneError("no render node has joined the Ray cluster yet; join one with: "
                         "tilefarm join HEAD:PORT", path=source.blend)
    return choose_runtime(source.saved_by, available, wanted=wanted,
                          where=str(source.blend), flag=flag)


def plan_job(source: JobSource, flags: JobSettings,
             runner_for: RunnerFor = runtimes.runner_for) -> Plan:
    """Plan ``source`` with its job settings, overridden by ``flags`` (command-line values).
    The scene is inspected by the runtime that will render it (``job_versions``)."""
    with tempfile.TemporaryDirectory(prefix="tilefarm-pack-") as tmp:
        return plan_contents(source, flags, runner_for, Path(tmp))[0]


def plan_contents(source: JobSource, flags: JobSettings, runner_for: RunnerFor,
                  work: Path) -> tuple[Plan, Contents]:
    """``plan_job``, and the job as packed for it (rewritten .blend files kept in ``work``),
    so that staging it packs nothing again (``stage_job(contents=)``)."""
    settings = source.settings.merged(flags)
    if settings.variants:
        # Put as it is (pachctl), a template would render as itself, its variants ignored.
        raise SettingsError(f"variants: job {source.job} is a template; render or submit it "
                            "with tilefarm, which makes a job of each variant "
                            f"({source.job}-<variant>)", path=source.settings_path)
    origins: dict[str, str] = {}
    for field in dataclasses.fields(JobSettings):
        if getattr(source.settings, field.name) is not None:
            origins[field.name] = f"{source.settings_path}: {field.name}"
        if getattr(flags, field.name) is not None:
            origins[field.name] = f"--{field.name}"
    versions = job_versions(source, flags)  # a file no runtime can render is refused first
    # Blender opens a file whose dependencies are missing: inspecting first tells which
    # missing files the render really reads (only those are refused).
    runner = runner_for(versions.rendered_by)
    facts = inspect(source, settings.scene, runner)
    contents = job_contents(source, settings, work, facts)  # refuses missing files up front
    check_traced(source, facts.files)
    remember_packed(source, settings.scene, runner, facts, contents.packed)
    return make_plan(source.job, source.relative_blend, facts, settings, origins,
                     source=str(source.blend), dependencies=listing(source, contents),
                     versions=versions, notes=unread_notes(source, facts)), contents


def plan_document(plan: Plan) -> object:
    return to_document("plan", plan)


def write_plan(plan: Plan, out: Path) -> Path:
    """Write ``<out>/<job>/plan.json`` and ``tasks/<task>.json``; the job dir appears whole."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{plan.job}.", dir=out))
    try:
        write_json(layout.plan_path(staging, plan.job), plan_document(plan))
        for task in plan.tasks:
            write_json(layout.task_path(staging, plan.job, task.id),
                       to_document("task", task_manifest(plan, task)))
        final = out / plan.job
        if final.exists():
            shutil.rmtree(final)
        (staging / plan.job).rename(final)
        staging.rmdir()
        return final
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
