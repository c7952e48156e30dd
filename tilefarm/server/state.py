"""What the dashboard and ``GET /api/jobs`` show: each render job's state, read from the store.

A render job (shot) is a top-level entry of the ``blends`` head. Its progress counts the
work of the pipeline jobs that run on a blends commit holding the shot as the head holds
it (their ``inputs`` name the blends commit): a job put later does not make an earlier
one look unfinished while its datums are skipped. Frames are done when the merger has
made them, tasks when the renderer has. Datum outputs
are recorded as each datum finishes, so progress and thumbnails move before a pipeline job
commits its output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tilefarm.engine.control import shot_of_inputs
from tilefarm.engine.engine import Engine
from tilefarm.engine.shots import ShotIndex
from tilefarm.engine.store import FileInfo, records, shot_of
from tilefarm.server import times

STATES = ("queued", "running", "paused", "done", "failed", "cancelled")
SETTLED = ("done", "failed", "cancelled")  # states whose view no longer moves by itself


@dataclass
class JobView:
    job: str
    state: str
    frames_done: int
    frames_total: int
    eta_s: float | None
    priority: int
    elapsed_s: float
    workers: int
    tasks_done: int
    tasks_total: int
    error: str | None
    video: bool
    progress: float  # 0-1: tasks rendered and frames merged, of all there are
    frames: list[int] = field(default_factory=list)  # the frames done, for thumbnails
    frames_in_flight: dict[str, int] = field(default_factory=dict)  # frame -> tiles rendered
    peak_memory_bytes: int | None = None  # the largest datum's peak, from the OS
    max_workers: int | None = None  # the most datums of the job at once (None: no cap)
    datums_running: int = 0  # its datums running now, over every pipeline
    tags: list[str] = field(default_factory=list)  # the node tags it runs on (plan.tags)
    waiting: str | None = None  # why it does not run: no node with its tags (farm.Farm)
    processing_s: float = 0.0  # the seconds its datums ran, over every machine
    queuing_s: float | None = None  # from its submission to its first datum's start
    estimate_s: float | None = None  # its kept estimate's makespan here (server.estimates)

    def document(self) -> dict[str, Any]:
        return asdict(self)


def shots(engine: Engine) -> list[str]:
    """The render jobs in the blends head: ``/X.blend`` and ``/X/...`` are job ``X``."""
    head = engine.store.head("blends")
    names = {shot_of(info.path) for info in engine.store.files(head.id if head else None)}
    return sorted(name for name in names if name is not None)


def _read(engine: Engine, info: FileInfo) -> Any:
    return json.loads(engine.store.object_path(info.hash).read_text(encoding="utf-8"))


def plan_of(engine: Engine, job: str) -> dict[str, Any] | None:
    head = engine.store.head("splitter")
    for info in engine.store.files(head.id if head else None, f"/{job}/plan.json"):
        return _read(engine, info)  # type: ignore[no-any-return]
    return None


def shot_commits(engine: Engine, job: str) -> set[str]:
    """The blends commits, from the head back, that hold ``job`` exactly as the head does."""
    history = engine.store.shot_history("blends", job)
    same = set()
    for commit, files in history:
        if files != history[0][1]:
            break
        same.add(commit)
    return same


Holds = Callable[[str], bool]  # whether a blends commit holds a shot as the head does


def current_jobs(engine: Engine, job: str, holds: Holds | None = None) -> list[Any]:
    """Pipeline jobs that ran on the shot as it is now (the newest first): jobs of this
    shot, or over whole commits (``tilefarm run``), never another shot's. ``holds``, if the
    caller knows it, saves walking the blends history (``shot_commits``)."""
    held = holds if holds is not None else shot_commits(engine, job).__contains__
    rows = records.jobs_of_shot(engine.store, job)
    return [r for r in rows if held(json.loads(r["inputs"]).get("blends"))]


def datum_rows(engine: Engine, jobs: list[Any], job: str) -> dict[str, list[Any]]:
    """Each pipeline's datum rows of ``job``, from its newest current pipeline job."""
    found: dict[str, list[Any]] = {}
    for row in jobs:
        if row["pipeline"] in found:
            continue
        datums = records.job_datums(engine.store, row["id"])
        found[row["pipeline"]] = [d for d in datums if shot_of_inputs(d["inputs"]) == job]
    return found


