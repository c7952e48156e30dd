"""A recording pachd for tests: python-pachyderm's generated PFS and PPS servicers on a
loopback port, speaking Pachyderm's real gRPC protocol, keeping what they are sent."""

from __future__ import annotations

import uuid
from concurrent import futures
import dataclasses
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, wrappers_pb2
from google.protobuf.descriptor import FieldDescriptor
from python_pachyderm.proto.v2.pfs import pfs_pb2, pfs_pb2_grpc
from python_pachyderm.proto.v2.pps import pps_pb2, pps_pb2_grpc

_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}


def to_json(message: Any) -> dict[str, Any]:
    """A request as the JSON a user writes: proto3's JSON mapping, but with 64-bit integers
    as numbers (the mapping makes them strings; Pachyderm's spec schema wants numbers)."""
    document = json_format.MessageToDict(message)
    _ints(message, document)
    return document


def _ints(message: Any, document: dict[str, Any]) -> None:
    for field in message.DESCRIPTOR.fields:
        key = field.json_name
        if key not in document:
            continue
        if field.type in _INT64:
            value = document[key]
            document[key] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
            value = getattr(message, field.name)
            if field.label == FieldDescriptor.LABEL_REPEATED:
                for sub, sub_doc in zip(value, document[key]):
                    if isinstance(sub_doc, dict):
                        _ints(sub, sub_doc)
            elif isinstance(document[key], dict):
                _ints(value, document[key])


class Recorder:
    """What the fake pachd holds and was sent. Each repo keeps its commits in order (the last
    is the head of master), each a full snapshot of its files; commit IDs are shared across
    repos the way Pachyderm 2.x commit sets share one global ID."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.repos: set[str] = set()
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.commits: dict[str, list[Commit]] = {}
        self.modify_ops: list[list[tuple[str, str]]] = []  # per ModifyFile call, in order
        self.gets: list[tuple[str, str, str, int]] = []  # (repo, commit ID, path, messages sent)
        self.chunk_size = 1 << 16  # bytes per GetFile message
        self.abort_after: int | None = None  # GetFile fails after this many messages

    def commit(self, repo: str, files: dict[str, bytes], *, commit_id: str | None = None,
               finished: bool = True, error: str = "", keep: bool = True,
               provenance: dict[str, str] | None = None) -> str:
        """Add a commit to ``repo`` holding its head's files (unless not ``keep``) plus
        ``files``; return its ID."""
        base = dict(self.head_files(repo)) if keep else {}
        base.update(files)
        commit = Commit(commit_id or uuid.uuid4().hex, base, finished, error, provenance or {})
        self.commits.setdefault(repo, []).append(commit)
        return commit.id

    def head_files(self, repo: str) -> dict[str, bytes]:
        commits = self.commits.get(repo)
        return commits[-1].files if commits else {}


@dataclass
class Commit:
    id: str
    files: dict[str, bytes]
    finished: bool = True
    error: str = ""
    provenance: dict[str, str] = dataclasses.field(default_factory=dict)


def _resolve(rec: Recorder, commit: Any, context: Any) -> tuple[str, Commit]:
    """A request's pfs Commit (a commit ID, or the head of master) as the fake holds it."""
    repo = commit.repo.name or commit.branch.repo.name
    commits = rec.commits.get(repo, [])
    if commit.id:
        for candidate in commits:
            if candidate.id == commit.id:
                return repo, candidate
        context.abort(grpc.StatusCode.NOT_FOUND, f"commit {repo}@{commit.id} not found")
    if commit.branch.name != "master" or not commits:
        context.abort(grpc.StatusCode.NOT_FOUND,
                      f"branch {commit.branch.name!r} not found in repo {repo}")
    return repo, commits[-1]


