"""The local engine's command line, in pachctl's grammar (``tilefarm put file repo@master:/x -f x``).

Every command takes ``--root DIR`` (default ``$TILEFARM_ROOT`` or ``./.tilefarm``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tilefarm.engine.engine import ROOT_ENV, Engine, EngineBusy
from tilefarm.engine.progress import ProgressDisplay, status_table, table
from tilefarm.engine.store import Commit, Store, StoreError, normalize, records
from tilefarm.errors import UsageError
from tilefarm.pipelines.specs import read_spec
from tilefarm.sizes import format_size
from tilefarm.server.client import server_of_store

Sub = argparse._SubParsersAction  # type: ignore[type-arg]


def default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or ".tilefarm")


def parse_ref(text: str, flag: str = "REPO@BRANCH:/PATH") -> tuple[str, str, str]:
    """``repo@branch:/path`` -> (repo, branch-or-commit, path); branch defaults to master."""
    ref, _, path = text.partition(":")
    repo, _, branch = ref.partition("@")
    if not repo:
        raise UsageError(f"{text!r} names no repo; use {flag}, e.g. blends@master:/shot.blend",
                         flag=flag)
    return repo, branch or "master", normalize(path or "/")


def resolve(store: Store, repo: str, ref: str) -> Commit | None:
    """A branch's head, or a commit of ``repo`` given by id."""
    return store.commit(ref) if records.commit_in(store, repo, ref) else store.head(repo, ref)


def when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


def add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", metavar="DIR", help=f"the store (default ${ROOT_ENV} or ./.tilefarm)")


def engine_of(args: argparse.Namespace, *, lock: bool = False) -> Engine:
    return Engine(Path(args.root) if args.root else default_root(), lock=lock)


# -- repos and files ---------------------------------------------------------------------------

def cmd_create_repo(args: argparse.Namespace) -> int:
    with engine_of(args) as engine:
        engine.store.create_repo(args.name)
    return 0


def cmd_list_repo(args: argparse.Namespace) -> int:
    with engine_of(args) as engine:
        rows = []
        for name in engine.store.repos():
            head = engine.store.head(name)
            files = engine.store.files(head.id if head else None)
            rows.append([name, when(head.created if head else None), str(len(files)),
                         _size(sum(f.size for f in files))])
    print(table(["NAME", "UPDATED", "FILES", "SIZE"], rows))
    return 0


def cmd_put_file(args: argparse.Namespace) -> int:
    repo, branch, path = parse_ref(args.target)
    source = Path(args.file)
    if not source.exists():
        raise UsageError("no such file or directory", flag=f"-f {source}")
    if source.is_dir() and not args.recursive:
        raise UsageError("is a directory; add -r to put it whole", flag=f"-f {source}")
    if source.is_dir():
        entries = [(f"{path.rstrip('/')}/{p.relative_to(source).as_posix()}", p)
                   for p in sorted(source.rglob("*")) if p.is_file()]
    else:
        entries = [(path if path != "/" else "/" + source.name, source)]
    with engine_of(args) as engine:
        commit = engine.store.put_files(repo, branch, entries)
    print(commit.id)
    return 0


def cmd_list_file(args: argparse.Namespace) -> int:
    repo, ref, path = parse_ref(args.target)
    with engine_of(args) as engine:
        commit = resolve(engine.store, repo, ref)
        files = engine.store.files(commit.id if commit else None, path)
    depth = 0 if path == "/" else len(path.strip("/").split("/"))
    shown: dict[str, tuple[str, int]] = {}
    for f in files:
        parts = f.path.strip("/").split("/")
        name = "/" + "/".join(parts[:depth + 1])
        kind = "file" if len(parts) == depth + 1 else "dir"
        size = shown.get(name, (kind, 0))[1] + f.size
        shown[name] = (kind, size)
    print(table(["NAME", "TYPE", "SIZE"], [[n + ("/" if k == "dir" else ""), k, _size(s)]
                                            for n, (k, s) in sorted(shown.items())]))
    return 0


