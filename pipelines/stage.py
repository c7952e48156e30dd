"""What every stage's ``__main__`` shares: the pfs flags and the exit-code mapping."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from pipelines.errors import TilefarmError
from pipelines.exitcodes import run_main
from pipelines.pachyderm_api import batching_enabled, next_datum_envs


def stage_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description)
    parser.add_argument("--pfs-root", metavar="DIR",
                        help="where the inputs and out/ are (default $TILEFARM_PFS_ROOT or /pfs)")
    return parser


def serve_datums(prog: str, datum: Callable[[], object]) -> int:
    """Run ``datum`` once, or, under Pachyderm datum batching (``PPS_WORKER_GRPC_PORT``),
    once per datum the worker hands out, reporting each datum's error back to it."""
    if not batching_enabled():
        datum()
        return 0
    for done in next_datum_envs():
        try:
            datum()
            done("")
        except TilefarmError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
            done(str(exc))
    return 0


def run_stage(prog: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int],
              argv: list[str] | None) -> int:
    args = parser.parse_args(argv)
    return run_main(prog, lambda: body(args))
