"""``tilefarm serve`` and the commands that steer a running server, in pachctl's grammar:
``stop job SHOT`` (cancel), ``pause job SHOT``, ``resume job SHOT``, ``set priority SHOT N``,
``rerender SHOT --frames 5-7``. The server is ``--server URL``, else the one that owns the
store (``--root``/``$TILEFARM_ROOT``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tilefarm.cli.ray_cmds import add_ray_flag, ray_pool
from tilefarm.engine.engine import ROOT_ENV
from tilefarm.errors import UsageError
from tilefarm.plan.settings import parse_size
from tilefarm.server.client import Client, server_of_store
from tilefarm.splitter.intake import check_job_name

Sub = argparse._SubParsersAction  # type: ignore[type-arg]


def client_of(args: argparse.Namespace) -> Client:
    """The server named by ``--server``, else the one owning the store."""
    url = getattr(args, "server", None)
    if not url:
        root = Path(args.root) if getattr(args, "root", None) else Path(
            os.environ.get(ROOT_ENV) or ".tilefarm")
        url = server_of_store(root)
        if url is None:
            raise UsageError(f"no server owns the store {root}; start one with tilefarm serve "
                             "or name one with --server URL", flag="--server")
    return Client(url, getattr(args, "token", None))


def cmd_serve(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise UsageError(f"{args.workers} workers is not allowed; use 1 or more",
                         flag="--workers")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"{args.port} is not a port; use 1-65535 (0: any free one)",
                         flag="--port")
    from tilefarm.server.serve import serve  # the HTTP side (opencv, OpenEXR) only when serving

    root = Path(args.root) if args.root else Path(os.environ.get(ROOT_ENV) or ".tilefarm")
    memory = parse_size(args.memory, "--memory") if args.memory is not None else None
    remote = ray_pool(args)
    return serve(root, host=args.host, port=args.port, workers=args.workers, token=args.token,
                 notify=args.notify, memory=memory, remote=remote)


def cmd_control(args: argparse.Namespace) -> int:
    job = check_job_name(args.job, "JOB")
    client_of(args).json("POST", f"/api/jobs/{job}/{args.verb}")
    print(f"tilefarm: {job}: {args.said}")
    return 0


def cmd_priority(args: argparse.Namespace) -> int:
    job = check_job_name(args.job, "JOB")
    client_of(args).json("POST", f"/api/jobs/{job}/priority", {"priority": args.priority})
    print(f"tilefarm: {job}: priority {args.priority}")
    return 0


def cmd_max_workers(args: argparse.Namespace) -> int:
    job = check_job_name(args.job, "JOB")
    text = args.workers.strip().lower()
    if text == "none":
        cap = None
    elif text.isdigit() and int(text) >= 1:
        cap = int(text)
    else:
        raise UsageError(f"{args.workers!r} is not a worker count; use 1 or more, or none to "
                         "lift the cap", flag="N")
    client_of(args).json("POST", f"/api/jobs/{job}/max_workers", {"max_workers": cap})
    print(f"tilefarm: {job}: " + (f"at most {cap} datum(s) at once" if cap else "no cap"))
    return 0


def cmd_rerender(args: argparse.Namespace) -> int:
    job = check_job_name(args.job, "JOB")
    body = {"frames": args.frames} if args.frames else {}
    answer = client_of(args).json("POST", f"/api/jobs/{job}/rerender", body)
    print(f"tilefarm: {job}: re-rendering {args.frames or 'every frame'} "
          f"({answer['datums']} datums to run again)")
    return 0


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="URL",
                        help="the server (default: the one owning --root/$TILEFARM_ROOT)")
    parser.add_argument("--root", metavar="DIR", help="the store whose server to use")
    parser.add_argument("--token", metavar="SECRET",
                        help="the server's token (default $TILEFARM_TOKEN)")


def _parsers(sub: Sub) -> None:
    p = sub.add_parser("serve", help="run a farm with an HTTP API and a live dashboard",
                       description="Run jobs as they arrive (submit --server, the page's "
                                   "upload, put file on the store) and serve the dashboard at / "
                                   "and the JSON API at /api/ (README: The server).")
    p.add_argument("--root", metavar="DIR", help=f"the store (default ${ROOT_ENV} or ./.tilefarm)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs --token)")
    p.add_argument("--port", type=int, default=8470, help="default 8470 (0: any free port)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes per pipeline")
    p.add_argument("--memory", metavar="SIZE",
                   help="memory the datums running at once may use together, e.g. 16GiB "
                   "(default: the machine's available memory)")
    add_ray_flag(p)
    p.add_argument("--token", metavar="SECRET", help="require this token on every request")
    p.add_argument("--notify", metavar="URL",
                   help="POST a JSON webhook here when a job is done or failed")
    p.set_defaults(handler=cmd_serve)

    for verb, api, said, text in (("stop", "cancel", "cancelled", "cancel a job: its Blender "
                                   "processes are killed, finished work is kept"),
                                  ("pause", "pause", "paused", "start no new work of a job"),
                                  ("resume", "resume", "resumed", "resume a paused or cancelled "
                                   "job, skipping finished work")):
        words = sub.add_parser(verb, help=text).add_subparsers(dest="what", metavar="job")
        words.required = True
        p = words.add_parser("job", help=text)
        p.add_argument("job", metavar="JOB")
        add_server_flags(p)
        p.set_defaults(handler=cmd_control, verb=api, said=said)

    words = sub.add_parser("set", help="set a job's priority or its workers").add_subparsers(
        dest="what", metavar="priority|max-workers")
    words.required = True
    p = words.add_parser("priority", help="higher runs first across jobs (default 0)")
    p.add_argument("job", metavar="JOB")
    p.add_argument("priority", type=int, metavar="N")
    add_server_flags(p)
    p.set_defaults(handler=cmd_priority)
    p = words.add_parser("max-workers", help="run at most N datums of the job at once "
                         "(none: as many as there are workers)")
    p.add_argument("job", metavar="JOB")
    p.add_argument("workers", metavar="N|none")
    add_server_flags(p)
    p.set_defaults(handler=cmd_max_workers)

    p = sub.add_parser("rerender", help="render some frames of a finished job again")
    p.add_argument("job", metavar="JOB")
    p.add_argument("--frames", metavar="SPEC", help="e.g. 5-7 (default: every frame)")
    add_server_flags(p)
    p.set_defaults(handler=cmd_rerender)


SERVER_COMMANDS = [_parsers]
