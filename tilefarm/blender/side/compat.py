"""Where Blender's Python API differs between the runtimes tilefarm supports (4.5, 5.0, 5.2).

Every helper feature-tests the API (an attribute, type or socket present) rather than
comparing version numbers, so it also holds for 5.1 and for any 4.x release that still
has the old form. The breaks and how each was measured: docs/blender-versions.md.
"""

import bpy

# --- compositor tree -----------------------------------------------------------------

# 4.5: the tree is scene.node_tree, run only while scene.use_nodes is on.
# 5.x: the tree is a node-group data-block, scene.compositing_node_group (None: no
# compositing); scene.use_nodes is deprecated, always reads True and setting it does nothing.
NODE_GROUP_COMPOSITOR = "compositing_node_group" in bpy.types.Scene.bl_rna.properties


def compositor_tree(scene, create=False):
    """The compositing tree the scene's render runs, or None.

    With ``create`` a scene without one gets one: 4.5's default tree (Render Layers ->
    Composite) or, in 5.x, an empty node group assigned to the scene."""
    if NODE_GROUP_COMPOSITOR:
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = bpy.data.node_groups.new(f"{scene.name} Compositing", "CompositorNodeTree")
            scene.compositing_node_group = tree
        return tree
    if create and not scene.use_nodes:
        scene.use_nodes = True
    return scene.node_tree if scene.use_nodes else None


def output_node(tree):
    """The node whose input the render writes: Composite (4.5) or, in 5.x, the active
    Group Output; None if the tree has none."""
    for node in tree.nodes:
        if node.type == "COMPOSITE" and not node.mute:
            return node
    for node in tree.nodes:
        if node.bl_idname == "NodeGroupOutput" and node.is_active_output:
            return node
    return None


def _has_output_socket(tree):
    return any(item.item_type == "SOCKET" and item.in_out == "OUTPUT"
               for item in tree.interface.items_tree)


def has_output(tree):
    """True where the tree yields the rendered frame (4.5: a Composite node; 5.x: an active
    Group Output and an output socket in the tree's interface, else 5.0 passes the render
    through untouched and 5.2 writes black)."""
    node = output_node(tree)
    if node is None:
        return False
    if node.type == "COMPOSITE":
        return True
    return _has_output_socket(tree) and node.inputs[0].is_linked


def output_socket(tree):
    """The input socket the final image must be linked to, creating the output node (and,
    in 5.x, the tree's ``Image`` output interface socket) where missing."""
    if hasattr(bpy.types, "CompositorNodeComposite"):
        node = output_node(tree) or tree.nodes.new("CompositorNodeComposite")
        return node.inputs["Image"]
    if not _has_output_socket(tree):
        tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    node = output_node(tree) or tree.nodes.new("NodeGroupOutput")
    return node.inputs[0]


def default_compositor(scene):
    """A fresh pass-through tree, ``(tree, render_layers_node, output_socket)``; the scene's
    existing tree is replaced (4.5) or a new group assigned (5.x)."""
    if NODE_GROUP_COMPOSITOR:
        tree = bpy.data.node_groups.new(f"{scene.name} Compositing", "CompositorNodeTree")
        scene.compositing_node_group = tree
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        for node in list(tree.nodes):
            tree.nodes.remove(node)
    layers = tree.nodes.new("CompositorNodeRLayers")
    socket = output_socket(tree)
    tree.links.new(layers.outputs["Image"], socket)
    return tree, layers, socket


# --- nodes whose properties became input sockets in 5.0 ----------------------------------

# 4.5 enum identifier -> 5.x menu-socket item (menu sockets take the UI name).
_MENU_NAMES = {"GAUSS": "Gaussian", "FAST_GAUSS": "Fast Gaussian", "QUAD": "Quadratic"}


def set_option(node, prop, socket, value):
    """Set a node option that is the property ``prop`` in 4.5 and the (menu or value) input
    socket ``socket`` in 5.x; ``value`` in 4.5 form (an enum identifier such as 'FOG_GLOW')."""
    if hasattr(node, prop):
        setattr(node, prop, value)
        return
    sock = node.inputs[socket]
    if sock.bl_idname == "NodeSocketMenu" and isinstance(value, str):
        value = _MENU_NAMES.get(value, value.replace("_", " ").title())
    sock.default_value = value


def set_blur_size(node, x, y):
    """Blur size in pixels: the ``Size`` socket (4.5 has it too; size_x/size_y are gone in 5.0)."""
    node.inputs["Size"].default_value = (x, y)


def mix_color_node(tree, factor=0.5, blend_type="MIX"):
    """A colour Mix node, ``(node, factor_in, a_in, b_in, out)``: CompositorNodeMixRGB in 4.5,
    ShaderNodeMix (data_type RGBA) in 5.x, where MixRGB is gone."""
    if hasattr(bpy.types, "CompositorNodeMixRGB"):
        node = tree.nodes.new("CompositorNodeMixRGB")
        node.blend_type = blend_type
        node.inputs[0].default_value = factor
        return node, node.inputs[0], node.inputs[1], node.inputs[2], node.outputs[0]
    node = tree.nodes.new("ShaderNodeMix")
    node.data_type = "RGBA"
    node.blend_type = blend_type
    ins = {s.identifier: s for s in node.inputs}
    ins["Factor_Float"].default_value = factor
    out = {s.identifier: s for s in node.outputs}["Result_Color"]
    return node, ins["Factor_Float"], ins["A_Color"], ins["B_Color"], out


