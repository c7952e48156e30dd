"""Blender side of ``bench/corpus.py`` (the one bench module that imports bpy): a small copy of a real-world .blend, and what it holds.

Runs inside Blender through ``tilefarm.blender.runner.BlenderRunner`` (it imports ``bpy``):
request ``{"blend": PATH, "copy": PATH, "frames": N, "scale": PCT or null, "longest": PX,
"samples": N}``. Opens ``blend`` the safe way (factory settings, scripts disabled), keeps
the first ``frames`` frames of the scene's range, sets ``resolution_percentage`` so the
longer side is about ``longest`` px (``scale`` overrides; a frame already that small keeps
its percentage), caps Cycles' and EEVEE's samples at ``samples``, writes a movie output
(FFMPEG, AVI) as PNG frames, and saves ``copy`` (beside ``blend``, so relative paths still
resolve). Nothing else changes. The result describes the scene before and after.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tilefarm", "blender", "side"))

import bpy  # noqa: E402

import boot  # noqa: E402
import compat  # noqa: E402

ENGINES = {"CYCLES": "Cycles", "BLENDER_EEVEE_NEXT": "EEVEE", "BLENDER_EEVEE": "EEVEE",
           "BLENDER_WORKBENCH": "Workbench"}
MOVIES = {"FFMPEG", "AVI_JPEG", "AVI_RAW"}
# Nodes that only pass the render through: a tree of these alone changes no pixel.
PASSTHROUGH = {"R_LAYERS", "COMPOSITE", "VIEWER", "GROUP_OUTPUT", "FRAME", "REROUTE"}


def _size(render):
    return (render.resolution_x * render.resolution_percentage // 100,
            render.resolution_y * render.resolution_percentage // 100)


def _compositor(scene):
    """'y' where the render runs a compositor that changes pixels, 'trivial' where it runs
    only Render Layers -> Composite, 'n' where it runs none."""
    if not scene.render.use_compositing:
        return "n"
    tree = compat.compositor_tree(scene)
    if tree is None or not len(tree.nodes):
        return "n"
    kinds = {node.type for node in tree.nodes if not node.mute}
    return "trivial" if kinds <= PASSTHROUGH else "y"


def _samples(scene):
    engine = scene.render.engine
    if engine == "CYCLES":
        return scene.cycles, "samples"
    if engine in ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE"):
        return scene.eevee, "taa_render_samples"
    return None, None


def prepare(request):
    boot.open_blend(request["blend"])
    scene = bpy.context.scene
    render = scene.render
    holder, field = _samples(scene)
    before = {
        "saved_by": "%d.%d.%d" % tuple(bpy.data.version),
        "engine": ENGINES.get(render.engine, render.engine),
        "size": _size(render),
        "percentage": render.resolution_percentage,
        "samples": getattr(holder, field) if holder is not None else None,
        "denoise": bool(render.engine == "CYCLES" and scene.cycles.use_denoising),
        "compositor": _compositor(scene),
        "format": render.image_settings.file_format,
        "camera": scene.camera is not None,
        "frames": [scene.frame_start, scene.frame_end, scene.frame_step],
    }
    # The first N frames of the scene's own range and step.
    last = scene.frame_start + (request["frames"] - 1) * scene.frame_step
    scene.frame_end = min(scene.frame_end, last)
    if request.get("scale"):
        render.resolution_percentage = int(request["scale"])
    else:
        longest = max(render.resolution_x, render.resolution_y)
        if longest * render.resolution_percentage // 100 > request["longest"]:
            render.resolution_percentage = max(1, round(request["longest"] * 100 / longest))
    if holder is not None:
        setattr(holder, field, min(getattr(holder, field), request["samples"]))
    if render.image_settings.file_format in MOVIES:
        compat.set_file_format(render.image_settings, "PNG")
    after = {"size": _size(render), "samples": getattr(holder, field) if holder else None,
             "format": render.image_settings.file_format,
             "frames": [scene.frame_start, scene.frame_end, scene.frame_step]}
    bpy.ops.wm.save_as_mainfile(filepath=request["copy"], copy=True, compress=False,
                                relative_remap=True)
    return {"before": before, "after": after}


if __name__ == "__main__":
    boot.serve(prepare)
