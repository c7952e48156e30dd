"""The cluster client: every call tilefarm makes to pachd through python-pachyderm lives
here, so another client (pachyderm-sdk) could replace it without touching the rest."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


class PachydermError(Exception):
    """A call to pachd failed; ``unreachable`` when no pachd answered at the address."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class Cluster:
    """A connection to pachd through python-pachyderm."""

    def __init__(self, address: str, *, connect_timeout: float | None = None) -> None:
        import grpc
        import python_pachyderm

        if connect_timeout is None:
            connect_timeout = float(os.environ.get("TILEFARM_CONNECT_TIMEOUT") or 10)

        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise PachydermError(f"{address!r} is not HOST:PORT")
        with grpc.insecure_channel(address) as probe:
            try:
                grpc.channel_ready_future(probe).result(timeout=connect_timeout)
            except grpc.FutureTimeoutError:
                raise PachydermError(f"no pachd answers at {address} (waited {connect_timeout:g} s)",
                                     unreachable=True) from None
        self.address = address
        self.client = python_pachyderm.Client(host=host, port=int(port), use_default_host=False)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        import grpc

        try:
            return fn()
        except grpc.RpcError as exc:
            code = exc.code()
            raise PachydermError(f"{what} failed at {self.address}: {code.name}: {exc.details()}",
                                 unreachable=code == grpc.StatusCode.UNAVAILABLE) from None

    def _exists(self, fn: Callable[[], Any]) -> bool:
        import grpc

        try:
            fn()
            return True
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND or "not found" in (exc.details() or ""):
                return False
            raise PachydermError(f"pachd at {self.address}: {exc.code().name}: {exc.details()}",
                                 unreachable=exc.code() == grpc.StatusCode.UNAVAILABLE) from None

    def ensure_repo(self, name: str) -> bool:
        """Create repo ``name`` unless it exists; True if it was created."""
        if self._exists(lambda: self.client.inspect_repo(name)):
            return False
        self._call(f"creating repo {name}", lambda: self.client.create_repo(name))
        return True

    def pipeline_exists(self, name: str) -> bool:
        return self._exists(lambda: next(iter(self.client.inspect_pipeline(name))))

    def create_pipeline(self, request: dict[str, Any]) -> None:
        """Send a CreatePipelineRequest given as its JSON form (camelCase, as in specs/)."""
        message = pipeline_request(request)
        self._call(f"creating pipeline {request['pipeline']['name']}",
                   lambda: self.client.create_pipeline_from_request(message))

    def put_files(self, repo: str, branch: str, files: list[tuple[str, Any]]) -> None:
        """Put ``(path, local_path)`` pairs in one atomic ModifyFile call (one commit)."""
        def send() -> None:
            with self.client.modify_file_client((repo, branch)) as mfc:
                for path, local in files:
                    mfc.put_file_from_filepath(path, str(local))

        self._call(f"putting files into {repo}@{branch}", send)

    def list_files(self, repo: str, branch: str, path: str) -> list[str]:
        """Paths of the files at or under ``path`` (directories walked)."""
        def walk() -> list[str]:
            found = []
            for info in self.client.walk_file((repo, branch), path):
                if info.file_type == 1:  # pfs FileType.FILE
                    found.append(info.file.path)
            return found

        return list(self._call(f"listing {repo}@{branch}:{path}", walk))

    def read_file(self, repo: str, branch: str, path: str) -> bytes:
        return bytes(self._call(f"reading {repo}@{branch}:{path}",
                                lambda: self.client.get_file((repo, branch), path).read()))


def pipeline_request(request: dict[str, Any]) -> Any:
    """A spec's JSON as python-pachyderm's ``CreatePipelineRequest`` (unknown keys refused)."""
    from google.protobuf import json_format
    from python_pachyderm.proto.v2.pps import pps_pb2

    return json_format.ParseDict(request, pps_pb2.CreatePipelineRequest())
