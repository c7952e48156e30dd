"""What real-world files carry and rendering never reads (issue 26): a job is refused only
for what Blender really reads to render and cannot have.

A .blend names more files than its render reads: weak library references (what Append
with Reuse Data, the Asset Browser and the factory startup file leave on datablocks), the
file a Text datablock was loaded from, and the files of datablocks the scene does not use.
Each such file is a note in the plan, never a refusal; the frames are bit-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Scenes, assert_one_line_error, run_cli
from tests.pipeline import assert_identical, references

pytestmark = pytest.mark.blender

# case -> what its note says the file is
NOT_READ = {
    "factory_default": "weak library reference",
    "appended_asset": "weak library reference",
    "text_missing": "its text is stored in the .blend",
    "unused_image_missing": "does not use it",
}


@pytest.mark.parametrize("case", sorted(NOT_READ))
def test_plan_notes_files_the_render_never_reads(scenes: Scenes, case: str) -> None:
    proc = run_cli("plan", str(scenes[case]), "--tiles", "2x2")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    notes = [n for n in plan["notes"] if "not read to render" in n]
    assert len(notes) == 1 and NOT_READ[case] in notes[0], plan["notes"]
    assert plan["dependencies"] == []  # nothing to pack, nothing missing the render reads
    assert plan["facts"]["files"] == []


def test_they_render_tiled_bit_identical(scenes: Scenes, tmp_path: Path) -> None:
    """Blender's factory default scene (in Cycles), a reused appended asset whose asset file
    is gone, a Text naming a missing README, an unused image whose file is missing."""
    out = tmp_path / "out"
    proc = run_cli("render", *(str(scenes[c]) for c in sorted(NOT_READ)), "--tiles", "2x2",
                   "--out", str(out), "--no-video", timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rendering whole frames" not in proc.stdout
    cases = sorted(NOT_READ)
    for case, theirs in zip(cases, references([(scenes[c], tmp_path / "ref" / c)
                                               for c in cases])):
        assert any(line.startswith(f"{case}: note: ") for line in proc.stdout.splitlines())
        for frame, path in theirs.items():
            assert_identical(out / case / "frames" / f"{frame:06d}.png", path)


def test_a_missing_file_the_scene_uses_is_still_refused(scenes: Scenes, tmp_path: Path) -> None:
    """The same unused image, now on the cube's material: its missing file is refused, in
    the one line that names the file and the datablock."""
    from tilefarm.blender.runner import BlenderRunner

    script = tmp_path / "use_it.py"
    script.write_text(USE_IMAGE)
    blend = tmp_path / "shot.blend"
    BlenderRunner(timeout=300).run_script(
        script, {"blend": str(scenes["unused_image_missing"]), "out": str(blend)}, label="use")
    assert_one_line_error(run_cli("plan", str(blend)), "the scene uses are missing",
                          "old_plate.png", "image 'old_plate'")


USE_IMAGE = '''
import json, sys
import bpy
request = json.load(open(sys.argv[sys.argv.index("--") + 1]))
result = sys.argv[sys.argv.index("--") + 2]
bpy.ops.wm.open_mainfile(filepath=request["blend"], load_ui=False, use_scripts=False)
material = bpy.context.scene.objects["Cube"].active_material
material.use_nodes = True
node = material.node_tree.nodes.new("ShaderNodeTexImage")
node.image = bpy.data.images["old_plate"]
bpy.ops.wm.save_as_mainfile(filepath=request["out"], relative_remap=False, copy=True)
json.dump({"ok": True, "result": None}, open(result, "w"))
'''