def outputs(engine: Engine, pipeline: str, rows: list[Any]) -> list[tuple[str, FileInfo]]:
    """The files the finished datums among ``rows`` wrote (skipped ones: their earlier run)."""
    found = []
    for d in rows:
        if d["state"] in ("success", "skipped"):
            found += [(d["id"], info) for info in records.datum_outputs(
                engine.store, pipeline, d["version"], d["id"])]
    return found


Rows = dict[str, list[Any]]  # pipeline -> the job's datum rows (``datum_rows``)


def job_rows(engine: Engine, job: str, rows: Rows | None = None) -> Rows:
    """``rows`` if the caller has them, else the job's datum rows read now."""
    return rows if rows is not None else datum_rows(engine, current_jobs(engine, job), job)


def frame_files(engine: Engine, job: str, rows: Rows | None = None) -> dict[int, FileInfo]:
    """Frame number -> the merged frame (or, where the format is not PNG/JPEG, its preview)."""
    merger = job_rows(engine, job, rows).get("merger", [])
    frames: dict[int, FileInfo] = {}
    previews: dict[int, FileInfo] = {}
    for _, info in outputs(engine, "merger", merger):
        parts = info.path.strip("/").split("/")
        if len(parts) == 3 and parts[1] in ("frames", "previews") and parts[2][:6].isdigit():
            (previews if parts[1] == "previews" else frames)[int(parts[2][:6])] = info
    return {**frames, **previews}


def task_seconds(engine: Engine, job: str, rows: Rows | None = None) -> dict[int, float]:
    """Render seconds per frame (its tiles' ``render_seconds`` summed), from the renderer."""
    renderer = job_rows(engine, job, rows).get("renderer", [])
    seconds: dict[int, float] = {}
    for _, info in outputs(engine, "renderer", renderer):
        if info.path.endswith(".json") and "/tiles/" in info.path:
            meta = _read(engine, info)
            seconds[int(meta["frame"])] = seconds.get(int(meta["frame"]), 0.0) + float(
                meta.get("render_seconds", 0.0))
    return dict(sorted(seconds.items()))


def tile_files(engine: Engine, job: str,
               rows: Rows | None = None) -> dict[int, list[tuple[dict[str, Any], FileInfo]]]:
    """Frame -> its finished raw tiles (metadata, EXR), from the renderer's datum outputs."""
    renderer = job_rows(engine, job, rows).get("renderer", [])
    files = {info.path: info for _, info in outputs(engine, "renderer", renderer)}
    tiles: dict[int, list[tuple[dict[str, Any], FileInfo]]] = {}
    for path, info in files.items():
        exr = files.get(path.removesuffix(".json") + ".exr")
        if path.endswith(".json") and "/tiles/" in path and exr is not None:
            meta = _read(engine, info)
            tiles.setdefault(int(meta["frame"]), []).append((meta, exr))
    return tiles


def peaks(engine: Engine, pipeline: str, rows: list[Any]) -> dict[str, int | None]:
    """Datum id -> its peak memory; a skipped datum's from the run that made its outputs."""
    found: dict[str, int | None] = {}
    for d in rows:
        peak = d["peak_memory"]
        if peak is None and d["state"] == "skipped":
            peak = records.success_peak(engine.store, pipeline, d["version"], d["id"])
        found[d["id"]] = peak
    return found


def tile_usage(engine: Engine, job: str, rows: Rows | None = None) -> list[dict[str, Any]]:
    """Each rendered tile (a whole frame is tile 0): its frame, render seconds, and the
    peak resident memory of the Blender that rendered it (its datum's, from the OS)."""
    renderer = job_rows(engine, job, rows).get("renderer", [])
    peak = peaks(engine, "renderer", renderer)
    found = []
    for datum, info in outputs(engine, "renderer", renderer):
        if info.path.endswith(".json") and "/tiles/" in info.path:
            meta = _read(engine, info)
            found.append({"frame": int(meta["frame"]), "tile": int(meta["tile"]),
                          "render_seconds": round(float(meta.get("render_seconds", 0.0)), 3),
                          "peak_memory_bytes": peak.get(datum)})
    return sorted(found, key=lambda t: (t["frame"], t["tile"]))


