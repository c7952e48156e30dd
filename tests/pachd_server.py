"""A recording pachd for tests: python-pachyderm's generated PFS and PPS servicers on a
loopback port, speaking Pachyderm's real gRPC protocol, keeping what they are sent."""

from __future__ import annotations

from concurrent import futures
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
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.repos: set[str] = set()
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.files: dict[tuple[str, str], bytes] = {}


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

    def ModifyFile(self, request_iterator, context):  # type: ignore[no-untyped-def]  # noqa: N802
        repo = None
        for req in request_iterator:
            if req.HasField("set_commit"):
                repo = req.set_commit.branch.repo.name
            elif req.HasField("add_file"):
                key = (str(repo), req.add_file.path)
                self.rec.files[key] = self.rec.files.get(key, b"") + req.add_file.raw.value
        self.rec.calls.append(("ModifyFile", repo))
        return empty_pb2.Empty()

    def WalkFile(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        repo, base = request.file.commit.branch.repo.name, request.file.path.rstrip("/")
        for (r, path), data in sorted(self.rec.files.items()):
            if r == repo and (path == base or path.startswith(base + "/")):
                yield pfs_pb2.FileInfo(file=pfs_pb2.File(path=path), file_type=pfs_pb2.FILE,
                                       size_bytes=len(data))

    def GetFile(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        key = (request.file.commit.branch.repo.name, request.file.path)
        if key not in self.rec.files:
            context.abort(grpc.StatusCode.NOT_FOUND, f"file {key} not found")
        data = self.rec.files[key]
        for i in range(0, len(data), 1 << 16):
            yield wrappers_pb2.BytesValue(value=data[i:i + (1 << 16)])


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
