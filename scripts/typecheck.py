"""Type-check tilefarm with mypy, as installed: one import root, ``tilefarm``.

mypy reads folders, not setuptools' ``package-dir`` map, so this builds a view of the
import root under ``build/typecheck/`` (``tilefarm/`` with the card's folders linked in
as ``tilefarm/<folder>``) and checks it. The Blender-side scripts import each other by
bare names inside Blender, so they are checked as their own set of top-level modules,
with ``bpy`` as an unknown import (typed boundaries: the request types of ``protocol``).
Paths in mypy's messages are mapped back to the checkout. Exit code: mypy's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOUNTED = ("pipelines", "splitter", "renderer", "merger", "encoder", "specs")
SIDE = ROOT / "tilefarm" / "blender" / "side"


def view(base: Path) -> Path:
    """``base/tilefarm``: the shared library's entries and the card's folders, linked."""
    shutil.rmtree(base, ignore_errors=True)
    package = base / "tilefarm"
    package.mkdir(parents=True)
    for entry in (ROOT / "tilefarm").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for folder in MOUNTED:
        (package / folder).symlink_to(ROOT / folder)
    return package


def mypy(args: list[str], cwd: Path, mapping: dict[str, str]) -> int:
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                           *args], cwd=cwd, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    for inside, outside in mapping.items():
        text = text.replace(inside, outside)
    sys.stdout.write(text)
    return proc.returncode


def main() -> int:
    base = ROOT / "build" / "typecheck"
    package = view(base)
    mapping = {f"tilefarm/{folder}/": f"{folder}/" for folder in MOUNTED}
    code = mypy(["-p", "tilefarm", "--exclude", "tilefarm/blender/side/"], base, mapping)
    side = sorted(str(p) for p in SIDE.glob("*.py") if p.name != "__init__.py")
    code |= mypy(["--allow-untyped-defs", "--explicit-package-bases", *side], SIDE, {})
    shutil.rmtree(package.parent, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