def frame_memory(engine: Engine, job: str, rows: Rows | None = None) -> dict[int, int]:
    """Frame -> the largest peak of the datums that made it: its tiles' and its merge's."""
    rows = job_rows(engine, job, rows)
    found: dict[int, int] = {}
    for tile in tile_usage(engine, job, rows):
        if tile["peak_memory_bytes"] is not None:
            found[tile["frame"]] = max(found.get(tile["frame"], 0), tile["peak_memory_bytes"])
    merges = peaks(engine, "merger", rows.get("merger", []))
    for d in rows.get("merger", []):
        for _, path in json.loads(d["inputs"]):
            frame = path.rstrip("/").rsplit("/", 1)[-1]
            if "/tiles/" in path and frame.isdigit() and merges.get(d["id"]) is not None:
                found[int(frame)] = max(found.get(int(frame), 0), merges[d["id"]] or 0)
    return dict(sorted(found.items()))


def video_file(engine: Engine, job: str, rows: Rows | None = None) -> FileInfo | None:
    encoder = job_rows(engine, job, rows).get("encoder", [])
    for _, info in outputs(engine, "encoder", encoder):
        if info.path == f"/{job}/{job}.mp4":
            return info
    return None


def view(engine: Engine, job: str, running: bool, holds: Holds | None = None) -> JobView:
    """The state of ``job`` now; ``running`` says whether the engine is running jobs."""
    jobs = current_jobs(engine, job, holds)
    rows = datum_rows(engine, jobs, job)
    plan = plan_of(engine, job)
    control = engine.control.get(job)
    frames_total = len(plan["frames"]) if plan else 0
    merged = sorted(frame_files(engine, job, rows)) if plan else []
    tasks = rows.get("renderer", [])
    tasks_done = sum(1 for d in tasks if d["state"] in ("success", "skipped"))
    failed = [d for r in rows.values() for d in r if d["state"] == "failed"]
    # A failed datum's own error, as soon as its row says so and after its job ends alike
    # (the job's error only adds "N datum(s) failed: " before it); the split job's when it
    # failed with no datum failed (it could not start).
    error = failed[0]["error"] if failed else None
    split = next((r for r in jobs if r["pipeline"] == "splitter"), None)
    if error is None and split is not None and split["state"] == "failure" and plan is None:
        error = split["error"]
    video_wanted = bool(plan and plan.get("video", {}).get("enabled", True))
    has_video = video_file(engine, job, rows) is not None
    finished = plan is not None and len(merged) >= frames_total and (has_video or not video_wanted)
    started = min((r["started"] for r in jobs if r["started"]), default=None)
    ended = max((d["finished"] or 0 for r in rows.values() for d in r), default=0) or None
    pending = any(d["state"] in ("pending", "deferred") for r in rows.values() for d in r)
    if control.cancelled and not finished:
        state = "cancelled"
    elif error is not None:
        state = "failed"
    elif finished:
        state = "done"
    elif control.paused:
        state = "paused"
    elif running and (pending or jobs):
        state = "running"
    else:
        state = "queued"
    now = time.time()
    elapsed = ((ended if state in SETTLED and ended else now) - started) \
        if started else 0.0
    workers = max((r["workers"] for r in jobs if r["state"] == "running"), default=0) \
        if state == "running" else 0
    eta = 0.0 if state == "done" else times.eta_s(
        rows, len(plan["tasks"]) if plan else 0, frames_total - len(merged),
        video_wanted and not has_video, workers or control.max_workers or 1, now) \
        if state in ("running", "paused", "queued") and plan else None
    at = now if state not in SETTLED or not ended else ended
    work = len(tasks) + frames_total
    progress = 1.0 if state == "done" else (tasks_done + len(merged)) / work if work else 0.0
    return JobView(job=job, state=state, frames_done=len(merged), frames_total=frames_total,
                   eta_s=eta, priority=control.priority, elapsed_s=round(max(0.0, elapsed), 1),
                   workers=workers, tasks_done=tasks_done, tasks_total=len(tasks), error=error,
                   video=has_video, progress=round(progress, 4), frames=merged,
                   frames_in_flight={str(f): len(t) for f, t in sorted(
                       tile_files(engine, job, rows).items()) if f not in merged}
                   if plan and len(merged) < frames_total else {},
                   peak_memory_bytes=max((p for name, r in rows.items()
                                          for p in peaks(engine, name, r).values()
                                          if p is not None), default=None),
                   max_workers=control.max_workers, tags=list(control.tags),
                   datums_running=sum(1 for r in rows.values() for d in r
                                      if times.running_now(d)),
                   processing_s=times.processing_s(rows, at),
                   queuing_s=times.queuing_s(min((r["created"] for r in jobs), default=None),
                                             rows, at))


