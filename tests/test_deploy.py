"""``tilefarm deploy``, ``submit`` and ``fetch`` against a recording pachd speaking
Pachyderm's gRPC API (python-pachyderm's generated servicers, real wire protocol)."""

import json
import socket
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import Scenes, assert_one_line_error, run_cli
from tests.pachd_server import FakePachd
from tests.test_specs import SHARED_SCHEMA

IMAGE = "registry.example/tilefarm:test"


@pytest.fixture
def pachd() -> FakePachd:
    server = FakePachd()
    yield server
    server.stop()


def test_deploy_twice_creates_then_updates(pachd: FakePachd) -> None:
    for attempt in (1, 2):
        proc = run_cli("deploy", "--pachd", pachd.address, "--image", IMAGE)
        assert proc.returncode == 0, proc.stderr
    calls = pachd.rec.calls
    assert [c for c in calls if c[0] == "CreateRepo"] == [("CreateRepo", "blends")]
    created = [c[1] for c in calls if c[0] == "CreatePipeline"]
    names = [r["pipeline"]["name"] for r in created]
    assert names == ["splitter", "renderer", "merger", "encoder"] * 2
    assert all(r["transform"]["image"] == IMAGE for r in created)
    assert [bool(r.get("update")) for r in created] == [False] * 4 + [True] * 4
    if SHARED_SCHEMA.exists():
        validator = jsonschema.Draft4Validator(json.loads(SHARED_SCHEMA.read_text()))
        for request in created:
            # The schema describes specs; `update` is the request flag pachctl sets beside one.
            spec = {k: v for k, v in request.items() if k != "update"}
            assert list(validator.iter_errors(spec)) == []


def test_dry_run_sends_nothing(pachd: FakePachd) -> None:
    proc = run_cli("deploy", "--pachd", pachd.address, "--image", IMAGE, "--dry-run", "--gpu", "1")
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("CreateRepo") and len(lines) == 5
    renderer = json.loads(lines[2].split(" ", 1)[1])
    assert renderer["resourceLimits"]["gpu"] == {"type": "nvidia.com/gpu", "number": 1}
    assert pachd.rec.calls == []


def test_unreachable_pachd_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # a port nobody listens on
    proc = run_cli("deploy", "--pachd", f"127.0.0.1:{port}", "--image", IMAGE,
                   env={"TILEFARM_CONNECT_TIMEOUT": "2"})
    assert_one_line_error(proc, f"127.0.0.1:{port}", "no pachd answers", "--pachd")


@pytest.mark.blender
def test_submit_then_fetch(pachd: FakePachd, scenes: Scenes, tmp_path: Path) -> None:
    proc = run_cli("submit", str(scenes["sound_video"].parent), "--tiles", "2x2",
                   "--pachd", pachd.address)
    assert proc.returncode == 0, proc.stderr
    files = {path for repo, path in pachd.rec.files if repo == "blends"}
    assert files == {"/sound_video/shot.blend", "/sound_video/tone.wav",
                     "/sound_video/tilefarm.json"}
    assert json.loads(pachd.rec.files[("blends", "/sound_video/tilefarm.json")]) == {"tiles": "2x2"}
    pachd.rec.files[("merger", "/sound_video/frames/000001.png")] = b"png-bytes"
    pachd.rec.files[("encoder", "/sound_video/sound_video.mp4")] = b"mp4-bytes"
    proc = run_cli("fetch", "sound_video", "--pachd", pachd.address, "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "sound_video" / "frames" / "000001.png").read_bytes() == b"png-bytes"
    assert (tmp_path / "o" / "sound_video" / "sound_video.mp4").read_bytes() == b"mp4-bytes"
    proc = run_cli("fetch", "nothing", "--pachd", pachd.address, "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "job 'nothing' has no frames or video")
