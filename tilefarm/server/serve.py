"""Starting and stopping ``tilefarm serve``."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import threading
from pathlib import Path

import uvicorn

from tilefarm.engine.pools import SharedPool
from tilefarm.errors import UsageError
from tilefarm.server.app import build_app
from tilefarm.server.farm import SERVER_FILE, Farm
from tilefarm.sizes import format_size


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_bind(host: str, token: str | None) -> None:
    """Only 127.0.0.1 (or another loopback address) goes without a token."""
    if not is_loopback(host) and not token:
        raise UsageError(f"serving on {host} exposes the farm to the network; give --token "
                         "SECRET (every request must then carry it), or keep the default "
                         "--host 127.0.0.1", flag="--host")


def listening(host: str, port: int) -> socket.socket:
    """The server's socket, listening: connections wait in its backlog until uvicorn takes
    them. IPPROTO_TCP is named because asyncio sets TCP_NODELAY only on sockets that say so;
    without it a keep-alive client waited 40 ms for each answer (Nagle and delayed ACK)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                         socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def serve(root: Path, *, host: str = "127.0.0.1", port: int = 8470, workers: int = 1,
          token: str | None = None, notify: str | None = None, memory: int | None = None,
          ready: threading.Event | None = None, remote: SharedPool | None = None) -> int:
    """Run the farm and its HTTP server until SIGINT or SIGTERM. ``memory``: the budget
    of the datums running at once, in bytes (default: the machine's available memory).
    ``remote``: other machines' slots that run the datums (``serve --ray``)."""
    check_bind(host, token)
    farm = Farm(root, workers=workers, notify=notify, memory=memory, remote=remote)
    try:
        sock = listening(host, port)
    except OSError as exc:
        farm.engine.close()
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another "
                         "--port", flag="--port") from None
    server = uvicorn.Server(uvicorn.Config(
        build_app(farm, token), log_level="warning", access_log=False, lifespan="on",
        timeout_graceful_shutdown=3, server_header=False))
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}"
    (farm.root / SERVER_FILE).write_text(json.dumps({"url": url, "pid": os.getpid(),
                                                     "host": socket.gethostname()}) + "\n")
    farm.start()

    def stop(signum: int, frame: object) -> None:
        server.should_exit = True

    # uvicorn takes these signals while it serves and raises them again once it has
    # stopped: they then reach this handler, and the farm stops below, in order.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    where = ("on the Ray cluster's nodes" if remote is not None else
             f"{workers} worker(s) per pipeline, "
             f"{format_size(farm.engine.budget.total if farm.engine.budget else 0)} of memory")
    print(f"tilefarm: serving {farm.root} at {url}/ ({where})", flush=True)
    if ready is not None:
        ready.set()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        farm.stop()
    return 0