class Views:
    """Every job's view, kept by what changed rather than rebuilt from the store's history.

    Nothing written since the last look (``Store.stamp``): only the views that move by
    themselves (a started job's elapsed time) are made again. Else a few reads over all
    jobs (their pipeline jobs' states and counts, job control, and each shot's origin
    in ``blends``: ``ShotIndex.origins``, which reads only new commits) say which jobs
    changed; only theirs are made again. A job with a pipeline job running, or started
    and not settled, is made again each time (``still``); one not settled, when the
    engine starts or stops running jobs (it shows as queued or running).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine  # a reader of its own, used by one thread at a time
        self.index = ShotIndex(engine)
        self.stamp: tuple[int, int] | None = None
        self.keys: dict[str, tuple[Any, ...]] = {}  # shot -> what its view is made from
        self.holds: dict[str, Holds] = {}
        self.made: dict[str, tuple[tuple[Any, ...], JobView]] = {}
        self.running: bool | None = None

    def update(self, running: bool) -> list[JobView]:
        stamp = self.engine.store.stamp()
        if stamp != self.stamp:
            self.stamp = stamp
            self._rekey()
        flipped, self.running = running != self.running, running  # queued or running
        views = []
        for job, key in self.keys.items():
            made = self.made.get(job)
            if made is None or made[0] != key or not still(made[1], key) or (
                    flipped and made[1].state not in SETTLED):
                made = self.made[job] = (key, view(self.engine, job, running, self.holds[job]))
            views.append(made[1])
        for gone in set(self.made) - set(self.keys):
            del self.made[gone]
        return views

    def _rekey(self) -> None:
        store = self.engine.store
        origins = self.index.origins()
        seqs = records.commit_seqs(store, "blends")
        runs: dict[str | None, list[tuple[Any, ...]]] = {}
        for r in records.job_states(store):
            runs.setdefault(r["shot"], []).append(tuple(r))
        whole = tuple(sorted(runs.get(None, [])))  # jobs over whole commits: every shot's
        controls = {r["job"]: tuple(r) for r in records.controls(store)}
        self.keys = {shot: (origins[shot], tuple(sorted(runs.get(shot, []))), whole,
                            controls.get(shot)) for shot in sorted(origins)}
        self.holds = {shot: _since(seqs, seq) for shot, (_, seq) in origins.items()}


def _since(seqs: dict[str, int], seq: int) -> Holds:
    """The blends commits from ``seq`` on: they hold a shot whose origin is at ``seq``."""
    return lambda commit: seqs.get(commit, -1) >= seq


def still(made: JobView, key: tuple[Any, ...]) -> bool:
    """A view that moves only by what is written: none of its pipeline jobs runs, and its
    job is settled or has not started (it has no elapsed time to count)."""
    runs = key[1] + key[2]
    if any(run[2] == "running" for run in runs):
        return False
    return made.state in SETTLED or not runs



def failures(engine: Engine, job: str) -> list[dict[str, str]]:
    """Each failed datum of the job: its pipeline, inputs and one-line error."""
    rows = job_rows(engine, job)
    return [{"pipeline": pipeline, "datum": d["id"][:12],
             "inputs": ", ".join(p for _, p in json.loads(d["inputs"])),
             "error": " ".join((d["error"] or "").split())}
            for pipeline, datums in rows.items() for d in datums if d["state"] == "failed"]
