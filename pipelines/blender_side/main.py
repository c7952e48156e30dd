"""Entry script for tilefarm's Blender-side actions, run by ``pipelines.blender``.

Request: ``{"action": NAME, "blend": PATH, "scene": NAME|null, ...}``; every
action opens the .blend safely (``boot.open_blend``) before it runs.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import boot  # noqa: E402
import inspect_scene  # noqa: E402

ACTIONS = {
    "inspect": lambda scene, request: inspect_scene.facts(scene),
}


def handle(request):
    action = ACTIONS.get(request.get("action"))
    if action is None:
        raise boot.ReportedError("BlenderError", f"unknown action {request.get('action')!r}")
    blend = request["blend"]
    boot.open_blend(blend)
    scene = boot.pick_scene(request.get("scene"), blend)
    return action(scene, request)


if __name__ == "__main__":
    boot.serve(handle)
