"""Starting ``tilefarm serve`` as a user does (a child process), and talking to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import BIN

T = TypeVar("T")


@contextmanager
def running_server(root: Path, *flags: str) -> Iterator[str]:
    """``tilefarm serve --root ROOT --port 0 FLAGS``; yields its URL, stops it after."""
    log = (root.parent / f"{root.name}-serve.log").open("w")
    proc = subprocess.Popen([str(BIN / "tilefarm"), "serve", "--root", str(root), "--port", "0",
                             *flags], stdout=log, stderr=subprocess.STDOUT)
    try:
        info = root / "server.json"
        url = wait_for(lambda: json.loads(info.read_text())["url"] if info.exists() else None,
                       60, "the server to start")
        yield url
    except BaseException:
        # What the server said, for the failure's report (pytest shows captured output).
        log.flush()
        print(f"--- the last lines of {log.name} ---")
        print("".join(Path(log.name).read_text(errors="replace").splitlines(True)[-40:]))
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_for(probe: Callable[[], T | None], timeout: float, what: str,
             every: float = 0.2, seen: Callable[[], object] | None = None) -> T:
    """``probe()`` once it is true; after ``timeout`` an AssertionError naming ``what`` (and
    what ``seen()`` says then)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}"
                                 + (f"; then: {seen()}" if seen is not None else ""))
        time.sleep(every)


def api(url: str, method: str, path: str, body: Any = None,
        token: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    if method == "POST" and data is None:
        data = b""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            kind = response.headers.get("Content-Type", "")
            return response.status, json.loads(raw) if "json" in kind else raw
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def job(url: str, name: str) -> dict[str, Any] | None:
    status, jobs = api(url, "GET", "/api/jobs")
    assert status == 200
    return next((j for j in jobs if j["job"] == name), None)


def blender_children(pid: int, stage: str = "") -> list[int]:
    """Processes under ``pid`` running tilefarm's Blender-side script; with ``stage``
    (``tilefarm.renderer``), only those under that stage's worker processes."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [(pid, not stage)]
    while todo:
        parent, under = todo.pop()
        for child in children.get(parent, []):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            inside = under or f"-m {stage}".encode() in cmdline
            todo.append((child, inside))
            if inside and b"side/main.py" in cmdline:
                found.append(child)
    return found


def cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def busy_blenders(pid: int, window: float = 0.4, stage: str = "") -> set[int]:
    """The Blender children of ``pid`` (of ``stage``'s workers) using CPU now: rendering,
    not idle between jobs (the server keeps its workers' Blender warm)."""
    before = {p: cpu_ticks(p) for p in blender_children(pid, stage)}
    time.sleep(window)
    return {p for p, ticks in before.items()
            if ticks is not None and (now := cpu_ticks(p)) is not None and now > ticks}


def alive(pids: set[int]) -> set[int]:
    return {p for p in pids if Path(f"/proc/{p}").exists()
            and "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[:1]}


def server_pid(root: Path) -> int:
    return int(json.loads((root / "server.json").read_text())["pid"])


def env_without_server() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TILEFARM_ROOT"}
