"""The child side of the runner protocol: read the request, run, write the result JSON.

Also the one safe way to open a .blend: factory settings first, then the file
with scripts disabled, so registered text blocks, driver expressions and
handlers stored in the file never run.
"""

import json
import os
import sys
import traceback

import bpy


class ReportedError(Exception):
    """An error for the parent, with the exception kind it should become."""

    def __init__(self, kind, message, path=None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.path = path


def _argv():
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]


def serve(handler):
    """Answer one request (``-- REQUEST RESULT``) or, with ``-- --session``, one per line
    of stdin (``REQUEST<TAB>RESULT``) until stdin closes: a warm Blender for many datums."""
    argv = _argv()
    if argv == ["--session"]:
        for line in sys.stdin:
            if line.strip():
                request_path, result_path = line.rstrip("\n").split("\t")
                answer(handler, request_path, result_path)
        return
    if len(argv) != 2:
        raise SystemExit("usage: <script> -- REQUEST.json RESULT.json | -- --session")
    answer(handler, argv[0], argv[1])


def answer(handler, request_path, result_path):
    """Run ``handler(request)`` and write its result (or error) where the parent reads it."""
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    try:
        document = {"ok": True, "result": handler(request)}
    except ReportedError as exc:
        document = {"ok": False, "error": {"kind": exc.kind, "message": exc.message,
                                           "path": exc.path}}
    except Exception as exc:  # anything else is a Blender-side failure, with its traceback logged
        traceback.print_exc()
        document = {"ok": False, "error": {"kind": "BlenderError",
                                           "message": f"{exc.__class__.__name__}: {exc}"}}
    tmp = result_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    os.replace(tmp, result_path)
    sys.stdout.flush()


def open_blend(path):
    """Open ``path`` with factory settings and scripts disabled."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.use_scripts_auto_execute = False
    try:
        bpy.ops.wm.open_mainfile(filepath=path, load_ui=False, use_scripts=False)
    except RuntimeError as exc:
        raise ReportedError("BlendFileError",
                            f"Blender cannot open it ({' '.join(str(exc).split())})", path)


def pick_scene(name, path):
    """The scene called ``name``, or the file's active scene when ``name`` is None."""
    if name is None:
        return bpy.context.scene
    scene = bpy.data.scenes.get(name)
    if scene is None:
        names = ", ".join(sorted(s.name for s in bpy.data.scenes))
        raise ReportedError("SceneError", f"no scene named {name!r}; the file has: {names}", path)
    return scene


def freestyle_runs_script(scene):
    """True where rendering would run Python line-style modules (they run even with autoexec off)."""
    if not scene.render.use_freestyle:
        return False
    return any(layer.use and layer.use_freestyle and layer.freestyle_settings.mode == "SCRIPT"
               for layer in scene.view_layers)


def refuse_freestyle_script(scene, path):
    if freestyle_runs_script(scene):
        raise ReportedError("SceneError",
                            f"scene {scene.name!r} renders Freestyle with a Python line style, "
                            "which runs code from the file; use parameter-editor line styles", path)
