"""What a user watches while jobs run: a progress bar per job, and ``tilefarm status``."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from tqdm import tqdm

from tilefarm.engine.store import records

if TYPE_CHECKING:
    from tilefarm.engine.engine import Engine


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


class ProgressDisplay:
    """One tqdm bar per job (datums done of total, rate, ETA), on stderr."""

    def __init__(self, engine: "Engine", *, enabled: bool | None = None) -> None:
        self.engine = engine
        self.bars: dict[str, tqdm] = {}  # type: ignore[type-arg]
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def start(self, job: str, pipeline: str, total: int) -> None:
        self.bars[job] = tqdm(total=total, desc=f"{pipeline:<9}", unit="datum", file=sys.stderr,
                              disable=not self.enabled, dynamic_ncols=True, leave=True)

    def update(self, job: str, counts: dict[str, int]) -> None:
        bar = self.bars.get(job)
        if bar is None:
            return
        done = counts["processed"] + counts["skipped"] + counts["failed"]
        bar.update(done - bar.n)
        bar.set_postfix(processed=counts["processed"], skipped=counts["skipped"],
                        failed=counts["failed"], refresh=False)
        if done >= counts["total"]:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def status_table(engine: "Engine") -> str:
    """A row per job: status, progress, tasks done/total, started, elapsed, ETA, workers."""
    rows = []
    now = time.time()
    for r in records.jobs(engine.store):
        done = r["processed"] + r["skipped"] + r["failed"]
        total = r["total"]
        elapsed = ((r["finished"] or now) - r["started"]) if r["started"] else None
        eta = None
        if r["state"] == "running" and elapsed and r["processed"]:
            eta = elapsed / r["processed"] * (total - done)
        elif r["state"] != "running":
            eta = 0.0
        percent = (f"{100 * done / total:.0f}%" if total
                   else "-" if r["state"] == "unrunnable" else "100%")
        rows.append([r["pipeline"], r["id"][:12], r["state"], percent, f"{done}/{total}",
                     time.strftime("%H:%M:%S", time.localtime(r["started"])) if r["started"] else "-",
                     _clock(elapsed), _clock(eta), str(r["workers"])])
    return table(["PIPELINE", "JOB", "STATUS", "PROGRESS", "TASKS", "STARTED", "ELAPSED", "ETA",
                  "WORKERS"], rows)