def cmd_get_file(args: argparse.Namespace) -> int:
    repo, ref, path = parse_ref(args.source)
    with engine_of(args) as engine:
        commit = resolve(engine.store, repo, ref)
        files = engine.store.files(commit.id if commit else None, path)
        exact = [f for f in files if f.path == path]
        if not files:
            raise StoreError(f"{repo}@{ref}:{path} does not exist")
        if not exact and not args.recursive:
            raise UsageError(f"{repo}@{ref}:{path} is a directory; add -r to get it whole", flag="-r")
        dest = Path(args.output)
        for f in files:
            target = dest if f.path == path else dest / f.path[len(path.rstrip("/")) + 1:]
            engine.store.export(f, target)  # never a half-written file at the destination
    return 0


def cmd_list_commit(args: argparse.Namespace) -> int:
    repo, branch, _ = parse_ref(args.repo)
    with engine_of(args) as engine:
        commits = engine.store.commits(repo, branch if "@" in args.repo else None)
        rows = [[c.id, c.branch, when(c.created), c.state, str(len(engine.store.files(c.id)))]
                for c in commits]
    print(table(["ID", "BRANCH", "STARTED", "STATE", "FILES"], rows))
    return 0


# -- pipelines, jobs, datums --------------------------------------------------------------------

def cmd_create_pipeline(args: argparse.Namespace, update: bool = False) -> int:
    spec = read_spec(Path(args.file))
    with engine_of(args, lock=True) as engine:
        engine.create_pipeline(spec, update=update, reprocess=getattr(args, "reprocess", False))
    return 0


def cmd_list_pipeline(args: argparse.Namespace) -> int:
    with engine_of(args) as engine:
        rows = []
        for spec, version in engine.pipelines():
            last = records.jobs(engine.store, spec.name)[:1]
            rows.append([spec.name, str(version), _input_text(spec.input),
                         last[0]["state"] if last else "-"])
    print(table(["NAME", "VERSION", "INPUT", "LAST JOB"], rows))
    return 0


def cmd_list_job(args: argparse.Namespace) -> int:
    with engine_of(args) as engine:
        rows = [[r["pipeline"] + "@" + r["id"], when(r["started"]), _elapsed(r), r["state"],
                 f"{r['processed'] + r['skipped']}/{r['total']}", str(r["skipped"]), str(r["failed"])]
                for r in records.jobs(engine.store, args.pipeline or None)]
    print(table(["JOB", "STARTED", "DURATION", "STATE", "DATUMS", "SKIPPED", "FAILED"], rows))
    return 0


def _job(engine: Engine, ref: str) -> dict[str, object]:
    pipeline, _, job = ref.partition("@")
    row = records.find_job(engine.store, pipeline, job)
    if row is None:
        raise UsageError(f"no job {ref!r}; see `tilefarm list job`", flag="PIPELINE@JOB")
    return dict(row)


def cmd_inspect_job(args: argparse.Namespace) -> int:
    with engine_of(args) as engine:
        job = _job(engine, args.job)
    job["inputs"] = json.loads(str(job["inputs"]))
    print(json.dumps(job, indent=2))
    return 0


