"""The output stage, once on the whole frame (DESIGN.md point 4).

The scene's compositor tree with each Render Layers node rebound to an Image
node reading the merged multilayer EXR (its ``layer`` set to the same view
layer; the ``Image`` socket maps to ``Combined``), a Denoise node inserted where
the scene denoised in render, every view layer disabled so nothing re-renders,
then Blender's own view transform, dither and file format.
"""

import os

import bpy
import compat
import file_outputs
import passthrough
from boot import ReportedError, refuse_freestyle_script
from protocol import ComposeRequest, DenoiseSettings

# Render Layers outputs whose Image-node twin has another name.
_SOCKET_NAMES = {"Image": "Combined", "Noisy Image": "Combined"}


# The merged-frame image each scene's rebound tree reads. A warm session composes
# frame after frame of one file: the tree is rebound once, and each later frame
# only points the image at its own merged EXR.
_BOUND: dict = {}


def compose(scene, request: ComposeRequest) -> dict:
    if request.stage == "render_result":
        return _compose_render_result(scene, request)
    r = scene.render
    image = _BOUND.get(scene.name)
    if image is None:
        refuse_freestyle_script(scene, request.blend)
        image = bpy.data.images.load(request.merged, check_existing=False)
        tree = _tree(scene)
        for node in [n for n in tree.nodes if n.type == "R_LAYERS"]:
            _rebind(tree, node, image, scene, request.denoise)
        _BOUND[scene.name] = image
    else:
        image.filepath = request.merged
        image.reload()
    for layer in scene.view_layers:
        layer.use = False
    r.use_compositing = True
    r.use_file_extension = False
    return _write_frame(scene, request)


def _compose_render_result(scene, request: ComposeRequest) -> dict:
    """Blender's own output stage on the merged passes (``passthrough``): multilayer EXR
    with every pass and its metadata, compositing with real Render Layers nodes, and File
    Output nodes writing under ``request.file_outputs``."""
    refuse_freestyle_script(scene, request.blend)
    passthrough.load(scene, request.merged, request.blend)
    if request.file_outputs:
        file_outputs.redirect(compat.compositor_tree(scene), request.file_outputs)
    return _write_frame(scene, request)


def _write_frame(scene, request: ComposeRequest) -> dict:
    """Render the output stage of ``request.frame`` as set up, into ``request.target``."""
    r = scene.render
    r.use_sequencer = False
    r.use_border = False
    compat.set_file_format(r.image_settings, request.file_format)
    scene.frame_set(request.frame)
    render_frame(scene, request.frame, request.target)
    if not os.path.exists(request.target):
        raise ReportedError("RenderError", f"Blender wrote no frame {request.frame}",
                            request.blend)
    if request.preview:
        save_preview(scene, request.preview)
    return {"frame": request.frame, "file": request.target, "preview": request.preview}


def render_frame(scene, frame, target):
    """Render ``frame`` (already set) through the output stage into exactly ``target``.

    A still render, except where File Output nodes would then name their files otherwise
    than Blender's own animation render does: since 5.0 a still render writes them without
    the frame number (``beauty_.png`` for ``beauty_0001.png``), so every frame would write
    the same file. There the frame renders as a one-frame animation, as ``blender -a`` would.
    """
    r = scene.render
    if compat.FILE_OUTPUT_STILLS_NUMBERED or not r.use_compositing or not \
            file_outputs.file_output_nodes(compat.compositor_tree(scene)):
        r.filepath = still_path(r, target)
        bpy.ops.render.render(write_still=True, scene=scene.name)
        return
    saved = (scene.frame_start, scene.frame_end, r.filepath, r.use_overwrite, r.use_placeholder)
    scene.frame_start = scene.frame_end = frame
    r.use_overwrite, r.use_placeholder = True, False
    r.filepath = os.path.join(os.path.dirname(target), ".tilefarm-frame-######")
    try:
        bpy.ops.render.render(animation=True, scene=scene.name)
        written = r.frame_path(frame=frame)
    finally:
        (scene.frame_start, scene.frame_end, r.filepath, r.use_overwrite,
         r.use_placeholder) = saved
    if os.path.exists(written):
        os.replace(written, target)


