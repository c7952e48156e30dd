"""The house drawn from the code's own imports (issue 11): one import root, each stage in
its folder importing no other stage, no arrow pointing back down the layers, and modules
of one concept (none over 400 lines)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The card's folders and the shared library, and the import names they install as.
FOLDERS = {"tilefarm": "tilefarm", "pipelines": "tilefarm.pipelines",
           "splitter": "tilefarm.splitter", "renderer": "tilefarm.renderer",
           "merger": "tilefarm.merger", "encoder": "tilefarm.encoder", "specs": "tilefarm.specs"}
STAGES = {"tilefarm.splitter", "tilefarm.renderer", "tilefarm.merger", "tilefarm.encoder"}
# Who may import whom: a room imports only rooms of a lower layer (and itself).
LAYERS = {
    "tilefarm": 0, "tilefarm.errors": 0, "tilefarm.sizes": 0, "tilefarm.specs": 0,
    "tilefarm.plan": 1, "tilefarm.runtime": 1,
    "tilefarm.blender": 2,
    "tilefarm.pipelines": 3,
    **{stage: 4 for stage in STAGES},
    "tilefarm.engine": 5,
    "tilefarm.nodes": 6,
    "tilefarm.server": 7,
    "tilefarm.cli": 8,
    "tilefarm.__main__": 9,
}
SIDE = ROOT / "tilefarm" / "blender" / "side"


def modules() -> dict[str, Path]:
    found = {}
    for folder, name in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            found[".".join((name, *parts)).removesuffix(".__init__")] = path
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "tilefarm" or n.startswith("tilefarm.")}


def arrows() -> list[tuple[str, str]]:
    return sorted({(room(m), room(target)) for m, path in modules().items()
                   if SIDE not in path.parents for target in imports(path)
                   if room(target) != room(m)})


def test_every_room_has_a_layer() -> None:
    assert {room(m) for m in modules()} <= set(LAYERS)


def test_no_stage_imports_another_stage() -> None:
    assert [(a, b) for a, b in arrows() if a in STAGES and b in STAGES] == []


def test_no_arrow_points_back() -> None:
    backward = [(a, b) for a, b in arrows() if LAYERS[b] >= LAYERS[a]]
    assert backward == []
    assert len(arrows()) > 20  # the check looked at real imports


def test_the_engine_does_not_need_the_cluster_client_nor_deploy_the_engine() -> None:
    by_module = {m: imports(p) for m, p in modules().items()}
    engine = set().union(*(v for m, v in by_module.items() if room(m) == "tilefarm.engine"))
    assert not {"tilefarm.pipelines.cluster", "tilefarm.pipelines.deploy"} & engine
    assert not any(t.startswith("tilefarm.engine") for t in by_module["tilefarm.pipelines.deploy"])


def test_the_command_starts_without_the_image_libraries() -> None:
    """Every ``tilefarm`` command pays its imports before it does anything: numpy and
    OpenEXR (about 60 ms) are imported where frames are read, not at the start."""
    probe = ("import sys, tilefarm.cli.main; "
             "print(sorted({'numpy', 'OpenEXR', 'cv2', 'bpy'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_only_the_blender_side_runs_inside_blender() -> None:
    # The parent imports the request types only; Blender-side scripts import each other
    # by bare names and nothing of the parent's.
    for path in SIDE.glob("*.py"):
        assert imports(path) == set(), path


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_modules_stay_small_and_rooms_say_what_they_are_for(folder: str) -> None:
    for path in (ROOT / folder).rglob("*.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 400, f"{path.relative_to(ROOT)}: {lines} lines"
        if path.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
            assert doc, f"{path.relative_to(ROOT)} says nothing of what its room is for"


def test_every_sql_statement_is_in_the_store_package() -> None:
    """One store package (tilefarm/engine/store/) holds the schema, its migrations and every
    statement; the rest of tilefarm asks it by what a query means."""
    store = ROOT / "tilefarm" / "engine" / "store"
    sql = re.compile(r"^\s*(SELECT\b.*\bFROM\b|SELECT 1\b|INSERT (OR \w+ )?INTO\b|UPDATE \w+ SET\b|"
                     r"DELETE FROM\b|CREATE (TABLE|INDEX)\b|ALTER TABLE\b|PRAGMA\b)", re.S)
    offenders = []
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            if store in path.parents:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
                          if isinstance(node, ast.Constant) and isinstance(node.value, str)
                          and sql.match(node.value)]
    assert offenders == []
