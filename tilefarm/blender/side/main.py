"""Entry script for tilefarm's Blender-side actions, run by ``tilefarm.blender.runner``.

Each request is checked against its type (``protocol.decode``) on arrival. Every
action but ``demo`` opens the .blend safely (``boot.open_blend``); consecutive
requests of a reusable kind on the same unchanged file, with the same session
fields, keep it loaded (a warm session; ``protocol.session_key``).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import boot  # noqa: E402
import compat  # noqa: E402
import compose  # noqa: E402
import demo_scene  # noqa: E402
import inspect_scene  # noqa: E402
import passthrough  # noqa: E402
import protocol  # noqa: E402
import render_tiles  # noqa: E402
import variants  # noqa: E402

_loaded: dict = {"key": None}


def _inspect(scene, request: protocol.InspectRequest):
    return inspect_scene.facts(scene)


def _render(scene, request: protocol.RenderRequest):
    return render_tiles.render_task(scene, request)


def _compose(scene, request: protocol.ComposeRequest):
    return compose.compose(scene, request)


def _mixdown(scene, request: protocol.MixdownRequest):
    """The scene's own audio mixdown (its frame range) as 16-bit PCM WAV, or None if silent."""
    import bpy

    editor = scene.sequence_editor
    strips = list(compat.strips(editor, all_levels=True)) if editor else []
    if not any(s.type == "SOUND" and not s.mute for s in strips):
        return None
    result = bpy.ops.sound.mixdown(filepath=request.target, check_existing=False,
                                   container="WAV", codec="PCM", format="S16", mixrate=48000)
    if "FINISHED" not in result or not os.path.exists(request.target):
        raise boot.ReportedError("RenderError", "Blender could not mix down the scene's sound",
                                 request.blend)
    return request.target


HANDLERS: dict = {
    protocol.InspectRequest: _inspect,
    protocol.RenderRequest: _render,
    protocol.ComposeRequest: _compose,
    protocol.MixdownRequest: _mixdown,
}


def handle(document):
    try:
        request = protocol.decode(document)
    except protocol.RequestError as exc:
        raise boot.ReportedError("BlenderError", f"tilefarm sent a malformed request: {exc}")
    if isinstance(request, protocol.DemoRequest):
        return demo_scene.build(request)
    if isinstance(request, protocol.SubstituteRequest):
        _loaded["key"] = None  # it opens the template itself
        return variants.substitute(request)
    try:
        stat = os.stat(request.blend)
    except OSError:
        raise boot.ReportedError("BlendFileError", "no such file", request.blend)
    key = protocol.session_key(request, (stat.st_mtime_ns, stat.st_size))
    if not request.reusable or _loaded["key"] != key:
        _loaded["key"] = None
        compose.forget()
        boot.open_blend(request.blend)
        scene = boot.pick_scene(request.scene, request.blend)
        if isinstance(request, protocol.RenderRequest):
            render_tiles.prepare(scene, request)
        _loaded["key"] = key if request.reusable else None
    scene = boot.pick_scene(request.scene, request.blend)
    return HANDLERS[type(request)](scene, request)


if __name__ == "__main__":
    try:
        boot.serve(handle)
    finally:
        passthrough.unregister()
