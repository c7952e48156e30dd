"""Entry script for tilefarm's Blender-side actions, run by ``pipelines.blender``.

Request: ``{"action": NAME, "blend": PATH, "scene": NAME|null, ...}``. Every
action opens the .blend safely (``boot.open_blend``); consecutive ``render``
requests on the same unchanged file keep it loaded (a warm session).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import boot  # noqa: E402
import compose  # noqa: E402
import demo_scene  # noqa: E402
import inspect_scene  # noqa: E402
import render_tiles  # noqa: E402

_loaded = {"key": None}


def _inspect(scene, request):
    return inspect_scene.facts(scene)


def _render(scene, request):
    return render_tiles.render_task(scene, request)


def _compose(scene, request):
    return compose.compose(scene, request)


def _mixdown(scene, request):
    """The scene's own audio mixdown (its frame range) as 16-bit PCM WAV, or None if silent."""
    import bpy

    editor = scene.sequence_editor
    strips = list(getattr(editor, "strips_all", [])) if editor else []
    if not any(s.type == "SOUND" and not s.mute for s in strips):
        return None
    result = bpy.ops.sound.mixdown(filepath=request["target"], check_existing=False,
                                   container="WAV", codec="PCM", format="S16", mixrate=48000)
    if "FINISHED" not in result or not os.path.exists(request["target"]):
        raise boot.ReportedError("RenderError", "Blender could not mix down the scene's sound",
                                 request["blend"])
    return request["target"]


# action -> (handler, may the file stay loaded for the next request of this action)
ACTIONS = {
    "inspect": (_inspect, False),
    "render": (_render, True),
    "compose": (_compose, True),
    "mixdown": (_mixdown, False),
}


def handle(request):
    if request.get("action") == "demo":
        return demo_scene.build(request["target"], request.get("frames", 24),
                                request.get("width", 320), request.get("height", 180),
                                request.get("samples", 24), request.get("denoise", True))
    entry = ACTIONS.get(request.get("action"))
    if entry is None:
        raise boot.ReportedError("BlenderError", f"unknown action {request.get('action')!r}")
    action, reusable = entry
    blend = request["blend"]
    try:
        stat = os.stat(blend)
    except OSError:
        raise boot.ReportedError("BlendFileError", "no such file", blend)
    key = (request["action"], blend, request.get("scene"), stat.st_mtime_ns, stat.st_size,
           request.get("threads"), request.get("device"), request.get("denoise"),
           request.get("mode"), request.get("file_format"))
    if not reusable or _loaded["key"] != key:
        _loaded["key"] = None
        compose.forget()
        boot.open_blend(blend)
        scene = boot.pick_scene(request.get("scene"), blend)
        if request["action"] == "render":
            render_tiles.prepare(scene, request)
        _loaded["key"] = key if reusable else None
    scene = boot.pick_scene(request.get("scene"), blend)
    return action(scene, request)


if __name__ == "__main__":
    boot.serve(handle)