def still_path(render, target):
    """The ``render.filepath`` that makes a still render write exactly ``target``: with
    ``use_file_extension`` (which File Output nodes obey too, so it stays as the scene
    has it) Blender adds the format's extension itself."""
    ext = render.file_extension
    return target[:-len(ext)] if render.use_file_extension and target.endswith(ext) else target


def _tree(scene):
    """The tree Blender's own render would run; a plain pass-through where it runs none."""
    tree = compat.compositor_tree(scene)
    if scene.render.use_compositing and tree is not None and compat.has_output(tree):
        return tree
    tree, layers, _ = compat.default_compositor(scene)
    layers.layer = bpy.context.view_layer.name if scene == bpy.context.scene else scene.view_layers[0].name
    return tree


def _rebind(tree, node, image, scene, denoise: DenoiseSettings) -> None:
    source = tree.nodes.new("CompositorNodeImage")
    source.image = image
    source.layer = node.layer
    layer = scene.view_layers.get(node.layer)
    denoised = None
    if denoise.enabled and layer is not None and layer.cycles.use_denoising:
        denoised = _denoise_node(tree, source, denoise)
    for link in list(tree.links):
        if link.from_node != node:
            continue
        name = link.from_socket.name
        if name == "Image" and denoised is not None:
            output = denoised
        else:
            output = source.outputs.get(_SOCKET_NAMES.get(name, name))
        if output is None:
            raise ReportedError("RenderError", f"the merged frame has no pass {name!r} for "
                                f"view layer {node.layer!r} (compositor node {node.name!r})")
        tree.links.new(output, link.to_socket)
    tree.nodes.remove(node)


def _denoise_node(tree, source, denoise: DenoiseSettings):
    """The denoised image socket: Combined through a Denoise node set as the render's was.
    Where Cycles denoised the unscaled sum (``sum_scale``), the node sees Combined / scale,
    which is that sum exactly (the scale is a power of two), and its result is scaled back
    as Cycles' film scales it."""
    node = compat.denoise_node(tree, denoise.prefilter, denoise.quality)
    color = source.outputs["Combined"]
    if denoise.sum_scale:
        color = _scaled(tree, color, 1.0 / denoise.sum_scale)
    tree.links.new(color, node.inputs["Image"])
    passes = denoise.input_passes
    if passes in ("RGB_ALBEDO", "RGB_ALBEDO_NORMAL"):
        tree.links.new(source.outputs["Denoising Albedo"], node.inputs["Albedo"])
    if passes == "RGB_ALBEDO_NORMAL":
        tree.links.new(source.outputs["Denoising Normal"], node.inputs["Normal"])
    if denoise.sum_scale:
        return _scaled(tree, node.outputs["Image"], denoise.sum_scale)
    return node.outputs["Image"]


def _scaled(tree, socket, factor):
    """``socket``'s colour channels times ``factor``, each a float32 multiply as Cycles'
    own; alpha passes as it is (Cycles keeps the noisy alpha)."""
    separate = tree.nodes.new("CompositorNodeSeparateColor")
    combine = tree.nodes.new("CompositorNodeCombineColor")
    tree.links.new(socket, separate.inputs[0])
    for channel in range(3):
        _, into, out = compat.math_node(tree, "MULTIPLY", factor)
        tree.links.new(separate.outputs[channel], into)
        tree.links.new(out, combine.inputs[channel])
    tree.links.new(separate.outputs[3], combine.inputs[3])
    return combine.outputs[0]


def forget():
    """The file is about to be reloaded: its rebound trees are gone with it."""
    _BOUND.clear()


def save_preview(scene, path):
    """An 8-bit display-referred PNG of the result, for the encoder."""
    settings = scene.render.image_settings
    saved = compat.format_state(settings)
    compat.set_file_format(settings, "PNG")
    settings.color_mode = "RGB"
    settings.color_depth = "8"
    try:
        bpy.data.images["Render Result"].save_render(path, scene=scene)
    finally:
        compat.restore_format(settings, saved)
