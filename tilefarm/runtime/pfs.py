"""How a Pachyderm worker presents a datum: ``/pfs/<input>/...`` plus an environment
variable named after each input holding the datum's path, and ``/pfs/out`` for output.

The pfs root is ``/pfs`` in a worker; ``--pfs-root`` or ``TILEFARM_PFS_ROOT``
moves it for local runs and tests.
"""

from __future__ import annotations

import os
from pathlib import Path

PFS_ROOT_ENV = "TILEFARM_PFS_ROOT"


def pfs_root(flag: str | None) -> Path:
    return Path(flag or os.environ.get(PFS_ROOT_ENV) or "/pfs")


def datum_entries(root: Path, input_name: str) -> list[Path]:
    """The top-level entries of input ``input_name`` in this datum.

    Pachyderm sets ``$<input_name>`` to the matched path; with a ``/*`` glob that
    is one entry. Without the variable (a local run) every entry of the input is one.
    """
    base = root / input_name
    named = os.environ.get(input_name)
    if named:
        path = Path(named)
        if not path.is_absolute() or not path.exists():
            # The variable names a path under the worker's /pfs; rebase it onto our root.
            parts = path.parts[2:] if path.parts[:2] == ("/", "pfs") else path.parts
            path = root.joinpath(*parts)
        return [path]
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if not p.name.startswith("."))
