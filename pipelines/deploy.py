"""Deploying the four pipelines to a Pachyderm cluster: the requests, then sending them.

Planning is pure (``deploy_requests``: the specs with the image and GPUs set, in
DAG order), so ``--dry-run`` prints exactly what would be sent.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tilefarm.pipelines.cluster import Cluster, PachydermError
from tilefarm.pipelines.specs import packaged_specs, provenance_order

from tilefarm.errors import TilefarmError

INPUT_REPO = "blends"


class DeployError(TilefarmError):
    """Talking to pachd (or docker) failed."""


@dataclass(frozen=True)
class Applied:
    pipeline: str
    action: str  # "created" or "updated"


def deploy_requests(image: str, gpus: int = 0) -> list[dict[str, Any]]:
    """The CreatePipelineRequests for the four stages, in DAG order, with ``image``."""
    requests = []
    for spec in provenance_order(packaged_specs()):
        request = copy.deepcopy(spec.raw)
        request["transform"]["image"] = image
        if gpus and spec.name == "renderer":
            request.setdefault("resourceLimits", {})["gpu"] = {"type": "nvidia.com/gpu",
                                                               "number": gpus}
            request["resourceRequests"]["gpu"] = {"type": "nvidia.com/gpu", "number": gpus}
            request["transform"]["cmd"] = [*request["transform"]["cmd"], "--device", "CUDA"]
        requests.append(request)
    return requests


def connect(address: str) -> Cluster:
    try:
        return Cluster(address)
    except PachydermError as exc:
        raise DeployError(f"{exc}; check the address and that pachd is running "
                          "(or use `pachctl port-forward`)", flag="--pachd") from None


def deploy(address: str, requests: list[dict[str, Any]]) -> tuple[bool, list[Applied]]:
    """Create ``blends`` if missing, then create or update each pipeline in order."""
    cluster = connect(address)
    try:
        created_repo = cluster.ensure_repo(INPUT_REPO)
        applied = []
        for request in requests:
            name = request["pipeline"]["name"]
            exists = cluster.pipeline_exists(name)
            cluster.create_pipeline({**request, "update": exists})
            applied.append(Applied(name, "updated" if exists else "created"))
        return created_repo, applied
    except PachydermError as exc:
        raise DeployError(str(exc), flag="--pachd") from None


def dry_run_text(requests: list[dict[str, Any]]) -> str:
    lines = [f"CreateRepo {json.dumps({'repo': {'name': INPUT_REPO}})}  (if missing)"]
    lines += [f"CreatePipeline {json.dumps(r, sort_keys=True)}" for r in requests]
    return "\n".join(lines)


def submit(address: str, entries: list[tuple[str, Path]]) -> None:
    cluster = connect(address)
    try:
        cluster.ensure_repo(INPUT_REPO)
        cluster.put_files(INPUT_REPO, "master", entries)
    except PachydermError as exc:
        raise DeployError(str(exc), flag="--pachd") from None


def fetch(address: str, job: str, out: Path) -> list[Path]:
    """Frames (and previews) from ``merger`` and the video from ``encoder`` into ``out/<job>/``."""
    from tilefarm.runtime.files import write_bytes

    cluster = connect(address)
    written = []
    try:
        for repo in ("merger", "encoder"):
            for path in cluster.list_files(repo, "master", f"/{job}"):
                target = out / path.lstrip("/")
                write_bytes(target, cluster.read_file(repo, "master", path))
                written.append(target)
    except PachydermError as exc:
        raise DeployError(str(exc), flag="--pachd") from None
    if not written:
        raise DeployError(f"job {job!r} has no frames or video on the cluster yet; watch it "
                          "with `pachctl list job`", flag="JOB")
    return written
