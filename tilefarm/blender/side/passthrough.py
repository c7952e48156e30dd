"""Blender's own output stage on a merged frame, through a pass-through render engine.

The scene's engine is swapped for ``TILEFARM_MERGE``, which renders nothing: for each
enabled view layer it loads that layer's passes from the merged multilayer EXR into the
render result (``RenderResult.load_from_file`` matches ``<layer>.<pass>.<channel>``) and
adds the metadata Cycles wrote (Cryptomatte manifests, per-layer statistics) to the whole
result. It registers exactly Cycles' own passes (``cycles.engine.list_render_passes``),
so Render Layers nodes have the same sockets and Blender then composites, writes the
multilayer EXR with every view layer and pass, and fires File Output nodes, exactly as
in its own render: the file equals Blender's channel for channel, with the same header.
"""

import bpy

from boot import ReportedError
from exr_header import read_header

ENGINE = "TILEFARM_MERGE"
_state: dict = {"merged": None, "stamps": {}, "registered": False}


class TilefarmMerge(bpy.types.RenderEngine):
    bl_idname = ENGINE
    bl_label = "tilefarm merge"
    bl_use_postprocess = True  # let Blender composite and write, as after Cycles

    def render(self, depsgraph):  # called once per enabled view layer
        render, layer = depsgraph.scene.render, depsgraph.view_layer
        width = render.resolution_x * render.resolution_percentage // 100
        height = render.resolution_y * render.resolution_percentage // 100
        result = self.begin_result(0, 0, width, height, layer=layer.name)
        result.load_from_file(_state["merged"])
        self.end_result(result)
        whole = self.get_result()  # metadata on a layer's result alone is dropped
        for key, value in _layer_stamps(_state["stamps"], layer.name):
            whole.stamp_data_add_field(key, value)

    def update_render_passes(self, scene=None, renderlayer=None):
        import cycles.engine

        for name, channels, kind in cycles.engine.list_render_passes(scene, renderlayer):
            self.register_pass(scene, renderlayer, name, len(channels), channels, kind)


def _layer_stamps(stamps, layer):
    """The attributes Cycles adds for ``layer``: ``cycles.<layer>.*`` and the Cryptomatte
    entries (``cryptomatte/<hash>/...``) whose ``name`` is one of the layer's passes."""
    for key, value in stamps.items():
        if key.startswith(f"cycles.{layer}."):
            yield key, value
        elif key.startswith("cryptomatte/"):
            name = stamps.get(key.rsplit("/", 1)[0] + "/name", "")
            if name.startswith(f"{layer}."):
                yield key, value


def register():
    if not _state["registered"]:
        bpy.utils.register_class(TilefarmMerge)
        _state["registered"] = True


def unregister():
    """Before the process exits: a Python engine still registered hangs Blender's exit."""
    if _state["registered"]:
        for scene in bpy.data.scenes:
            if scene.render.engine == ENGINE:
                scene.render.engine = "CYCLES"
        bpy.utils.unregister_class(TilefarmMerge)
        _state["registered"] = False


def load(scene, merged, blend):
    """Make ``merged`` the frame the next render of ``scene`` produces; refuse a merged
    frame that lacks a pass the scene renders (Blender would load it as zeros)."""
    import cycles.engine

    channels, stamps = read_header(merged)
    have = {name.rsplit(".", 1)[0] for name in channels}
    for layer in scene.view_layers:
        if not layer.use:
            continue
        for name, _, _ in cycles.engine.list_render_passes(scene, layer):
            if f"{layer.name}.{name}" not in have:
                raise ReportedError("MergeError", f"the merged frame has no pass {name!r} of "
                                    f"view layer {layer.name!r}; re-render its tiles", blend)
    _state["merged"], _state["stamps"] = merged, stamps
    register()
    scene.render.engine = ENGINE
