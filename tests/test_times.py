"""A job's times in the jobs view: the ETA simulated from its measured datums (exact cases),
its processing and queuing times."""

from __future__ import annotations

from typing import Any

import pytest

from tilefarm.plan.estimate import remaining
from tilefarm.server.times import eta_s, processing_s, queuing_s

NOW = 1000.0


def datum(state: str, started: float | None = None, finished: float | None = None) -> Any:
    return {"state": state, "started": started, "finished": finished}


def test_the_time_left_runs_the_running_tasks_out_then_schedules_the_rest() -> None:
    # Two machines free at 1 and 3; four 2 s tasks end at 3, 5, 5, 7; then two merges of
    # 0.5 s side by side, then the encode's 1 s.
    assert remaining([3.0, 1.0], [2.0] * 4, [0.5, 0.5], 1.0, 2) == pytest.approx(8.5)
    assert remaining([], [2.0] * 8, [], 0.0, 4) == pytest.approx(4.0)  # 8 on 4: two tasks
    assert remaining([], [], [1.0] * 3, 2.0, 1) == pytest.approx(5.0)


def test_the_eta_comes_from_the_jobs_own_datum_times() -> None:
    rows = {"renderer": [datum("success", NOW - 10, NOW - 8), datum("success", NOW - 8, NOW - 6),
                         datum("pending", NOW - 1.5), datum("pending")],
            "merger": []}
    # Tasks take 2 s (the median); the running one has 0.5 s left; three are queued (six in
    # the plan, two done, one running) on two workers: free at 0 and 0.5, the three end at
    # 2, 2.5 and 4. No merge has been measured: none is counted yet.
    assert eta_s(rows, 6, 2, True, 2, NOW) == pytest.approx(4.0)
    rows["merger"] = [datum("success", NOW - 3, NOW - 2)]
    assert eta_s(rows, 6, 2, False, 2, NOW) == pytest.approx(5.0)  # + two 1 s merges side by side
    assert eta_s({"renderer": [datum("pending", NOW - 1)]}, 4, 1, True, 1, NOW) is None


def test_processing_sums_the_time_datums_ran_and_queuing_waits_for_the_first() -> None:
    rows = {"renderer": [datum("success", NOW - 10, NOW - 8), datum("failed", NOW - 8, NOW - 5),
                         datum("pending", NOW - 1.5), datum("skipped"), datum("pending")]}
    assert processing_s(rows, NOW) == pytest.approx(2 + 3 + 1.5)
    assert queuing_s(NOW - 14, rows, NOW) == pytest.approx(4.0)
    assert queuing_s(NOW - 14, {"renderer": [datum("pending")]}, NOW) == pytest.approx(14.0)
    assert queuing_s(None, rows, NOW) is None
