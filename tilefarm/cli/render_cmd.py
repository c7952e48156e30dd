"""``tilefarm render``: put jobs into ``blends``, run the pipelines locally, export frames and video.

The store defaults to ``OUT/.tilefarm``, so running the same command again
resumes: unchanged inputs make no new commit, and datums that finished are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tilefarm.cli.flags import add_plan_flags, add_variant_flags, flag_settings
from tilefarm.cli.ray_cmds import add_ray_flag, ray_pool
from tilefarm.cli.served import render_via_server
from tilefarm.engine.control import shot_of_inputs
from tilefarm.engine.engine import Engine, EngineBusy, JobReport
from tilefarm.engine.progress import ProgressDisplay
from tilefarm.engine.store import FileInfo, Store, records, replace_entries
from tilefarm.errors import TilefarmError, UsageError
from tilefarm.pipelines.specs import packaged_specs
from tilefarm.plan import layout
from tilefarm.plan.model import Plan
from tilefarm.plan.schemas import load
from tilefarm.plan.settings import JobSettings, VideoSettings, parse_size
from tilefarm.runtime.memory import available
from tilefarm.server.client import server_of_store
from tilefarm.splitter.prepare import prepared
from tilefarm.splitter.intake import open_job
from tilefarm.splitter.split import FACTS_CACHE_ENV, job_versions
from tilefarm.splitter.variants import VARIANT_CACHE_ENV


@dataclass
class JobOutcome:
    job: str
    ok: bool
    message: str


def ensure_pipelines(engine: Engine) -> None:
    engine.store.create_repo("blends", exist_ok=True)
    for spec in packaged_specs():
        engine.create_pipeline(spec, update=True)


def first_failure(store: Store, reports: list[JobReport], job: str) -> str | None:
    """The error of the first datum of ``job`` that failed in these pipeline jobs."""
    for report in reports:
        if report.state != "failure":
            continue
        for row in records.job_datums(store, report.id, "failed"):
            if shot_of_inputs(row["inputs"]) == job and row["error"]:
                return f"{report.pipeline}: {' '.join(row['error'].split())}"
    return None


def export(store: Store, job: str, out: Path, video: bool) -> str:
    """Copy the job's frames (and video) from the output repos into ``out/<job>/``.

    Only outputs made from the current ``blends`` commit count: where a job of this
    commit set failed, the branches keep older outputs, and exporting those would hand
    the user frames of another version of the job."""
    blends = _head(store, "blends")
    for repo in ("splitter", "merger") + (("encoder",) if video else ()):
        head = store.head(repo)
        if head is None or head.provenance.get("blends") != blends:
            raise TilefarmError(f"job {job}: the {repo} output is not from this version of the "
                                "jobs (a job failed or could not run); nothing was exported; "
                                "see `tilefarm list job`")
    plan_info = _file(store, "splitter", f"/{job}/plan.json")
    if plan_info is None:
        raise TilefarmError(f"job {job}: no plan was made; see `tilefarm logs -p splitter`")
    plan = load(Plan, json.loads(store.object_path(plan_info.hash).read_text(encoding="utf-8")))
    for frame in plan.frames:
        name = layout.frame_path(Path("/"), job, frame, plan.output.extension)
        info = _file(store, "merger", str(name))
        if info is None:
            raise TilefarmError(f"job {job}: frame {frame} was not made; see "
                                "`tilefarm list job` and `tilefarm logs -p renderer`")
        store.export(info, layout.frame_path(out, job, frame, plan.output.extension))
    message = f"{len(plan.frames)} frames in {out / job / 'frames'}"
    prefix = str(layout.file_output_dir(Path("/"), job))
    outputs = store.files(_head(store, "merger"), prefix)
    for info in outputs:  # compositor File Output nodes' files, under their node's name
        store.export(info, layout.file_output_dir(out, job) / info.path[len(prefix) + 1:])
    if outputs:
        message += f", {len(outputs)} File Output files in {layout.file_output_dir(out, job)}"
    if video and plan.video.enabled:
        videos = [f for f in store.files(_head(store, "encoder"), f"/{job}")
                  if f.path.startswith(f"/{job}/{job}.")]
        if not videos:
            raise TilefarmError(f"job {job}: no video was made; see `tilefarm logs -p encoder`")
        target = out / job / Path(videos[0].path).name
        store.export(videos[0], target)
        message += f", video {target}"
    return message


def _head(store: Store, repo: str) -> str | None:
    head = store.head(repo)
    return head.id if head else None


def _file(store: Store, repo: str, path: str) -> FileInfo | None:
    matches = [f for f in store.files(_head(store, repo), path) if f.path == path]
    return matches[0] if matches else None


def _say(job: str, plan: Plan) -> None:
    """The one-line notices of a plan: missing files allowed, another Blender, whole frames,
    and its notes (files the render never reads, a movie written as frames)."""
    missing = [d for d in plan.dependencies if d.missing]
    if missing:
        print(f"tilefarm: warning: {job}: {len(missing)} missing file(s), rendering without "
              "them (--allow-missing): " + ", ".join(d.path for d in missing[:10]),
              file=sys.stderr)
    if plan.blender.note is not None:
        print(f"{job}: {plan.blender.note}")
    if plan.tiling.reason is not None:
        print(f"{job}: rendering whole frames instead of {plan.tiling.requested} tiles: "
              f"{plan.tiling.reason}")
    for note in plan.notes:
        print(f"{job}: note: {note}")


# The stages started beside intake: the first a job needs (the renderer's Blender boots longest).
FIRST_STAGES = ("splitter", "renderer")


def first_series(source: str, flags: JobSettings) -> str | None:
    """The Blender series the first job renders with, from its file's header (no Blender
    runs): the renderer's process, started before the job, boots that Blender beside intake.
    None where the header cannot tell; intake then says why in its own words."""
    try:
        return job_versions(open_job(Path(source)), flags).rendered_by
    except TilefarmError:
        return None


def cmd_render(args: argparse.Namespace) -> int:
    flags = flag_settings(args)
    if args.no_video:
        flags = dataclasses.replace(flags, video=VideoSettings(enabled=False))
    if args.workers < 1:
        raise UsageError(f"{args.workers} workers is not allowed; use 1 or more", flag="--workers")
    out = Path(args.out)
    root = Path(args.root) if args.root else out / ".tilefarm"
    try:
        Engine(root, lock=True).close()  # a store a server owns: render through the server
    except EngineBusy:
        url = server_of_store(root)
        if url is None:
            raise
        return render_via_server(args, flags, url)
    outcomes: list[JobOutcome] = []
    remote = ray_pool(args)
    memory = parse_size(args.memory, "--memory") if args.memory is not None else available()
    # Warm pools (Engine.prestart): each stage's job finds its processes started, as on a
    # server. The first stages start beside intake, the others once it is done: intake's
    # inspecting Blender shares 2 cores with every start. On a Ray cluster each slot starts
    # the first stages only: the later ones would start on the cores of the split and the
    # first renders (a one-core node: 5.2 s with them, 4.9 s without, 5.2 s with none).
    with Engine(root, lock=True, memory=memory, remote=remote, warm=remote is None) as engine, \
            tempfile.TemporaryDirectory(prefix="tilefarm-put-") as tmp, \
            contextlib.ExitStack() as copies:  # variants' substituted copies, until put
        # The up-front check and the splitter share inspected facts (see split.inspect).
        os.environ.setdefault(FACTS_CACHE_ENV, str(engine.root / "facts"))
        os.environ.setdefault(VARIANT_CACHE_ENV, str(engine.root / "variants"))
        ensure_pipelines(engine)
        engine.prestart(args.workers, first_series(args.sources[0], flags), only=FIRST_STAGES)
        entries: list[tuple[str, Path]] = []
        jobs: list[str] = []
        steered: dict[str, JobSettings] = {}  # what each job's settings steer
        for raw in args.sources:
            try:  # the splitter's checks, up front
                intake = copies.enter_context(prepared(Path(raw), flags, Path(tmp),
                                                       variants=args.variant,
                                                       sets=args.set or [],
                                                       tagged=remote is not None))
                for made in intake.jobs:
                    if made.job in jobs:
                        raise TilefarmError(f"job {made.job!r} is named twice in this "
                                            "command", path=raw)
                for made in intake.jobs:
                    _say(made.job, made.plan)
                    entries += made.entries
                    jobs.append(made.job)
                    steered[made.job] = made.settings
            except TilefarmError as exc:
                outcomes.append(JobOutcome(Path(raw).stem, False, str(exc)))
                print(f"tilefarm: error: {' '.join(str(exc).split())}", file=sys.stderr)
        reports: list[JobReport] = []
        if jobs:
            if remote is None:  # the later stages, once intake is done with the cores
                engine.prestart(args.workers)
            remove = [p for j in jobs for p in (f"/{j}.blend", f"/{j}")]
            replace_entries(engine.store, "blends", "master", remove, entries)
            for job, settings in steered.items():
                engine.control.take_settings(job, settings.max_workers, settings.tags)
            display = ProgressDisplay(engine)
            reports = engine.run_pending(workers=args.workers, progress=display.update,
                                         on_job=display.start, release=True)
            display.close()
        for job in jobs:
            failure = first_failure(engine.store, reports, job)
            if failure is not None:  # what went wrong, not that nothing could be exported
                outcomes.append(JobOutcome(job, False, failure))
                continue
            try:
                outcomes.append(JobOutcome(job, True, export(engine.store, job, out,
                                                             not args.no_video)))
            except TilefarmError as exc:
                outcomes.append(JobOutcome(job, False, str(exc)))
    for outcome in outcomes:
        print(f"{outcome.job}: {'done' if outcome.ok else 'FAILED'}: {outcome.message}")
    for report in reports:
        if report.state != "success":
            print(f"{report.pipeline} job {report.id[:12]} {report.state}: {report.error}")
    print(f"{len([o for o in outcomes if o.ok])} of {len(outcomes)} jobs done; "
          f"{sum(r.processed for r in reports)} processed, {sum(r.skipped for r in reports)} "
          f"skipped, {sum(r.failed for r in reports)} failed")
    ok = all(o.ok for o in outcomes) and all(r.state == "success" for r in reports)
    return 0 if ok else 1


def _render_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("render", help="render jobs on this machine: frames and a video",
                       description="Put each .blend or job directory into the blends repo, run "
                                   "splitter -> renderer -> merger -> encoder on this machine, and "
                                   "write OUT/<job>/frames/ and OUT/<job>/<job>.mp4. Rerunning the "
                                   "same command resumes.")
    p.add_argument("sources", nargs="+", metavar="SCENE.blend|JOB_DIR")
    p.add_argument("--out", required=True, metavar="OUT", help="where frames and videos go")
    p.add_argument("--root", metavar="DIR", help="the engine's store (default OUT/.tilefarm)")
    add_plan_flags(p)
    p.add_argument("--memory", metavar="SIZE",
                   help="memory the datums running at once may use together, e.g. 16GiB "
                   "(default: the machine's available memory)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes per pipeline; Blender threads are split between them")
    add_ray_flag(p)
    p.add_argument("--no-video", action="store_true", help="frames only")
    add_variant_flags(p)
    p.set_defaults(handler=cmd_render)


RENDER_COMMANDS = [_render_parser]