def cmd_list_datum(args: argparse.Namespace) -> int:
    with engine_of(args) as engine:
        if args.file:  # a dry run: the datums this spec would have now
            spec = read_spec(Path(args.file))
            rows = [[d.id, ", ".join(f"{p.name}:{p.path}" for p in d.parts), "-"]
                    for d in engine.list_datums(spec)]
        else:
            if not args.job:
                raise UsageError("name a job (PIPELINE@JOB) or a spec (-f SPEC)", flag="list datum")
            job = _job(engine, args.job)
            rows = [[r["id"], ", ".join(f"{n}:{p}" for n, p in json.loads(r["inputs"])), r["state"]]
                    for r in records.job_datums(engine.store, str(job["id"]))]
    print(table(["ID", "FILES", "STATE"], rows))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    with engine_of(args) as engine:
        base = engine.root / "logs" / args.pipeline
        if args.job:
            job = _job(engine, f"{args.pipeline}@{args.job}")
            base = base / str(job["id"])
    for log in sorted(base.rglob("*.log")) if base.exists() else []:
        if args.datum and not log.name.startswith(args.datum):
            continue
        sys.stdout.write(log.read_text(encoding="utf-8", errors="replace"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    root = Path(args.root) if args.root else default_root()
    url = server_of_store(root)
    if url is not None:
        try:
            Engine(root, lock=True).close()
        except EngineBusy:
            print(f"tilefarm: the server at {url} runs this store's jobs as they arrive; "
                  "nothing to do (tilefarm status shows them)")
            return 0
    with engine_of(args, lock=True) as engine:
        display = ProgressDisplay(engine)
        reports = engine.run_pending(workers=args.workers, progress=display.update,
                                     on_job=display.start)
        display.close()
    for r in reports:
        print(f"{r.pipeline}@{r.id[:12]}: {r.state}" + (f" ({r.error})" if r.error else ""))
    print(f"{sum(r.processed for r in reports)} processed, {sum(r.skipped for r in reports)} "
          f"skipped, {sum(r.failed for r in reports)} failed")
    return 1 if any(r.state != "success" for r in reports) else 0


def cmd_status(args: argparse.Namespace) -> int:
    with engine_of(args) as engine:
        print(status_table(engine) if args.job is None else job_usage_table(engine, args.job))
    return 0


def job_usage_table(engine: Engine, job: str) -> str:
    """A row per rendered tile of ``job`` and per merged frame: seconds and peak memory."""
    from tilefarm.server import estimates, state  # reads the store as the dashboard does

    if job not in state.shots(engine):
        raise UsageError(f"no job {job!r} in the blends repo; see tilefarm list file "
                         "blends@master", flag="JOB")
    rows = state.job_rows(engine, job)
    peaks = state.frame_memory(engine, job, rows)
    lines = [[str(t["frame"]), str(t["tile"]), f"{t['render_seconds']:.2f}",
              format_size(t["peak_memory_bytes"]) if t["peak_memory_bytes"] else "-", "-"]
             for t in state.tile_usage(engine, job, rows)]
    for row in lines:
        row[4] = format_size(peaks[int(row[0])]) if int(row[0]) in peaks else "-"
    text = table(["FRAME", "TILE", "SECONDS", "PEAK MEMORY", "FRAME PEAK"], lines)
    kept = estimates.saved(engine.store.root, engine.store, job)  # a server's, if it made one
    span = estimates.makespan(kept, 1)
    if kept is not None and span is not None:
        took = state.view(engine, job, False)
        how = "its history" if kept["from_history"] else "probe renders"
        text += (f"\nestimated {span:.1f} s on one machine (from {how}); "
                 f"{'took' if took.state == 'done' else 'so far'} {took.elapsed_s:.1f} s")
    return text


def _input_text(spec: dict[str, object]) -> str:
    from tilefarm.pipelines.specs import pfs_inputs

    return ", ".join(sorted({f"{p['repo']}:{p.get('glob', '/')}" for p in pfs_inputs(spec)}))


def _elapsed(row: object) -> str:
    r = dict(row)  # type: ignore[call-overload]
    if not r["started"]:
        return "-"
    return f"{(r['finished'] or time.time()) - r['started']:.1f}s"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _two_words(sub: Sub, verb: str, help_text: str) -> Sub:
    parser = sub.add_parser(verb, help=help_text)
    inner = parser.add_subparsers(dest=f"{verb}_what", metavar="WHAT", parser_class=type(parser))
    inner.required = True
    return inner


def register(sub: Sub) -> None:
    create = _two_words(sub, "create", "create a repo or a pipeline (pachctl grammar)")
    p = create.add_parser("repo", help="create a repo")
    p.add_argument("name")
    p.set_defaults(handler=cmd_create_repo)
    add_root(p)
    p = create.add_parser("pipeline", help="create a pipeline from a spec file")
    p.add_argument("-f", "--file", required=True, metavar="SPEC")
    p.set_defaults(handler=cmd_create_pipeline)
    add_root(p)

    update = _two_words(sub, "update", "update a pipeline")
    p = update.add_parser("pipeline", help="replace a pipeline's spec; processed datums are "
                          "kept unless --reprocess")
    p.add_argument("-f", "--file", required=True, metavar="SPEC")
    p.add_argument("--reprocess", action="store_true",
                   help="process every datum again, not only new or changed ones")
    p.set_defaults(handler=lambda a: cmd_create_pipeline(a, update=True))
    add_root(p)

    put = _two_words(sub, "put", "put files into a repo")
    p = put.add_parser("file", help="put a file (or, with -r, a directory) into REPO@BRANCH:/PATH")
    p.add_argument("target", metavar="REPO@BRANCH:/PATH")
    p.add_argument("-f", "--file", required=True, metavar="FILE")
    p.add_argument("-r", "--recursive", action="store_true")
    p.set_defaults(handler=cmd_put_file)
    add_root(p)

    get = _two_words(sub, "get", "get files out of a repo")
    p = get.add_parser("file", help="get REPO@BRANCH:/PATH (with -r, a directory) into -o DEST")
    p.add_argument("source", metavar="REPO@BRANCH:/PATH")
    p.add_argument("-o", "--output", required=True, metavar="DEST")
    p.add_argument("-r", "--recursive", action="store_true")
    p.set_defaults(handler=cmd_get_file)
    add_root(p)

    inspect = _two_words(sub, "inspect", "inspect a job")
    p = inspect.add_parser("job", help="show one job as JSON")
    p.add_argument("job", metavar="PIPELINE@JOB")
    p.set_defaults(handler=cmd_inspect_job)
    add_root(p)

    listing = _two_words(sub, "list", "list repos, files, commits, pipelines, jobs or datums")
    for what, handler, arg in (("repo", cmd_list_repo, None), ("file", cmd_list_file, "target"),
                               ("commit", cmd_list_commit, "repo"),
                               ("pipeline", cmd_list_pipeline, None), ("job", cmd_list_job, None),
                               ("datum", cmd_list_datum, None)):
        p = listing.add_parser(what, help=f"list {what}s")
        if arg == "target":
            p.add_argument("target", metavar="REPO@BRANCH[:/PATH]")
        elif arg == "repo":
            p.add_argument("repo", metavar="REPO[@BRANCH]")
        if what == "job":
            p.add_argument("-p", "--pipeline")
        if what == "datum":
            p.add_argument("job", nargs="?", metavar="PIPELINE@JOB")
            p.add_argument("-f", "--file", metavar="SPEC", help="dry run: the datums SPEC would have")
        p.set_defaults(handler=handler)
        add_root(p)

    p = sub.add_parser("logs", help="print the logs of a pipeline's datums")
    p.add_argument("--pipeline", "-p", required=True)
    p.add_argument("--job")
    p.add_argument("--datum")
    p.set_defaults(handler=cmd_logs)
    add_root(p)

    p = sub.add_parser("run", help="run every pending job until nothing is pending")
    p.add_argument("--workers", type=int, default=1, metavar="N")
    p.set_defaults(handler=cmd_run)
    add_root(p)

    p = sub.add_parser("status", help="a table per job: status, progress, tasks, times, workers; "
                       "with JOB, a row per tile: seconds and peak memory")
    p.add_argument("job", nargs="?", metavar="JOB",
                   help="a render job: its tiles' render seconds and peak memory")
    p.set_defaults(handler=cmd_status)
    add_root(p)


ENGINE_COMMANDS: Sequence[Callable[[Sub], None]] = [register]