class Pfs(pfs_pb2_grpc.APIServicer):  # type: ignore[misc]
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def CreateRepo(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self.rec.calls.append(("CreateRepo", request.repo.name))
        self.rec.repos.add(request.repo.name)
        return empty_pb2.Empty()

    def InspectRepo(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self.rec.calls.append(("InspectRepo", request.repo.name))
        if request.repo.name not in self.rec.repos:
            context.abort(grpc.StatusCode.NOT_FOUND, f"repo {request.repo.name} not found")
        return pfs_pb2.RepoInfo(repo=request.repo)

    def InspectCommit(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        repo, commit = _resolve(self.rec, request.commit, context)
        self.rec.calls.append(("InspectCommit", (repo, request.commit.id or "master")))
        info = pfs_pb2.CommitInfo(
            commit=pfs_pb2.Commit(id=commit.id, repo=pfs_pb2.Repo(name=repo, type="user"),
                                  branch=pfs_pb2.Branch(repo=pfs_pb2.Repo(name=repo, type="user"),
                                                        name="master")),
            error=commit.error,
            direct_provenance=[pfs_pb2.Commit(id=cid, repo=pfs_pb2.Repo(name=name, type="user"))
                               for name, cid in commit.provenance.items()])
        if commit.finished:
            info.finished.GetCurrentTime()
        return info

    def ModifyFile(self, request_iterator, context):  # type: ignore[no-untyped-def]  # noqa: N802
        """Pachyderm's semantics, in request order: deleting a path ending in "/" deletes the
        files under it; adding appends to the file (python-pachyderm deletes it first);
        the whole call makes one commit."""
        repo, ops = None, []
        files: dict[str, bytes] = {}
        for req in request_iterator:
            if req.HasField("set_commit"):
                repo = req.set_commit.branch.repo.name
                files = dict(self.rec.head_files(repo))
            elif req.HasField("delete_file"):
                path = req.delete_file.path
                ops.append(("delete", path))
                for name in [f for f in files if f == path or (path.endswith("/")
                                                               and f.startswith(path))]:
                    del files[name]
            elif req.HasField("add_file"):
                path = req.add_file.path
                if not ops or ops[-1] != ("add", path):
                    ops.append(("add", path))
                files[path] = files.get(path, b"") + req.add_file.raw.value
        self.rec.calls.append(("ModifyFile", repo))
        self.rec.modify_ops.append(ops)
        self.rec.commit(str(repo), files, keep=False)
        return empty_pb2.Empty()

    def WalkFile(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        repo, commit = _resolve(self.rec, request.file.commit, context)
        base = request.file.path.rstrip("/")
        for path, data in sorted(commit.files.items()):
            if path == base or path.startswith(base + "/"):
                yield pfs_pb2.FileInfo(file=pfs_pb2.File(path=path), file_type=pfs_pb2.FILE,
                                       size_bytes=len(data))

    def GetFile(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        repo, commit = _resolve(self.rec, request.file.commit, context)
        path = request.file.path
        if path not in commit.files:
            context.abort(grpc.StatusCode.NOT_FOUND, f"file {repo}@{commit.id}:{path} not found")
        data, size = commit.files[path], self.rec.chunk_size
        messages = range(0, len(data), size)
        self.rec.gets.append((repo, commit.id, path, len(messages)))
        for n, i in enumerate(messages):
            if self.rec.abort_after is not None and n == self.rec.abort_after:
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset mid-stream")
            yield wrappers_pb2.BytesValue(value=data[i:i + size])


class Pps(pps_pb2_grpc.APIServicer):  # type: ignore[misc]
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def InspectPipeline(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        name = request.pipeline.name
        if name not in self.rec.pipelines:
            context.abort(grpc.StatusCode.NOT_FOUND, f"pipeline {name} not found")
        return pps_pb2.PipelineInfo(pipeline=request.pipeline)

    def CreatePipeline(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        document = to_json(request)
        self.rec.calls.append(("CreatePipeline", document))
        self.rec.pipelines[request.pipeline.name] = document
        return empty_pb2.Empty()


class FakePachd:
    def __init__(self) -> None:
        self.rec = Recorder()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pfs_pb2_grpc.add_APIServicer_to_server(Pfs(self.rec), self.server)
        pps_pb2_grpc.add_APIServicer_to_server(Pps(self.rec), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(grace=None)
