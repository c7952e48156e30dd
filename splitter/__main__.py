"""``python -m tilefarm.splitter``: plan each job of this datum into ``/pfs/out/<job>/``."""

from __future__ import annotations

import argparse
import sys

from tilefarm.pipelines.worker import serve_datums
from tilefarm.splitter.intake import open_job
from tilefarm.splitter.split import plan_job, write_plan

from tilefarm.plan.settings import JobSettings
from tilefarm.runtime.pfs import datum_entries, pfs_root
from tilefarm.runtime.stage import run_stage, stage_parser


def split(args: argparse.Namespace) -> int:
    root = pfs_root(args.pfs_root)
    entries = datum_entries(root, args.input)
    if not entries:
        print(f"splitter: nothing to split under {root / args.input}", file=sys.stderr)
        return 0
    for entry in entries:
        plan = plan_job(open_job(entry), JobSettings())
        final = write_plan(plan, root / "out")
        print(f"splitter: {plan.job}: {len(plan.frames)} frames, {len(plan.tiles)} tiles, "
              f"{len(plan.tasks)} tasks -> {final}")
    return 0


def run(args: argparse.Namespace) -> int:
    """One datum, or under datum batching every datum the worker hands out: a warm
    splitter plans a job put during another's render without a process start."""
    return serve_datums("splitter", lambda: split(args))


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("splitter", "Turn each job (a .blend or a job directory) of the datum "
                          "into /pfs/out/<job>/plan.json and one task manifest per render task.")
    parser.add_argument("--input", default="blends", help="name of the input holding the jobs (default blends)")
    return run_stage("splitter", parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
