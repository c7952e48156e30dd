"""``tilefarm estimate``: the simulated scheduler on cases with exact answers, the probe
frames, and the command's JSON contract on a real render."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Scenes, assert_one_line_error, run_cli
from tilefarm.engine.engine import Engine
from tilefarm.engine.store import replace_entries
from tilefarm.plan.estimate import (Stages, interpolate, list_schedule, makespan, next_probe,
                                    probe_frames, with_straggler)
from tilefarm.plan.preempt import (COMPOSE, TASK_COST, NeverFinishes, distribution,
                                   interrupted_makespan, interrupted_schedule, recommend, split)
from tilefarm.plan.settings import JobSettings
from tilefarm.splitter.prepare import prepared

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


def gaps(plan: dict[int, list[float]]) -> Any:
    """Each machine's runs before it is taken away, in order; then never again."""
    left = {w: list(runs) for w, runs in plan.items()}
    return lambda w: left[w].pop(0) if left.get(w) else math.inf


def test_spot_machines_never_taken_away_take_the_plain_makespan() -> None:
    stages = Stages(startup=3.0, tasks=(5.0,) * 8, merges=(0.5,) * 4, encode=1.0)
    assert interrupted_makespan(stages, 4, gaps({}), 60.0) == pytest.approx(
        3.0 + 2 * 5.0 + 0.5 + 1.0)  # 8 equal tasks on 4 machines: two tasks' time + fixed
    spread = distribution(stages, 4, 0.0, 60.0, runs=50)
    assert spread.median_s == spread.p90_s == pytest.approx(makespan(stages, 4))


def test_an_interrupted_task_is_lost_and_runs_again_once_its_machine_is_back() -> None:
    # One machine: the first task is taken away at 4 s, the machine is back 3 s later and
    # runs it whole, then the second: 4 + 3 + 10 + 10.
    assert interrupted_schedule([10.0, 10.0], 1, gaps({0: [4.0]}), 3.0) == pytest.approx(27.0)
    # Two machines, four 10 s tasks; machine 1 is taken away 5 s into its first task and
    # back at 7: it reruns that task (7-17) while machine 0 runs the third (10-20); machine
    # 1 takes the fourth at 17 and ends at 27.
    assert interrupted_schedule([10.0] * 4, 2, gaps({1: [5.0]}), 2.0) == pytest.approx(27.0)
    # A task lost every time never ends: said, not looped on.
    with pytest.raises(NeverFinishes):
        interrupted_schedule([10.0], 1, lambda w: 1.0, 0.0)


def test_spot_interruptions_spread_the_makespan_and_finer_tasks_lose_less() -> None:
    stages = Stages(0.0, (600.0,) * 8, (), 0.0)  # 10-minute tasks
    calm = distribution(stages, 4, 0.0, 60.0, runs=100)
    rough = distribution(stages, 4, 2.0, 60.0, runs=400)
    assert rough.median_s > calm.median_s and rough.p90_s >= rough.median_s
    assert distribution(stages, 4, 2.0, 60.0, runs=400) == rough  # seeded: the same answer
    frames = {f: 120.0 for f in range(1, 25)}  # 24 frames of 2 minutes
    grid, chunk, best = recommend(frames, [(1, 1), (2, 2), (4, 4)], [1, 2, 4, 8], 0.5, 0.0,
                                  0.0, 4, 6.0, 60.0)
    assert (grid, chunk) != ((1, 1), 8)  # whole 16-minute tasks are what spot machines lose
    whole = distribution(split(frames, (1, 1), 8, 0.5, 0.0, 0.0), 4, 6.0, 60.0, runs=200)
    assert best.p90_s < whole.p90_s


def test_a_split_pays_each_tasks_fixed_cost_and_a_tiled_frames_compose() -> None:
    stages = split({1: 4.0, 2: 8.0}, (2, 2), 1, 0.5, 2.0, 1.0)
    assert stages.tasks == pytest.approx((1.0 + TASK_COST,) * 4 + (2.0 + TASK_COST,) * 4)
    assert stages.merges == pytest.approx((0.5 + COMPOSE,) * 2)
    assert split({1: 4.0, 2: 8.0}, (1, 1), 2, 0.5, 2.0, 1.0).tasks == pytest.approx(
        (12.0 + TASK_COST,))


