"""``python -m tilefarm.renderer``: render the task(s) of this datum into ``/pfs/out/<job>/tiles/``.

With ``PPS_WORKER_GRPC_PORT`` set (Pachyderm datum batching) one process, and
one warm Blender per runtime, serves datum after datum through the worker's NextDatum call;
otherwise it renders the one datum it was started for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tilefarm.pipelines.worker import serve_datums
from tilefarm.renderer.render import RenderOptions, default_threads, render_task

from tilefarm.blender.runtimes import Sessions
from tilefarm.blender.side.protocol import DEVICES
from tilefarm.errors import TilefarmError
from tilefarm.plan import layout
from tilefarm.plan.model import read_task
from tilefarm.runtime.pfs import datum_entries, pfs_root
from tilefarm.runtime.stage import run_stage, stage_parser


def task_files(root: Path, tasks_input: str) -> list[Path]:
    """The task manifests of this datum: ``$splitter`` names one; a local run takes all."""
    found: list[Path] = []
    for entry in datum_entries(root, tasks_input):
        if entry.is_file() and entry.suffix == ".json":
            found.append(entry)
        elif entry.is_dir():
            found.extend(sorted(layout.task_dir(entry.parent, entry.name).glob("*.json")))
    return found


def render_datum(args: argparse.Namespace, sessions: Sessions) -> int:
    root = pfs_root(args.pfs_root)
    files = task_files(root, args.tasks_input)
    if not files:
        raise TilefarmError(f"no task manifest in this datum (looked under {root / args.tasks_input})")
    options = RenderOptions(threads=args.threads, device=args.device, timeout=args.task_timeout)
    for path in files:
        manifest = read_task(path)
        blend = root / args.blends_input / manifest.blend
        session = sessions.get(manifest.blender)  # the Blender the job was planned for
        written = render_task(manifest, blend, root / "out", session, options)
        print(f"renderer: {manifest.job} {manifest.task.id}: {len(written)} tile(s)", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    with Sessions("renderer") as sessions:
        sessions.start_early()
        return serve_datums("renderer", lambda: render_datum(args, sessions))


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("renderer", "Render each task of the datum as 32-bit multilayer EXR "
                          "tiles with their metadata, in one warm Blender session.")
    parser.add_argument("--threads", type=int, default=default_threads(), metavar="N",
                        help="Blender render threads (default $TILEFARM_THREADS or all cores)")
    parser.add_argument("--device", default="CPU", choices=DEVICES,
                        help="Cycles device (default CPU); a GPU type needs such a device present")
    parser.add_argument("--task-timeout", type=float, default=3600.0, metavar="SECONDS",
                        help="give up on a task after this long (default 3600)")
    parser.add_argument("--tasks-input", default="splitter", help="input holding task manifests")
    parser.add_argument("--blends-input", default="blends", help="input holding the .blend files")
    return run_stage("renderer", parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
