"""The one place where tilefarm's exceptions become exit codes and one-line messages."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from tilefarm.errors import TilefarmError


def run_main(prog: str, body: Callable[[], int]) -> int:
    """Run ``body``; map tilefarm errors (and Ctrl-C) to a one-line message and an exit code."""
    try:
        return body()
    except TilefarmError as exc:
        print(f"{prog}: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (``tilefarm plan x.blend | head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    return " ".join(text.split())
