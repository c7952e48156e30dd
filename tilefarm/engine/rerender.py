"""Re-rendering some frames of a job: forget the datums that made them, run again.

A datum is re-run when its success is forgotten (state ``invalidated``): the next job of
its pipeline processes it and skips the rest, as a rerun does. Which datums made frames
F of shot S, pipeline by pipeline in provenance order:

- a datum whose input path names a frame (``/S/tiles/000005``) made that frame;
- a datum whose input is a task manifest (``/S/tasks/c0001-t02.json``) made the frames
  the manifest lists (read from the commit the datum's pipeline reads);
- any other datum of S (``/S`` for the encoder) is re-run when an input pipeline of its
  own had datums forgotten, so the video is made again from the new frames.

The last successful job of each such pipeline is marked ``superseded``, so the engine
runs the pipeline again on the same inputs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tilefarm.engine.control import shot_of_inputs
from tilefarm.engine.store import records
from tilefarm.errors import UsageError

if TYPE_CHECKING:
    from tilefarm.engine.engine import Engine


def _frames_of(engine: "Engine", inputs: list[list[str]],
               manifests: dict[str, set[int]]) -> set[int] | None:
    """The frames a datum's inputs name, or None where they name none."""
    found: set[int] = set()
    named = False
    for repo, path in inputs:
        parts = path.strip("/").split("/")
        digits = [p for p in parts[1:] if p.isdigit()]
        if digits:
            found.add(int(digits[-1]))
            named = True
        elif len(parts) >= 3 and parts[1] == "tasks" and path.endswith(".json"):
            named = True
            found |= manifests.setdefault(f"{repo}:{path}", _task_frames(engine, repo, path))
    return found if named else None


def _task_frames(engine: "Engine", repo: str, path: str) -> set[int]:
    head = engine.store.head(repo)
    for info in engine.store.files(head.id if head else None, path):
        if info.path == path:
            document = json.loads(engine.store.object_path(info.hash).read_text("utf-8"))
            return {int(f) for f in document.get("task", {}).get("frames", [])}
    return set()


def rerender(engine: "Engine", shot: str, frames: set[int] | None) -> int:
    """Forget the datums that made ``frames`` of ``shot`` (None: every frame); return how
    many datums will run again. Raise UsageError if the shot has nothing to re-render."""
    store = engine.store
    forgotten: dict[str, int] = {}
    manifests: dict[str, set[int]] = {}
    for spec, _ in engine.pipelines():
        salt = engine.salt(spec.name)
        rows = records.succeeded_datums(store, spec.name, salt)
        upstream = any(forgotten.get(repo) for repo in spec.input_repos())
        ids = []
        for row in rows:
            if shot_of_inputs(row["inputs"]) != shot:
                continue
            made = _frames_of(engine, json.loads(row["inputs"]), manifests)
            if made is None:
                if upstream:
                    ids.append(row["id"])
            elif frames is None or made & frames:
                ids.append(row["id"])
        if not ids:
            continue
        with store.transaction() as tx:
            records.invalidate_datums(tx, spec.name, salt, ids)
            records.supersede_jobs(tx, spec.name)
        forgotten[spec.name] = len(ids)
    if not forgotten:
        raise UsageError(f"job {shot!r} has no finished frames to re-render"
                         + (f" among {sorted(frames)}" if frames else ""), flag="--frames")
    return sum(forgotten.values())
