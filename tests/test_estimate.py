"""``tilefarm estimate``: the simulated scheduler on cases with exact answers, the probe
frames, and the command's JSON contract on a real render."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Scenes, assert_one_line_error, run_cli
from tilefarm.plan.estimate import (Stages, interpolate, list_schedule, makespan, probe_frames,
                                    with_straggler)

KEYS = {"job", "frames", "seconds_per_frame", "cpu_seconds", "peak_memory_bytes",
        "probe_seconds", "from_history", "workers"}


def test_eight_equal_tasks_on_four_machines_take_two_tasks_time_plus_fixed_costs() -> None:
    stages = Stages(startup=3.0, tasks=(5.0,) * 8, merges=(0.5,) * 4, encode=1.0)
    assert makespan(stages, 4) == pytest.approx(3.0 + 2 * 5.0 + 0.5 + 1.0)
    assert makespan(stages, 1) == pytest.approx(3.0 + 8 * 5.0 + 4 * 0.5 + 1.0)
    assert makespan(stages, 16) == pytest.approx(3.0 + 5.0 + 0.5 + 1.0)  # not time/16
    assert list_schedule([4.0, 1.0, 1.0, 1.0, 1.0], 2) == pytest.approx(4.0)
    assert list_schedule([], 3) == 0.0


def test_a_straggler_holds_the_tasks_it_took() -> None:
    stages = Stages(0.0, (1.0,) * 4, (), 0.0)
    # Machine 0 runs at half speed: it takes tasks 1 and 4 (free first), ending at 4.
    assert with_straggler(stages, 2, 2.0) == pytest.approx(4.0)
    assert with_straggler(stages, 1, 2.0) == pytest.approx(8.0)


def test_probes_sample_the_whole_range_within_a_tenth_of_the_job() -> None:
    assert probe_frames(list(range(1, 25))) == [7, 19]
    hundred = probe_frames(list(range(1, 101)))
    assert len(hundred) == 8 and hundred[0] <= 13 and hundred[-1] >= 88
    assert probe_frames([1, 2, 3]) == [1, 3]  # a short job: two probes at least
    assert probe_frames([5]) == [5]


def test_frames_between_probes_are_interpolated() -> None:
    measured = {1: 2.0, 11: 4.0}
    assert interpolate(measured, 6) == pytest.approx(3.0)
    assert interpolate(measured, 0) == 2.0 and interpolate(measured, 20) == 4.0


def test_bad_worker_counts_are_one_line_errors(scenes: Scenes) -> None:
    assert_one_line_error(run_cli("estimate", str(scenes["plain"]), "--workers", "0,2"),
                          "--workers: '0,2' is not a list of worker counts")


@pytest.mark.blender
def test_estimate_probes_then_reviews_the_past(scenes: Scenes, tmp_path: Path) -> None:
    proc = run_cli("estimate", str(scenes["plain"]), "--tiles", "2x2", "--workers", "1,2,4",
                   "--price-per-hour", "0.5", "--json")
    assert proc.returncode == 0, proc.stderr
    probed = json.loads(proc.stdout)
    assert set(probed) == KEYS and probed["job"] == "plain" and probed["frames"] == 3
    assert probed["from_history"] is False and probed["probe_seconds"] > 0
    assert set(probed["seconds_per_frame"]) == {"min", "median", "max", "min_frame",
                                                "max_frame"}
    rows = probed["workers"]
    assert [r["workers"] for r in rows] == [1, 2, 4]
    for row in rows:
        assert row["makespan_low_s"] <= row["makespan_s"] <= row["makespan_high_s"]
        assert row["cost"] == pytest.approx(row["makespan_s"] / 3600 * row["workers"] * 0.5,
                                            abs=1e-3)
    assert rows[0]["makespan_s"] > rows[1]["makespan_s"]  # 12 tiles: a second machine helps
    assert probed["peak_memory_bytes"] > 0

    out = tmp_path / "out"
    assert run_cli("render", str(scenes["plain"]), "--out", str(out), "--tiles", "2x2"
                   ).returncode == 0
    proc = run_cli("estimate", str(scenes["plain"]), "--tiles", "2x2", "--root",
                   str(out / ".tilefarm"), "--json")
    assert proc.returncode == 0, proc.stderr
    past = json.loads(proc.stdout)
    assert past["from_history"] is True and past["probe_seconds"] == 0
    text = run_cli("estimate", str(scenes["plain"]), "--root", str(out / ".tilefarm"))
    assert "no probe" in text.stdout and "WORKERS" in text.stdout
