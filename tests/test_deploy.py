"""``tilefarm deploy``, ``submit`` and ``fetch`` against a recording pachd speaking
Pachyderm's gRPC API (python-pachyderm's generated servicers, real wire protocol)."""

import json
import os
import shutil
import socket
import struct
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import Assets, Scenes, assert_one_line_error, run_cli
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
    blends = pachd.rec.head_files("blends")
    assert set(blends) == {"/sound_video/shot.blend", "/sound_video/tone.wav",
                           "/sound_video/tilefarm.json"}
    assert json.loads(blends["/sound_video/tilefarm.json"]) == {"tiles": "2x2"}
    commit = pachd.rec.commit("merger", {"/sound_video/frames/000001.png": b"png-bytes"})
    pachd.rec.commit("encoder", {"/sound_video/sound_video.mp4": b"mp4-bytes"}, commit_id=commit)
    proc = run_cli("fetch", "sound_video", "--pachd", pachd.address, "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert f"commit set {commit}" in proc.stdout
    assert (tmp_path / "o" / "sound_video" / "frames" / "000001.png").read_bytes() == b"png-bytes"
    assert (tmp_path / "o" / "sound_video" / "sound_video.mp4").read_bytes() == b"mp4-bytes"
    proc = run_cli("fetch", "nothing", "--pachd", pachd.address, "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "job 'nothing' has no frames or video")


# submit replaces the job, as `tilefarm render` does locally. Only the container of a
# .blend is checked on submit, so a minimal one (a header and its ENDB block) will do.
BLEND = b"BLENDER-v405" + struct.pack("<4siQii", b"ENDB", 0, 0, 0, 0)


def submit(pachd: FakePachd, source: Path) -> None:
    proc = run_cli("submit", str(source), "--pachd", pachd.address)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.blender
def test_submitting_a_blend_removes_the_job_directory(pachd: FakePachd, assets: Assets,
                                                      scenes: Scenes, tmp_path: Path) -> None:
    job = tmp_path / "dir" / "shot"
    shutil.copytree(assets.job("relative"), job)  # shot.blend and the texture it uses
    submit(pachd, job)
    assert set(pachd.rec.head_files("blends")) == {"/shot/shot.blend", "/shot/tex/a.png"}
    shutil.copy(scenes["plain"], tmp_path / "shot.blend")  # needs no other file
    submit(pachd, tmp_path / "shot.blend")
    assert set(pachd.rec.head_files("blends")) == {"/shot.blend"}
    # One ModifyFile call, so one commit: the removals come first, then the new file.
    assert pachd.rec.modify_ops[-1][:2] == [("delete", "/shot.blend"), ("delete", "/shot/")]
    assert pachd.rec.modify_ops[-1][-1] == ("add", "/shot.blend")
    assert len(pachd.rec.commits["blends"]) == 2
    submit(pachd, job)  # and back: the .blend form goes
    assert set(pachd.rec.head_files("blends")) == {"/shot/shot.blend", "/shot/tex/a.png"}


@pytest.mark.blender
def test_a_removed_asset_disappears(pachd: FakePachd, assets: Assets, scenes: Scenes,
                                    tmp_path: Path) -> None:
    pachd.rec.commit("blends", {"/other/scene.blend": BLEND})  # another job stays
    job = tmp_path / "shot"
    shutil.copytree(assets.job("relative"), job)
    (job / "notes.txt").write_text("not used by the scene: never submitted")
    submit(pachd, job)
    (job / "tex" / "a.png").write_bytes((job / "tex" / "a.png").read_bytes() + b"changed")
    submit(pachd, job)
    files = pachd.rec.head_files("blends")
    assert set(files) == {"/other/scene.blend", "/shot/shot.blend", "/shot/tex/a.png"}
    assert files["/shot/tex/a.png"].endswith(b"changed")
    shutil.copy(scenes["plain"], job / "shot.blend")  # the shot no longer uses the texture
    submit(pachd, job)
    assert set(pachd.rec.head_files("blends")) == {"/other/scene.blend", "/shot/shot.blend"}


def test_submit_refuses_a_bad_job_name_and_sends_nothing(pachd: FakePachd,
                                                         tmp_path: Path) -> None:
    (tmp_path / "...blend").write_bytes(BLEND)
    proc = run_cli("submit", str(tmp_path / "...blend"), "--pachd", pachd.address)
    assert_one_line_error(proc, "...blend", "job name '..' is not allowed")
    assert pachd.rec.calls == []


# fetch: one commit set, streamed.

def test_fetch_streams_large_files_in_chunks(pachd: FakePachd, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from python_pachyderm.mixin.pfs import PFSFile

    from tilefarm.pipelines.deploy import fetch

    frame = os.urandom(200_000)
    commit = pachd.rec.commit("merger", {"/shot/frames/000001.exr": frame})
    pachd.rec.commit("encoder", {"/shot/shot.mp4": b"mp4"}, commit_id=commit)
    pachd.rec.chunk_size = 8192
    sizes: list[int] = []
    read = PFSFile.read

    def recording_read(self: PFSFile, size: int = -1) -> bytes:
        sizes.append(size)
        return read(self, size)

    monkeypatch.setattr(PFSFile, "read", recording_read)
    fetched = fetch(pachd.address, "shot", tmp_path / "o", chunk_size=16384)
    target = tmp_path / "o" / "shot" / "frames" / "000001.exr"
    assert target.read_bytes() == frame
    assert fetched.commit == commit and fetched.note is None
    assert sorted(fetched.files) == [target, tmp_path / "o" / "shot" / "shot.mp4"]
    streamed = {path: n for repo, _, path, n in pachd.rec.gets}
    assert streamed["/shot/frames/000001.exr"] == 25  # 200 000 bytes in 8 KiB messages
    assert sizes and all(0 < size <= 16384 for size in sizes)  # never the whole file
    assert [p.name for p in target.parent.iterdir()] == ["000001.exr"]  # no temporaries left


def test_fetch_reads_merger_and_encoder_at_one_commit_id(pachd: FakePachd,
                                                         tmp_path: Path) -> None:
    first = pachd.rec.commit("merger", {"/shot/frames/000001.png": b"run 1"})
    pachd.rec.commit("encoder", {"/shot/shot.mp4": b"video of run 1"}, commit_id=first)
    # A newer run has finished its frames; its encoder commit is not there yet.
    pachd.rec.commit("merger", {"/shot/frames/000001.png": b"run 2"})
    proc = run_cli("fetch", "shot", "--pachd", pachd.address, "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "shot" / "frames" / "000001.png").read_bytes() == b"run 1"
    assert (tmp_path / "o" / "shot" / "shot.mp4").read_bytes() == b"video of run 1"
    assert {(repo, commit) for repo, commit, _, _ in pachd.rec.gets} == {
        ("merger", first), ("encoder", first)}


def test_fetch_refuses_an_unfinished_encoder_commit(pachd: FakePachd, tmp_path: Path) -> None:
    commit = pachd.rec.commit("merger", {"/shot/frames/000001.png": b"png"})
    pachd.rec.commit("encoder", {}, commit_id=commit, finished=False)
    proc = run_cli("fetch", "shot", "--pachd", pachd.address, "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, f"encoder commit {commit} is not finished",
                          f"pachctl wait commit encoder@{commit}")
    assert not (tmp_path / "o").exists()


def test_fetch_falls_back_to_the_merger_without_an_encoder(pachd: FakePachd,
                                                          tmp_path: Path) -> None:
    commit = pachd.rec.commit("merger", {"/shot/frames/000001.png": b"png"})
    proc = run_cli("fetch", "shot", "--pachd", pachd.address, "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert f"note: the encoder has no commit: frames from merger commit {commit}, no video" \
        in proc.stdout
    assert (tmp_path / "o" / "shot" / "frames" / "000001.png").read_bytes() == b"png"


def test_fetch_follows_the_encoders_input_when_the_set_skipped_the_merger(
        pachd: FakePachd, tmp_path: Path) -> None:
    # An updated encoder pipeline makes a commit set the merger is not part of.
    merger = pachd.rec.commit("merger", {"/shot/frames/000001.png": b"png"})
    pachd.rec.commit("encoder", {"/shot/shot.mp4": b"mp4"}, provenance={"merger": merger})
    proc = run_cli("fetch", "shot", "--pachd", pachd.address, "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert f"frames from merger commit {merger}, the encoder's input" in proc.stdout
    assert (tmp_path / "o" / "shot" / "frames" / "000001.png").read_bytes() == b"png"
    assert (tmp_path / "o" / "shot" / "shot.mp4").read_bytes() == b"mp4"


def test_a_stream_cut_short_writes_nothing(pachd: FakePachd, tmp_path: Path) -> None:
    commit = pachd.rec.commit("merger", {"/shot/frames/000001.png": b"x" * 10_000})
    pachd.rec.commit("encoder", {}, commit_id=commit)
    pachd.rec.chunk_size, pachd.rec.abort_after = 1000, 3
    proc = run_cli("fetch", "shot", "--pachd", pachd.address, "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "/shot/frames/000001.png", "received 3000 of 10000 bytes")
    assert list((tmp_path / "o" / "shot" / "frames").iterdir()) == []
