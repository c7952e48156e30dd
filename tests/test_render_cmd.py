"""``tilefarm render`` end to end: several jobs, bad ones beside good ones, resuming, faults."""

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, Scenes, run_cli
from tests.pipeline import assert_identical, reference

pytestmark = pytest.mark.blender


def frames(out: Path, job: str) -> list[Path]:
    return sorted((out / job / "frames").iterdir())


def assert_matches_blender(out: Path, job: str, scene: Path, tmp: Path) -> None:
    expected = reference(scene, tmp)
    got = frames(out, job)
    assert [int(f.stem) for f in got] == sorted(expected)
    for f in got:
        assert_identical(f, expected[int(f.stem)])


def no_partial_files(out: Path) -> None:
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") and p.is_file()
                 and ".tilefarm" not in p.parts]
    assert leftovers == []


def test_good_jobs_finish_beside_bad_ones(scenes: Scenes, tmp_path: Path) -> None:
    cut = tmp_path / "cut.blend"
    cut.write_bytes(scenes["plain"].read_bytes()[:4000])
    out = tmp_path / "out"
    proc = run_cli("render", str(scenes["odd_size"]), str(scenes["no_camera"]), str(cut),
                   str(scenes["sound_video"].parent), "--tiles", "2x2", "--out", str(out))
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in proc.stderr
    assert "no_camera.blend" in errors[0] and "has no camera" in errors[0]
    assert "cut.blend" in errors[1] and "truncated" in errors[1]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("2 of 4 jobs done;") and last.endswith("processed, 0 skipped, 0 failed")
    assert (out / "sound_video" / "sound_video.mp4").stat().st_size > 0
    assert len(frames(out, "sound_video")) == 12
    assert_matches_blender(out, "odd_size", scenes["odd_size"], tmp_path / "ref")
    no_partial_files(out)


def test_bad_flags_are_one_line(scenes: Scenes, tmp_path: Path) -> None:
    for args, needle in ((["--tiles", "0x3"], "--tiles"), (["--workers", "0"], "--workers"),
                         (["--frames", "3-1"], "--frames")):
        proc = run_cli("render", str(scenes["plain"]), "--out", str(tmp_path / "o"), *args)
        assert proc.returncode != 0 and needle in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def renderer_progress(db: Path) -> tuple[int, int]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            row = conn.execute("SELECT processed, total FROM jobs WHERE pipeline='renderer' "
                               "ORDER BY created DESC LIMIT 1").fetchone()
    except sqlite3.Error:
        return 0, 1
    return (row[0], row[1]) if row else (0, 1)


def test_killed_engine_resumes_and_skips_finished_datums(scenes: Scenes, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(BIN / "tilefarm"), "render", str(scenes["odd_size"]), "--tiles", "3x3",
            "--out", str(out)]
    engine = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 300
    while True:
        done, total = renderer_progress(out / ".tilefarm" / "meta.sqlite")
        if done >= 0.4 * total and done > 0:
            break
        assert engine.poll() is None and time.monotonic() < deadline, "finished before the kill"
        time.sleep(0.05)
    os.killpg(engine.pid, signal.SIGKILL)
    engine.wait()
    assert not (out / "odd_size" / "frames").exists()
    proc = run_cli("render", str(scenes["odd_size"]), "--tiles", "3x3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    skipped = int(last.split(" skipped")[0].split()[-1])
    assert skipped > 0, last
    assert_matches_blender(out, "odd_size", scenes["odd_size"], tmp_path / "ref")
    no_partial_files(out)
    again = run_cli("render", str(scenes["odd_size"]), "--tiles", "3x3", "--out", str(out))
    assert again.stdout.strip().endswith("0 processed, 0 skipped, 0 failed")


def renderer_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-m" in argv and b"tilefarm.renderer" in argv:
            pids.append(int(proc.name))
    return pids


def test_killed_renderer_is_retried(scenes: Scenes, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(BIN / "tilefarm"), "render", str(scenes["odd_size"]), "--tiles", "3x3",
            "--out", str(out)]
    engine = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 300
    killed = False
    while not killed and time.monotonic() < deadline and engine.poll() is None:
        done, total = renderer_progress(out / ".tilefarm" / "meta.sqlite")
        if done >= 2:
            for pid in renderer_pids():
                os.kill(pid, signal.SIGKILL)
                killed = True
        time.sleep(0.05)
    stdout, _ = engine.communicate(timeout=300)
    assert killed, "no renderer process was seen"
    assert engine.returncode == 0, stdout
    assert stdout.strip().endswith("0 skipped, 0 failed")
    assert_matches_blender(out, "odd_size", scenes["odd_size"], tmp_path / "ref")
