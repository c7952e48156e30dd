"""Memory, with real Blender: each datum's peak measured from the OS, a per-Blender
``memory_limit`` that stops a Blender using more (one line, one retry alone, then the job
fails). The budget is tested in test_scheduler."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Scenes, assert_one_line_error, run_cli
from tilefarm.sizes import size_of

pytestmark = pytest.mark.blender


def datum_rows(out: Path, pipeline: str) -> list[sqlite3.Row]:
    db = sqlite3.connect(out / ".tilefarm" / "meta.sqlite")
    db.row_factory = sqlite3.Row
    return db.execute("SELECT * FROM datums WHERE pipeline=?", (pipeline,)).fetchall()


def test_a_blender_over_its_memory_limit_is_stopped_and_named(scenes: Scenes,
                                                               tmp_path: Path) -> None:
    """The hungry scene needs about 1 GiB more than a plain one: under a 600 MiB limit its
    Blender is stopped, retried once alone, and the job fails with one line naming the
    job, the frame and the limit; no frame is written. Without a limit it renders, and
    status shows the peak, above the limit."""
    out = tmp_path / "limited"
    proc = run_cli("render", str(scenes["memory_hungry"]), "--out", str(out), "--no-video",
                   "--memory-limit", "600MiB")
    line = "memory_hungry: frame 1: Blender used more than 600.0 MiB (memory_limit)"
    assert proc.returncode == 1, proc.stderr
    assert f"memory_hungry: FAILED: renderer: {line}" in proc.stdout.splitlines()
    (render,) = datum_rows(out, "renderer")
    assert (render["state"], render["tries"], render["error"]) == ("failed", 2, line)
    assert not (out / "memory_hungry" / "frames").exists()

    free = tmp_path / "free"
    assert run_cli("render", str(scenes["memory_hungry"]), "--out", str(free), "--no-video",
                   "--tiles", "2x1").returncode == 0
    peaks = [r["peak_memory"] for r in datum_rows(free, "renderer")]
    assert len(peaks) == 2 and all(p > 600 * 2**20 for p in peaks)
    status = run_cli("status", "memory_hungry", "--root", str(free / ".tilefarm"))
    assert status.returncode == 0
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [("1", "0"), ("1", "1")]
    shown = sorted(size_of(r[3] + r[4]) or 0 for r in rows)  # "850.3 MiB", one decimal
    assert shown == pytest.approx(sorted(peaks), rel=0.04)


def test_a_bad_memory_size_is_one_line(scenes: Scenes, tmp_path: Path) -> None:
    proc = run_cli("render", str(scenes["plain"]), "--out", str(tmp_path), "--memory-limit",
                   "4GB")
    assert_one_line_error(proc, "--memory-limit", "'4GB' is not a size", "4GiB")
    proc = run_cli("render", str(scenes["plain"]), "--out", str(tmp_path), "--memory", "lots")
    assert_one_line_error(proc, "--memory", "'lots' is not a size")