def test_probes_sample_the_whole_range_within_a_tenth_of_the_job() -> None:
    assert probe_frames(list(range(1, 25))) == [7, 19]
    hundred = probe_frames(list(range(1, 101)))
    assert len(hundred) == 8 and hundred[0] <= 13 and hundred[-1] >= 88
    assert probe_frames([1, 2, 3]) == [1, 3]  # a short job: two probes at least
    assert probe_frames([5]) == [5]


def test_the_next_probe_goes_where_the_line_through_the_probes_is_least_sure() -> None:
    frames = list(range(1, 25))
    # An object enters between frames 7 and 19: bisect there, not at the flat ends.
    assert next_probe(frames, {7: 0.5, 19: 1.5}) == 13
    assert next_probe(frames, {7: 0.5, 13: 0.5, 19: 1.5}) == 16
    # Every frame alike: the widest stretch, an end's unknown counted at the floor.
    assert next_probe(frames, {7: 1.0, 19: 1.0}) == 13
    assert next_probe(frames, {1: 1.0, 24: 1.0}) == 12
    assert next_probe([1, 2], {1: 1.0, 2: 3.0}) is None  # every frame probed
    assert next_probe(frames, {}) is None


def test_frames_between_probes_are_interpolated() -> None:
    measured = {1: 2.0, 11: 4.0}
    assert interpolate(measured, 6) == pytest.approx(3.0)
    assert interpolate(measured, 0) == 2.0 and interpolate(measured, 20) == 4.0


def test_bad_worker_counts_are_one_line_errors(scenes: Scenes) -> None:
    assert_one_line_error(run_cli("estimate", str(scenes["plain"]), "--workers", "0,2"),
                          "--workers: '0,2' is not a list of worker counts")
    assert_one_line_error(run_cli("estimate", str(scenes["plain"]), "--preempt", "-1"),
                          "--preempt: -1 is not a rate")
    assert_one_line_error(run_cli("estimate", str(scenes["plain"]), "--replace-seconds", "5"),
                          "--replace-seconds: --replace-seconds is how long")


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
    # A new version, split and not rendered yet (a server estimates it as it arrives): its
    # history is still the render before, of that render's own plan (12 tiles, not 3 frames).
    split_only(scenes["plain"], out / ".tilefarm", JobSettings(tiles="1x1"), tmp_path / "put")
    proc = run_cli("estimate", str(scenes["plain"]), "--root", str(out / ".tilefarm"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["from_history"] is True

    proc = run_cli("estimate", str(scenes["plain"]), "--tiles", "2x2", "--root",
                   str(out / ".tilefarm"), "--workers", "1,4", "--preempt", "30", "--json")
    assert proc.returncode == 0, proc.stderr
    for row in json.loads(proc.stdout)["workers"]:
        spot = row["preempt"]
        assert spot["rate_per_hour"] == 30 and spot["p90_s"] >= spot["median_s"]
        assert spot["median_s"] >= row["makespan_s"] - 1e-6  # interruptions only cost time
        assert spot["recommended"]["tiles"] in {"1x1", "2x2", "3x3", "4x4"}
        assert spot["recommended"]["chunk"] >= 1


def split_only(blend: Path, root: Path, flags: JobSettings, staging: Path) -> None:
    """A new version of ``blend``'s job put in the store at ``root`` and split, as intake does;
    nothing after the splitter runs."""
    with Engine(root) as engine, prepared(blend, flags, staging, tagged=False) as intake:
        (made,) = intake.jobs
        replace_entries(engine.store, "blends", "master", [f"/{made.job}.blend", f"/{made.job}"],
                        made.entries)
        spec, version = next(p for p in engine.pipelines() if p[0].name == "splitter")
        inputs = engine.pending(spec, version)
        assert inputs is not None
        assert engine.run_job(spec, version, inputs).state == "success"
