"""The cluster client: every call tilefarm makes to pachd through python-pachyderm lives
here, so another client (pachyderm-sdk) could replace it without touching the rest."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


class PachydermError(Exception):
    """A call to pachd failed; ``unreachable`` when no pachd answered at the address."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class CommitState:
    """One repo's commit: its ID (in Pachyderm 2.x the ID of the whole commit set, shared by
    every repo the set touched), whether it finished, its error, and the user-repo commits
    it was made from (repo name -> commit ID)."""

    id: str
    finished: bool
    error: str
    provenance: dict[str, str]


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int


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
            raise self._failure(what, exc) from None

    def _exists(self, fn: Callable[[], Any]) -> bool:
        import grpc

        try:
            fn()
            return True
        except grpc.RpcError as exc:
            details = exc.details() or ""
            if (exc.code() == grpc.StatusCode.NOT_FOUND or "not found" in details
                    or "has no head" in details):
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

    def put_files(self, repo: str, branch: str, files: Sequence[tuple[str, Any]],
                  delete: Sequence[str] = ()) -> None:
        """Delete ``delete`` paths (a path ending in ``/`` deletes that directory's files), then
        put ``(path, local_path)`` pairs, in one atomic ModifyFile call: one commit."""
        def send() -> None:
            with self.client.modify_file_client((repo, branch)) as mfc:
                for path in delete:
                    mfc.delete_file(path)
                for path, local in files:
                    mfc.put_file_from_filepath(path, str(local))

        self._call(f"putting files into {repo}@{branch}", send)

    def head_commit(self, repo: str, branch: str = "master") -> CommitState | None:
        """The head commit of ``repo@branch``, or None if the repo or branch does not exist."""
        return self._commit_state(_commit(repo, branch, None))

    def commit(self, repo: str, commit_id: str) -> CommitState | None:
        """``repo``'s commit in commit set ``commit_id``, or None if the set has none there."""
        return self._commit_state(_commit(repo, None, commit_id))

    def _commit_state(self, commit: Any) -> CommitState | None:
        found: list[Any] = []
        if not self._exists(lambda: found.extend(self.client.inspect_commit(commit))):
            return None
        info = found[0]
        provenance = {}
        for source in info.direct_provenance:
            source_repo = source.repo if source.HasField("repo") else source.branch.repo
            if source_repo.type in ("", "user"):
                provenance[source_repo.name] = source.id
        return CommitState(id=info.commit.id, finished=info.HasField("finished"),
                           error=info.error, provenance=provenance)

    def list_files(self, repo: str, path: str, *, commit: str | None = None,
                   branch: str = "master") -> list[RemoteFile]:
        """The files at or under ``path`` (directories walked) at commit ID ``commit``, else
        at the head of ``branch``."""
        def walk() -> list[RemoteFile]:
            found = []
            for info in self.client.walk_file(_commit(repo, branch, commit), path):
                if info.file_type == 1:  # pfs FileType.FILE
                    found.append(RemoteFile(info.file.path, int(info.size_bytes)))
            return found

        return list(self._call(f"listing {repo}@{commit or branch}:{path}", walk))

    def iter_file(self, repo: str, path: str, *, commit: str | None = None,
                  branch: str = "master", chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """A file's bytes as pachd streams them, at most ``chunk_size`` at a time; the whole
        file is never held in memory. A stream cut short ends early: compare the size."""
        import grpc

        what = f"reading {repo}@{commit or branch}:{path}"
        try:
            handle = self.client.get_file(_commit(repo, branch, commit), path)
        except StopIteration:
            return  # no message at all: an empty file
        except ConnectionError as exc:
            # python-pachyderm wraps the first message's RpcError in a ConnectionError.
            cause = exc.__cause__
            if isinstance(cause, grpc.RpcError):
                raise self._failure(what, cause) from None
            raise PachydermError(f"{what} failed at {self.address}: {exc}") from None
        except grpc.RpcError as exc:
            raise self._failure(what, exc) from None
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def _failure(self, what: str, exc: Any) -> PachydermError:
        import grpc

        code = exc.code()
        return PachydermError(f"{what} failed at {self.address}: {code.name}: {exc.details()}",
                              unreachable=code == grpc.StatusCode.UNAVAILABLE)


def _commit(repo: str, branch: str | None, commit_id: str | None) -> Any:
    """A pfs Commit: commit set ``commit_id`` in ``repo`` if given, else the head of ``branch``.
    The repo is set both where pachd 2.x before 2.5 reads it (the branch) and after."""
    from python_pachyderm.pfs import Commit

    message = Commit(repo=repo, branch=None if commit_id else branch, id=commit_id).to_pb()
    message.repo.CopyFrom(message.branch.repo)
    return message


def pipeline_request(request: dict[str, Any]) -> Any:
    """A spec's JSON as python-pachyderm's ``CreatePipelineRequest`` (unknown keys refused)."""
    from google.protobuf import json_format
    from python_pachyderm.proto.v2.pps import pps_pb2

    return json_format.ParseDict(request, pps_pb2.CreatePipelineRequest())
