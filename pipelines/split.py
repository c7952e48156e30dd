"""Splitting a job: inspect the scene in Blender, plan in pure Python, write the manifests."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from pipelines.atomic import write_json
from pipelines.blender import BlenderRunner
from pipelines.facts import SceneFacts
from pipelines.jobs import JobSource
from pipelines.plan import Plan, task_manifest
from pipelines.planner import make_plan
from pipelines.schemas import load, to_document, validate
from pipelines.settings import JobSettings


def inspect(source: JobSource, scene: str | None, runner: BlenderRunner) -> SceneFacts:
    """Read the scene facts of ``source`` in a Blender child process."""
    result = runner.run({"action": "inspect", "blend": str(source.blend), "scene": scene},
                        label=f"inspect-{source.job}", timeout=300)
    validate("scene_facts", result, path=source.blend)
    return load(SceneFacts, result)


def plan_job(source: JobSource, flags: JobSettings, runner: BlenderRunner) -> Plan:
    """Plan ``source`` with its job settings, overridden by ``flags`` (command-line values)."""
    settings = source.settings.merged(flags)
    origins: dict[str, str] = {}
    for field in dataclasses.fields(JobSettings):
        if getattr(source.settings, field.name) is not None:
            origins[field.name] = f"{source.settings_path}: {field.name}"
        if getattr(flags, field.name) is not None:
            origins[field.name] = f"--{field.name}"
    facts = inspect(source, settings.scene, runner)
    return make_plan(source.job, source.relative_blend, facts, settings, origins,
                     source=str(source.blend))


def plan_document(plan: Plan) -> object:
    return to_document("plan", plan)


def write_plan(plan: Plan, out: Path) -> Path:
    """Write ``<out>/<job>/plan.json`` and ``tasks/<task>.json``; the job dir appears whole."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{plan.job}.", dir=out))
    try:
        write_json(staging / "plan.json", plan_document(plan))
        for task in plan.tasks:
            write_json(staging / "tasks" / f"{task.id}.json",
                       to_document("task", task_manifest(plan, task)))
        final = out / plan.job
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        return final
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
