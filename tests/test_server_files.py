"""Files through the server: a 2 GiB job up without the server holding it, and two uploads
at the same moment both packed right."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import Assets, run_cli
from tests.serverkit import running_server, server_pid, wait_for
from tilefarm.engine.engine import Engine
from tilefarm.server.client import Client

pytestmark = pytest.mark.blender
GIB = 1 << 30


def status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            sha.update(chunk)
    return sha.hexdigest()


def test_a_two_gib_upload_streams_through_the_server(assets: Assets, tmp_path: Path) -> None:
    """The job's texture is 2 GiB (a PNG with 2 GiB of trailing bytes, which PNG readers
    skip), paused before it arrives. The server's peak resident memory grows by under
    150 MB while it receives, unpacks, packs and stores it. (Downloads: bench/server_files.py;
    a server owns its output repos, so 2 GiB of outputs cannot be planted there for a test.)"""
    root = tmp_path / "store"
    job = tmp_path / "big"
    shutil.copytree(assets.job("relative"), job)
    with (job / "tex" / "a.png").open("r+b") as texture:
        texture.truncate(2 * GIB)  # sparse here; the copies the server makes are not
    engine = Engine(root)
    engine.control.pause("big")
    engine.close()

    with running_server(root) as url:
        client = Client(url)
        assert client.json("GET", "/api/jobs") == []
        pid = server_pid(root)
        idle = status_bytes(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM counts from here
        assert client.submit([("/big/shot.blend", job / "shot.blend"),
                              ("/big/tex/a.png", job / "tex" / "a.png")]) == ["big"]
        grown_up = status_bytes(pid, "VmHWM") - idle
        wait_for(lambda: client.json("GET", "/api/jobs")[0]["state"] == "paused", 60,
                 "the job to show paused")
    assert grown_up < 150e6, f"the server grew by {grown_up / 1e6:.0f} MB"
    assert not list((root / "uploads").iterdir())  # the upload's folder is gone


def test_two_uploads_at_the_same_moment_both_land_packed(assets: Assets, tmp_path: Path) -> None:
    """Intake traces and packs with Blender Asset Tracer, which is not thread-safe: the
    server takes one upload at a time, and each job gets its own texture."""
    root = tmp_path / "store"
    cases = {"one": "relative", "two": "absolute_inside"}
    for name, case in cases.items():
        shutil.copytree(assets.job(case), tmp_path / name)
    with running_server(root) as url:
        answers: dict[str, subprocess.CompletedProcess[str]] = {}
        barrier = threading.Barrier(len(cases))

        def submit(name: str) -> None:
            barrier.wait()
            answers[name] = run_cli("submit", str(tmp_path / name), "--server", url)

        threads = [threading.Thread(target=submit, args=(name,)) for name in cases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        for name, proc in answers.items():
            assert proc.returncode == 0 and proc.stdout.startswith(f"submitted {name} to"), proc
    engine = Engine(root)
    try:
        head = engine.store.head("blends")
        files = {f.path: f.hash for f in engine.store.files(head.id if head else None)}
    finally:
        engine.close()
    for name, case in cases.items():
        textures = [p for p in files if p.startswith(f"/{name}/") and p.endswith(".png")]
        assert textures, files
        sources = {digest(p) for p in assets.job(case).rglob("*.png")}
        assert {files[p] for p in textures} <= sources