def math_node(tree, operation, value):
    """A Math node computing ``input * value`` (or another ``operation``) in float32:
    ``(node, input, out)``; CompositorNodeMath in 4.5, ShaderNodeMath in 5.x."""
    kind = "CompositorNodeMath" if hasattr(bpy.types, "CompositorNodeMath") else "ShaderNodeMath"
    node = tree.nodes.new(kind)
    node.operation = operation
    node.inputs[1].default_value = value
    return node, node.inputs[0], node.outputs[0]


def denoise_node(tree, prefilter, quality):
    """A Denoise node with 4.5-style settings ('ACCURATE', 'HIGH', ...): properties in 4.5,
    the Prefilter / Quality menu sockets in 5.x."""
    node = tree.nodes.new("CompositorNodeDenoise")
    set_option(node, "prefilter", "Prefilter", prefilter)
    if quality and (hasattr(node, "quality") or "Quality" in node.inputs):
        set_option(node, "quality", "Quality", quality)
    return node


# --- render settings --------------------------------------------------------------------

_MEDIA = {"OPEN_EXR_MULTILAYER": "MULTI_LAYER_IMAGE", "FFMPEG": "VIDEO"}


def set_file_format(settings, file_format):
    """Set ``ImageFormatSettings.file_format``. 5.x first needs ``media_type`` (IMAGE,
    MULTI_LAYER_IMAGE or VIDEO): the file_format enum only offers that media type's formats."""
    if hasattr(settings, "media_type"):
        media = _MEDIA.get(file_format, "IMAGE")
        if settings.media_type != media:
            settings.media_type = media
    if settings.file_format != file_format:
        settings.file_format = file_format


def format_state(settings):
    """What ``restore_format`` puts back (save_preview switches to PNG and back)."""
    return (getattr(settings, "media_type", None), settings.file_format, settings.color_mode,
            settings.color_depth)


def restore_format(settings, state):
    media, file_format, color_mode, color_depth = state
    set_file_format(settings, file_format)
    settings.color_mode, settings.color_depth = color_mode, color_depth


def eevee_engine():
    """EEVEE's engine id: BLENDER_EEVEE_NEXT in 4.2-4.5, BLENDER_EEVEE since 5.0."""
    engines = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items.keys()
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in engines else "BLENDER_EEVEE"


def strips(editor, all_levels=False):
    """The sequencer's strips (``strips``/``strips_all``; ``sequences*`` were removed in 5.0).
    Note: an empty collection is falsy, so never write ``editor.strips or editor.sequences``."""
    name = "strips_all" if all_levels else "strips"
    if hasattr(editor, name):
        return getattr(editor, name)
    return getattr(editor, "sequences_all" if all_levels else "sequences")


# --- scene building -------------------------------------------------------------------------

def set_world_color(world, color):
    """The world's background colour. 4.5's new worlds have no nodes and render ``world.color``;
    5.x's always have Background -> World Output nodes (``use_nodes`` is deprecated and always
    True), so ``world.color`` alone is silently ignored by the render (a 0.05 grey instead)."""
    world.color = color[:3]
    tree = world.node_tree if world.use_nodes else None
    background = tree and next((n for n in tree.nodes if n.type == "BACKGROUND"), None)
    if background is not None:
        background.inputs["Color"].default_value = (*color[:3], 1.0)


def ensure_material_nodes(material):
    """``Material.use_nodes = True`` only where it is still needed (4.5); in 5.x new materials
    always have nodes and the property is deprecated (a DeprecationWarning, removal in 6.0)."""
    if material.node_tree is None:
        material.use_nodes = True


def single_part_exr(settings):
    """Multilayer EXR as 4.x wrote it: one part holding every layer, pass and channel.
    5.x writes one part per pass by default (``use_exr_interleave`` False); readers that
    take only the first part (tilefarm's merger: ``OpenEXR.File(...).parts[0]``) then see
    only ``<layer>.Combined``."""
    if hasattr(settings, "use_exr_interleave"):
        settings.use_exr_interleave = True


# 4.5's File Output nodes number the files of a still render as of an animation render;
# 5.x's (``directory``/``file_name``) leave the frame number out of a still's file names.
FILE_OUTPUT_STILLS_NUMBERED = "base_path" in bpy.types.CompositorNodeOutputFile.bl_rna.properties


def set_file_output_directory(node, directory):
    """Point a File Output node at ``directory`` (ending in a separator), keeping the file
    names Blender gives its files: in 4.5 a multilayer node's prefix is the last part of
    ``base_path``; since 5.0 the prefix is ``file_name``, which stays as it is."""
    import os

    if hasattr(node, "directory"):
        node.directory = directory
        return
    multilayer = node.format.file_format == "OPEN_EXR_MULTILAYER"
    prefix = os.path.basename(bpy.path.abspath(node.base_path)) if multilayer else ""
    node.base_path = directory + prefix
