"""STYLE.md principle 2: only the Blender-side modules import bpy."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLENDER_SIDE = {ROOT / "tilefarm" / "blender" / "side", ROOT / "tests" / "scenes",
                ROOT / "bench" / "side"}
PACKAGES = ["tilefarm", "pipelines", "splitter", "renderer", "merger", "encoder", "specs", "tests",
            "bench"]


def imports_bpy(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "bpy" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "bpy":
            return True
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and any(
                isinstance(a, ast.Constant) and str(a.value).startswith("bpy") for a in node.args):
            return True
    return False


def test_only_blender_side_modules_import_bpy() -> None:
    offenders = []
    checked = 0
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if any(side in path.parents for side in BLENDER_SIDE):
                continue
            checked += 1
            if imports_bpy(path):
                offenders.append(str(path.relative_to(ROOT)))
    assert checked > 20
    assert offenders == []


def test_blender_side_modules_do_import_bpy() -> None:
    # The check above would pass vacuously if the detector were broken.
    assert imports_bpy(ROOT / "tilefarm" / "blender" / "side" / "boot.py")
    assert imports_bpy(ROOT / "tests" / "scenes" / "build_scenes.py")
