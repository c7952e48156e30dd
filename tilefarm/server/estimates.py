"""A job's estimate on the server (``GET /api/jobs/{job}/estimate``).

It is ``tilefarm estimate --json`` run on the job's files as the blends head holds them:
from this store's history of the shot when a version of it rendered here before (no
probe, ``from_history``), else by probe renders on this machine (they share its cores
with whatever renders). It is kept under ``estimates/`` with the digest of the files it
was made from, so each version of a job is estimated once, and the jobs view shows it
(``estimate_s``) beside what the job took.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tilefarm.engine.store import FileInfo, Store, in_shot, records
from tilefarm.errors import TilefarmError
from tilefarm.runtime.files import write_json

FOLDER = "estimates"


class EstimateError(TilefarmError):
    """The job cannot be estimated: its plan is refused, or its probe failed."""


def shot_files(store: Store, job: str) -> list[FileInfo]:
    head = store.head("blends")
    return [f for f in store.files(head.id if head else None, f"/{job}") +
            store.files(head.id if head else None, f"/{job}.blend") if in_shot(f.path, job)]


def digest(files: list[FileInfo]) -> str:
    return hashlib.sha256(json.dumps(sorted((f.path, f.hash) for f in files)).encode()
                          ).hexdigest()


def saved(root: Path, store: Store, job: str) -> dict[str, Any] | None:
    """The estimate kept for the job's current files, if one was made."""
    try:
        kept = json.loads((root / FOLDER / f"{job}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or kept.get("files") != digest(shot_files(store, job)):
        return None
    return kept.get("estimate")  # type: ignore[no-any-return]


def makespan(estimate: dict[str, Any] | None, machines: int) -> float | None:
    """The estimate's makespan on ``machines`` (or the most it simulated below them)."""
    rows = [r for r in (estimate or {}).get("workers", []) if r["workers"] <= max(1, machines)]
    return max(rows, key=lambda r: r["workers"])["makespan_s"] if rows else None


def rendered_before(store: Store, job: str) -> bool:
    """Whether a version of the shot rendered in this store: its times stand in for probes."""
    return any(r["pipeline"] == "renderer" and r["state"] == "success"
               for r in records.jobs_of_shot(store, job))


def make(root: Path, store: Store, job: str) -> dict[str, Any]:
    """The job's estimate (``tilefarm estimate --json``), kept once made."""
    files = shot_files(store, job)
    kept = saved(root, store, job)
    if kept is not None:
        return kept
    history = rendered_before(store, job)
    with tempfile.TemporaryDirectory(prefix="tilefarm-estimate-") as tmp:
        for info in files:
            store.export(info, Path(tmp) / info.path.lstrip("/"))
        folder = Path(tmp) / job
        target = folder if folder.is_dir() else Path(tmp) / f"{job}.blend"
        argv = [str(Path(sys.executable).with_name("tilefarm")), "estimate", str(target),
                "--json", *(["--root", str(root)] if history else [])]
        env = {k: v for k, v in os.environ.items() if k != "TILEFARM_ROOT"}
        done = subprocess.run(argv, capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        error = lines[-1] if lines else f"tilefarm estimate exited {done.returncode}"
        raise EstimateError(error.removeprefix("tilefarm: ").replace(tmp + "/", "blends/"))
    estimate: dict[str, Any] = json.loads(done.stdout)
    write_json(root / FOLDER / f"{job}.json", {"files": digest(files), "estimate": estimate})
    return estimate
