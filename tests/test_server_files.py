"""Files through the server: a 2 GiB job up and 2 GiB of outputs down without the server
holding them, and two uploads at the same moment both packed right."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

from tests.conftest import Assets, run_cli
from tests.serverkit import running_server, server_pid, wait_for
from tilefarm.engine.engine import Engine
from tilefarm.engine.store import records
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


def test_two_gib_stream_up_and_down_through_the_server(assets: Assets, tmp_path: Path) -> None:
    """Up: the job's texture is 2 GiB (a PNG with 2 GiB of trailing bytes, which PNG
    readers skip), paused before it arrives. Down: 2 GiB of outputs, a 1 GiB frame and a
    1 GiB video, in the job's ZIP. The server's peak resident memory grows by under 150 MB
    while it receives, unpacks, packs and stores the job, and again while it sends the ZIP.

    The outputs are put into the merger's and encoder's heads beside the server, once the
    paused job's four pipeline jobs have run (a job of the shot would replace them): a
    render of 2 GiB of frames takes longer than a test may."""
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
        assert not list((root / "uploads").iterdir())  # the upload's folder is gone

        outputs = plant_outputs(root, tmp_path)
        idle = status_bytes(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        client.fetch_zip("big", tmp_path / "big.zip")
        grown_down = status_bytes(pid, "VmHWM") - idle
    assert grown_up < 150e6, f"the server grew by {grown_up / 1e6:.0f} MB taking the upload"
    assert grown_down < 150e6, f"the server grew by {grown_down / 1e6:.0f} MB sending the ZIP"
    with zipfile.ZipFile(tmp_path / "big.zip") as archive:
        assert sorted(archive.namelist()) == sorted(outputs)
        for name, expected in outputs.items():
            with archive.open(name) as member:
                sha = hashlib.sha256()
                while chunk := member.read(1 << 22):
                    sha.update(chunk)
            assert sha.hexdigest() == expected, name


def plant_outputs(root: Path, tmp_path: Path) -> dict[str, str]:
    """1 GiB frame and 1 GiB video of job ``big`` in the output repos' heads, once its four
    pipeline jobs have run; returns each one's ZIP member name -> sha256."""
    reader = Engine(root, lock=False)
    try:
        wait_for(lambda: {r["pipeline"] for r in records.jobs_of_shot(reader.store, "big")
                          if r["state"] != "running"} >= {"splitter", "renderer", "merger",
                                                          "encoder"} or None,
                 60, "the paused job's pipeline jobs to run")
        block = bytes(range(256)) * 4096  # 1 MiB, not all zeros
        planted = {}
        for repo, path in (("merger", "/big/frames/000001.exr"), ("encoder", "/big/big.mp4")):
            source = tmp_path / Path(path).name
            with source.open("wb") as sink:
                for n in range(1024):
                    sink.write(n.to_bytes(4, "big") + block[4:])
            reader.store.put_files(repo, "master", [(path, source)])
            planted[path.lstrip("/")] = digest(source)
            source.unlink()
        return planted
    finally:
        reader.close()


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
