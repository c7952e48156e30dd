"""Deploying the four pipelines to a Pachyderm cluster: the requests, then sending them.

Planning is pure (``deploy_requests``: the specs with the image and GPUs set, in
DAG order), so ``--dry-run`` prints exactly what would be sent.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tilefarm.pipelines.cluster import Cluster, CommitState, PachydermError, RemoteFile
from tilefarm.pipelines.specs import packaged_specs, provenance_order

from tilefarm.errors import TilefarmError

INPUT_REPO = "blends"


class DeployError(TilefarmError):
    """Talking to pachd (or docker) failed."""


@dataclass(frozen=True)
class Applied:
    pipeline: str
    action: str  # "created" or "updated"


@dataclass(frozen=True)
class Fetched:
    commit: str  # the commit set (global commit ID) the files were read at
    files: list[Path]
    note: str | None  # what was read instead, and why, when it was not all of that commit set


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


def submit(address: str, job: str, entries: list[tuple[str, Path]]) -> None:
    """Replace job ``job`` in ``blends@master`` by ``entries``, in one commit: its other form
    (``/<job>.blend`` or ``/<job>/``) and any asset it no longer has are removed, as
    ``tilefarm render`` does locally."""
    cluster = connect(address)
    try:
        cluster.ensure_repo(INPUT_REPO)
        cluster.put_files(INPUT_REPO, "master", entries, delete=[f"/{job}.blend", f"/{job}/"])
    except PachydermError as exc:
        raise DeployError(str(exc), flag="--pachd") from None


def fetch(address: str, job: str, out: Path, *, chunk_size: int = 1 << 20) -> Fetched:
    """Frames (and previews) from ``merger`` and the video from ``encoder`` into ``out/<job>/``,
    both read at one commit set: the encoder's head commit ID. Each file is streamed to a
    temporary file beside its target and renamed into place."""
    cluster = connect(address)
    written = []
    try:
        commit, sources, note = _fetch_commits(cluster)
        for repo, commit_id in sources:
            for remote in cluster.list_files(repo, f"/{job}", commit=commit_id):
                target = _target(out, job, remote.path)
                _download(cluster, repo, commit_id, remote, target, chunk_size)
                written.append(target)
    except PachydermError as exc:
        raise DeployError(str(exc), flag="--pachd") from None
    if not written:
        raise DeployError(f"job {job!r} has no frames or video on the cluster yet (commit "
                          f"{commit}); watch it with `pachctl list job`", flag="JOB")
    return Fetched(commit, written, note)


def _fetch_commits(cluster: Cluster) -> tuple[str, list[tuple[str, str]], str | None]:
    """The commit set to read, the (repo, commit ID) pairs to read, and a note on fallbacks.

    In Pachyderm 2.x a commit ID names a commit set: the commits one input commit caused in
    every downstream repo. The encoder's head ID is therefore also the merger commit its
    video was made from, so frames and video never come from two different runs."""
    encoder = cluster.head_commit("encoder")
    if encoder is None:
        merger = cluster.head_commit("merger")
        if merger is None:
            raise DeployError("the cluster has neither a merger nor an encoder commit; deploy the "
                              "pipelines (`tilefarm deploy`) and submit a job", flag="--pachd")
        _require_finished("merger", merger)
        return merger.id, [("merger", merger.id)], (
            f"the encoder has no commit: frames from merger commit {merger.id}, no video")
    _require_finished("encoder", encoder)
    merger_id, note = encoder.id, None
    if cluster.commit("merger", encoder.id) is None:
        # A commit set that did not change the merger (an updated encoder pipeline): read the
        # merger commit the encoder commit was made from.
        merger_id = encoder.provenance.get("merger", "")
        if not merger_id:
            raise DeployError(f"merger has no commit in the encoder's commit set {encoder.id} "
                              "and the encoder commit names no merger input", flag="--pachd")
        note = (f"commit set {encoder.id} did not change the merger: frames from merger commit "
                f"{merger_id}, the encoder's input")
    if encoder.error:
        return encoder.id, [("merger", merger_id)], (
            f"encoder commit {encoder.id} failed ({encoder.error}): frames only, no video")
    return encoder.id, [("merger", merger_id), ("encoder", encoder.id)], note


def _require_finished(repo: str, commit: CommitState) -> None:
    if not commit.finished:
        raise DeployError(f"{repo} commit {commit.id} is not finished (a job is still running); "
                          f"wait with `pachctl wait commit {repo}@{commit.id}` and fetch again",
                          flag="--pachd")


def _target(out: Path, job: str, path: str) -> Path:
    """Where a listed file goes; a path outside ``/<job>/`` is refused, never written."""
    parts = PurePosixPath(path).parts
    if len(parts) < 3 or parts[:2] != ("/", job) or ".." in parts or "\\" in path:
        raise DeployError(f"pachd listed {path!r}, which is not a file under /{job}/; refusing "
                          "to write it", flag="--pachd")
    return out.joinpath(*parts[1:])


def _download(cluster: Cluster, repo: str, commit: str, remote: RemoteFile, target: Path,
              chunk_size: int) -> None:
    """Stream one file chunk by chunk into a temporary file beside ``target``, check its size,
    then rename it into place: a reader sees the whole file or the old one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        size = 0
        with os.fdopen(fd, "wb") as handle:
            for chunk in cluster.iter_file(repo, remote.path, commit=commit,
                                           chunk_size=chunk_size):
                handle.write(chunk)
                size += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if size != remote.size:
            raise DeployError(f"{repo}@{commit}:{remote.path}: received {size} of {remote.size} "
                              "bytes (the stream was cut short); fetch again", flag="--pachd")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
