"""The worker's datum protocol, both ends: datum batching.

A pipeline with ``transform.datumBatching`` starts the user code once per worker; the code asks for each datum with the worker's
``NextDatum`` gRPC call at ``localhost:$PPS_WORKER_GRPC_PORT``, reporting the
previous datum's error (empty when it succeeded). The response carries the
datum's environment (``KEY=VALUE``: the per-input path variables). The worker
ends the process when no datum is left.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

from tilefarm.errors import TilefarmError

WORKER_PORT_ENV = "PPS_WORKER_GRPC_PORT"


def batching_enabled() -> bool:
    return bool(os.environ.get(WORKER_PORT_ENV))


def next_datum_envs(address: str | None = None) -> Iterator[Callable[[str], None]]:
    """Yield once per datum after applying its environment; send the datum's error back.

    Use as: ``for done in next_datum_envs(): ... done(error_text_or_empty)``.
    """
    import grpc
    from python_pachyderm.proto.v2.worker import worker_pb2, worker_pb2_grpc

    target = address or f"localhost:{os.environ[WORKER_PORT_ENV]}"
    with grpc.insecure_channel(target) as channel:
        stub = worker_pb2_grpc.WorkerStub(channel)
        error = ""
        while True:
            try:
                response = stub.NextDatum(worker_pb2.NextDatumRequest(error=error))
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    return  # the worker has gone: no datum is left
                raise
            for item in response.env:
                key, _, value = item.partition("=")
                os.environ[key] = value
            outcome: list[str] = []
            yield outcome.append
            error = outcome[0] if outcome else ""


class WorkerServer:
    """The worker side of datum batching, for the local engine: a gRPC ``Worker`` service
    on a loopback port whose ``NextDatum`` calls ``handler(previous_error)``.

    ``handler`` returns the next datum's environment as ``KEY=VALUE`` strings, or
    None when no datum is left (the call is then cancelled, which ends the
    client's loop as the end of a Pachyderm worker's batch does).
    """

    def __init__(self, handler: Callable[[str], list[str] | None]) -> None:
        from concurrent import futures

        import grpc
        from python_pachyderm.proto.v2.worker import worker_pb2, worker_pb2_grpc

        class Servicer(worker_pb2_grpc.WorkerServicer):  # type: ignore[misc]
            def NextDatum(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
                env = handler(request.error)
                if env is None:
                    context.abort(grpc.StatusCode.CANCELLED, "no datum is left")
                return worker_pb2.NextDatumResponse(env=env)

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        worker_pb2_grpc.add_WorkerServicer_to_server(Servicer(), self._server)
        self.port: int = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None)


def serve_datums(prog: str, datum: Callable[[], object]) -> int:
    """Run ``datum`` once, or, under Pachyderm datum batching (``PPS_WORKER_GRPC_PORT``),
    once per datum the worker hands out, reporting each datum's error back to it."""
    if not batching_enabled():
        datum()
        return 0
    for done in next_datum_envs():
        try:
            datum()
            done("")
        except TilefarmError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
            done(str(exc))
    return 0
