"""What every stage's ``__main__`` shares: the pfs flags and the exit-code mapping."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from tilefarm.runtime.exitcodes import run_main


def stage_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m tilefarm.{prog}", description=description)
    parser.add_argument("--pfs-root", metavar="DIR",
                        help="where the inputs and out/ are (default $TILEFARM_PFS_ROOT or /pfs)")
    return parser


def run_stage(prog: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int],
              argv: list[str] | None) -> int:
    args = parser.parse_args(argv)
    return run_main(prog, lambda: body(args))
