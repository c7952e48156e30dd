"""A template's variant: text bodies, images and scene custom properties substituted, then a
copy saved. The template is opened with scripts disabled (``boot.open_blend``) and only
this code changes it; drivers of the template (plain single-property ones run without
Python) and Attribute nodes then read the new values at render time."""

import bpy

from boot import ReportedError, open_blend, pick_scene
from protocol import SubstituteRequest


def _names(items):
    return ", ".join(repr(name) for name in sorted(items)) or "none"


def substitute(request: SubstituteRequest):
    open_blend(request.blend)
    scene = pick_scene(request.scene, request.blend)

    def refuse(message):
        raise ReportedError("SettingsError", f"variant {request.variant}: {message}",
                            request.blend)

    texts = {o.name: o for o in bpy.data.objects if o.type == "FONT"}
    for name, body in request.text.items():
        if name not in texts:
            refuse(f"no text object {name!r}; the template has {_names(texts)}")
        texts[name].data.body = body
    for name, path in request.images.items():
        image = bpy.data.images.get(name)
        if image is None or image.source not in ("FILE", "SEQUENCE", "MOVIE"):
            files = [i.name for i in bpy.data.images if i.source in ("FILE", "SEQUENCE", "MOVIE")]
            refuse(f"no image {name!r}; the template has {_names(files)}")
        image.filepath = path
    # The scene's own custom properties; add-ons' property groups (``cycles``) are not values.
    props = {k: scene[k] for k in scene.keys() if type(scene[k]) in (bool, int, float, str)}
    for key, value in request.values.items():
        if key not in props:
            refuse(f"no scene property {key!r}; the template has {_names(props)}")
        old = props[key]
        kind = type(old)
        if kind is float and type(value) is int:
            value = float(value)
        if type(value) is not kind:
            refuse(f"values.{key} is {type(value).__name__} {value!r}; the template's "
                   f"property is {kind.__name__} {old!r}")
        scene[key] = value
    bpy.ops.wm.save_as_mainfile(filepath=request.target, copy=True, compress=False,
                                relative_remap=False)
    return request.target
