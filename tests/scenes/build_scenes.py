"""Builds the tiny real .blend fixtures, one per case the project must handle.

Runs inside Blender through ``tilefarm.blender.runner.BlenderRunner`` (it imports
``bpy``): request ``{"out": DIR, "cases": [NAME, ...], "marker": PATH}``,
result ``{NAME: PATH}``. Renders stay tiny so the suite is fast on 2 cores.
"""

import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tilefarm", "blender", "side"))
sys.path.insert(0, HERE)  # the sibling modules below (python -I leaves the script's own dir out)

import bpy  # noqa: E402

import boot  # noqa: E402
import compat  # noqa: E402  (the fixtures build under every supported runtime)
import real_world_scenes  # noqa: E402
from scene_base import base  # noqa: E402
from scene_kit import camera as _camera, cube as _cube  # noqa: E402


def plain():
    base()


def odd_size():
    base(width=97, height=61, end=2)


def percentage_jpeg():
    scene = base(width=160, height=100, end=2)
    scene.render.resolution_percentage = 50
    compat.set_file_format(scene.render.image_settings, "JPEG")
    scene.render.image_settings.quality = 90


def frame_step():
    scene = base(end=7)
    scene.frame_step = 3


def _compositor(scene):
    """The scene's compositor: ``(tree, render_layers_node, output_socket)``."""
    return compat.default_compositor(scene)


def glare_blur():
    scene = base(width=80, height=60, end=2)
    glow = _cube("Glow", size=0.3, color=(1.0, 0.9, 0.6, 1), emission=40.0, location=(-1, 1, 2))
    scene.collection.objects.link(glow)
    tree, layers, composite = _compositor(scene)
    glare = tree.nodes.new("CompositorNodeGlare")
    compat.set_option(glare, "glare_type", "Type", "FOG_GLOW")
    blur = tree.nodes.new("CompositorNodeBlur")
    if hasattr(blur, "size_x"):
        blur.size_x, blur.size_y = 6, 4
    else:
        compat.set_blur_size(blur, 6, 4)
    tree.links.new(layers.outputs["Image"], glare.inputs["Image"])
    tree.links.new(glare.outputs["Image"], blur.inputs["Image"])
    tree.links.new(blur.outputs["Image"], composite)


def denoise():
    scene = base(width=72, height=54, end=2, samples=4)
    scene.cycles.use_denoising = True
    scene.cycles.denoiser = "OPENIMAGEDENOISE"


def denoise_no_adaptive():
    """The smallest reproduction of the public temple scene's inexact tiles (issue 26):
    OIDN denoising without adaptive sampling. Cycles then denoises the unscaled sum of the
    samples (denoiser_oidn.cpp): a Denoise node fed the merged Combined as it is misses
    3,849 of 3,888 red values, by up to 2e-6 (32-bit EXR); fed Combined / (1/8), the sum,
    it matches."""
    scene = base(width=72, height=54, end=1, samples=8)
    scene.cycles.use_denoising = True
    scene.cycles.denoiser = "OPENIMAGEDENOISE"
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.pixel_filter_type = "GAUSSIAN"
    settings = scene.render.image_settings
    compat.set_file_format(settings, "OPEN_EXR")
    settings.color_depth = "32"


def denoise_exposure():
    """Denoising with a film exposure: Cycles denoises before applying it (forced to 2x2,
    3,845 of 3,888 red values differ, by up to 3.3e-6)."""
    denoise_no_adaptive()
    scene = bpy.context.scene
    scene.cycles.use_adaptive_sampling = True
    scene.cycles.pixel_filter_type = "BLACKMAN_HARRIS"
    scene.cycles.film_exposure = 1.7


def two_layers():
    scene = base(width=64, height=48, end=2)
    fg = bpy.data.collections.new("Foreground")
    scene.collection.children.link(fg)
    ball = _cube("Box2", size=0.5, color=(0.1, 0.4, 0.9, 1), location=(-1.5, -1, 0.5))
    fg.objects.link(ball)
    main = scene.view_layers[0]
    main.name = "Main"
    second = scene.view_layers.new("Second")
    main.layer_collection.children["Foreground"].exclude = True
    second.use_pass_z = True
    tree, layers, composite = _compositor(scene)
    layers.layer = "Main"
    other = tree.nodes.new("CompositorNodeRLayers")
    other.layer = "Second"
    _, _, a, b, mixed = compat.mix_color_node(tree, factor=0.5)
    tree.links.new(layers.outputs["Image"], a)
    tree.links.new(other.outputs["Image"], b)
    tree.links.new(mixed, composite)


def motion_blur():
    scene = base(end=5)
    scene.frame_step = 2
    scene.render.use_motion_blur = True
    cube = scene.objects["Cube"]
    cube.location = (-2, 0, 1)
    cube.keyframe_insert("location", frame=3)


def camera_markers():
    scene = base(end=4)
    side = _camera(scene, "SideCamera", location=(0, -9, 2), rotation=(80, 0, 0))
    front = scene.camera
    scene.timeline_markers.new("F_01", frame=1).camera = front
    scene.timeline_markers.new("F_03", frame=3).camera = side


def transparent_exr():
    scene = base(width=64, height=48, end=2)
    scene.render.film_transparent = True
    settings = scene.render.image_settings
    settings.file_format = "OPEN_EXR"
    settings.color_mode = "RGBA"
    settings.color_depth = "16"
    settings.exr_codec = "ZIP"


def registered_script(marker):
    base(end=2)
    text = bpy.data.texts.new("register_me.py")
    text.write(
        "import pathlib\n"
        f"pathlib.Path({marker!r}).write_text('the registered script ran')\n"
    )
    text.use_module = True  # Blender runs it on load when scripts are allowed


def sound_video(out):
    """A job directory: 97x61, 12 frames at 25 fps, with a sound strip reading a WAV beside it."""
    import struct
    import wave

    scene = base(width=97, height=61, end=12, samples=4)
    scene.render.fps, scene.render.fps_base = 25, 1.0
    job = os.path.join(out, "sound_video")
    os.makedirs(job, exist_ok=True)
    tone = os.path.join(job, "tone.wav")
    with wave.open(tone, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(48000)
        handle.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 48000)))
                                    for i in range(48000)))
    editor = scene.sequence_editor_create()
    strip = compat.strips(editor).new_sound("Tone", tone, 1, 1)
    strip.sound.filepath = "//tone.wav"
    return os.path.join(job, "shot.blend")


def ntsc_rate():
    scene = base(width=32, height=18, end=3, samples=2)
    scene.render.fps, scene.render.fps_base = 24, 1.001


def adaptive():
    """Adaptive sampling that really filters (the other scenes stop before its first pass):
    64 samples from a minimum of 4 give passes after samples 16, 32, 48 and 64, and a loose
    noise threshold lets some pixels converge while their neighbours do not. The 64 come
    from the view layer's override of the scene's 8, which the planner must see."""
    scene = base(width=64, height=48, end=2, samples=8)
    scene.cycles.use_layer_samples = "USE"
    scene.view_layers[0].samples = 64
    scene.cycles.adaptive_min_samples = 4
    scene.cycles.adaptive_threshold = 0.05
    return scene


def adaptive_cycles_tiles():
    """``adaptive`` rendered by Cycles in its own 16 px tiles (``use_auto_tile``), as a 4K
    frame is in 2048 px ones: tiles whose edges are not tilefarm's."""
    scene = adaptive()
    scene.cycles.use_auto_tile = True
    scene.cycles.tile_size = 16


def no_camera():
    base(end=2, camera=False)


def eevee():
    """EEVEE with screen-space ray tracing: tiled 2x2 it shows seams (DESIGN.md), so it is
    rendered whole. The engine id is BLENDER_EEVEE_NEXT in 4.2-4.5, BLENDER_EEVEE since 5.0."""
    scene = base(width=64, height=48, end=2)
    engines = scene.render.bl_rna.properties["engine"].enum_items.keys()
    scene.render.engine = "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in engines else "BLENDER_EEVEE"
    scene.eevee.taa_render_samples = 4
    if hasattr(scene.eevee, "use_raytracing"):
        scene.eevee.use_raytracing = True
        scene.eevee.ray_tracing_method = "SCREEN"


def multilayer():
    """A compositing artist's scene: two view layers with data, light and Cryptomatte
    passes, a shader AOV and a light group, written as 32-bit multilayer EXR (every pass
    and the composite in one file, Cryptomatte manifests in its header), composited with
    a glow and a Cryptomatte matte read from the render."""
    scene = base(width=64, height=48, end=2, samples=8)
    scene.cycles.use_adaptive_sampling = False
    scene.world.mist_settings.start, scene.world.mist_settings.depth = 2, 10
    key = scene.objects["Light"]
    for index, layer in enumerate((scene.view_layers[0], scene.view_layers.new("Second"))):
        layer.use_pass_z = layer.use_pass_normal = layer.use_pass_mist = True
        layer.use_pass_diffuse_color = True
        layer.use_pass_cryptomatte_object = layer.use_pass_cryptomatte_material = True
        aov = layer.aovs.add()
        aov.name, aov.type = "tint", "COLOR"
        layer.lightgroups.add(name="key")
        layer.samples = 8 if index == 0 else 4
    key.lightgroup = "key"
    settings = scene.render.image_settings
    compat.set_file_format(settings, "OPEN_EXR_MULTILAYER")
    settings.color_depth = "32"
    settings.exr_codec = "ZIP"
    tree, layers, composite = _compositor(scene)
    glare = tree.nodes.new("CompositorNodeGlare")
    compat.set_option(glare, "glare_type", "Type", "FOG_GLOW")
    matte = tree.nodes.new("CompositorNodeCryptomatteV2")
    matte.matte_id = "Cube"
    _, _, a, b, mixed = compat.mix_color_node(tree, factor=0.5, blend_type="ADD")
    tree.links.new(layers.outputs["Image"], glare.inputs["Image"])
    tree.links.new(layers.outputs["Image"], matte.inputs["Image"])
    tree.links.new(glare.outputs["Image"], a)
    tree.links.new(matte.outputs["Image"], b)
    tree.links.new(mixed, composite)
    return scene


def file_output(out):
    """A File Output node with an absolute base path (outside any job), writing the glowing
    image and the depth pass each frame, besides the scene's own PNG frames."""
    scene = base(width=64, height=48, end=2)
    tree, layers, composite = _compositor(scene)
    scene.view_layers[0].use_pass_z = True
    node = tree.nodes.new("CompositorNodeOutputFile")
    where = os.path.join(out, "file_output_elsewhere", "")
    if hasattr(node, "directory"):  # 5.x: directory, file name prefix and items
        node.directory = where
        node.file_output_items.new("RGBA", "beauty_")
        node.file_output_items.new("FLOAT", "depth/z_")
    else:
        node.base_path = where
        node.file_slots[0].path = "beauty_"
        node.file_slots.new("depth/z_")
    compat.set_file_format(node.format, "PNG")
    glare = tree.nodes.new("CompositorNodeGlare")
    tree.links.new(layers.outputs["Image"], glare.inputs["Image"])
    tree.links.new(glare.outputs["Image"], composite)
    tree.links.new(glare.outputs["Image"], node.inputs[0])
    tree.links.new(layers.outputs["Depth"], node.inputs[1])


def path_guiding():
    """Cycles path guiding: it learns from the whole render, so tiles cannot match."""
    scene = base(width=64, height=48, end=1, samples=16)
    scene.cycles.use_guiding = True


def memory_hungry():
    """One frame whose cube samples a 6144x6144 float image: Blender holds about 1 GiB more
    than for ``plain`` (about 340 MiB) while it renders."""
    base(width=64, height=36, end=1)
    image = bpy.data.images.new("Big", 6144, 6144, float_buffer=True)
    image.generated_type = "COLOR_GRID"
    material = bpy.data.materials.new("Hungry")
    material.use_nodes = True
    nodes = material.node_tree.nodes
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    material.node_tree.links.new(texture.outputs["Color"],
                                 nodes["Principled BSDF"].inputs["Base Color"])
    cube = bpy.data.objects["Cube"]
    cube.data.materials.clear()
    cube.data.materials.append(material)


def render_reference(blend, out):
    """Blender's own animation render of ``blend`` (``blender -b FILE -a``): the ground truth."""
    boot.open_blend(blend)
    scene = bpy.context.scene
    scene.render.filepath = os.path.join(out, "######")
    bpy.ops.render.render(animation=True)
    frames = range(scene.frame_start, scene.frame_end + 1, scene.frame_step)
    return {str(f): scene.render.frame_path(frame=f) for f in frames}


CASES = {
    "plain": plain,
    "odd_size": odd_size,
    "percentage_jpeg": percentage_jpeg,
    "frame_step": frame_step,
    "glare_blur": glare_blur,
    "denoise": denoise,
    "denoise_no_adaptive": denoise_no_adaptive,
    "denoise_exposure": denoise_exposure,
    "two_layers": two_layers,
    "motion_blur": motion_blur,
    "camera_markers": camera_markers,
    "transparent_exr": transparent_exr,
    "registered_script": registered_script,
    "no_camera": no_camera,
    "eevee": eevee,
    "path_guiding": path_guiding,
    "memory_hungry": memory_hungry,
    "multilayer": multilayer,
    "file_output": file_output,
    "adaptive": adaptive,
    "adaptive_cycles_tiles": adaptive_cycles_tiles,
    "sound_video": sound_video,
    "ntsc_rate": ntsc_rate,
    **real_world_scenes.CASES,
}
ONLY_WHEN_ASKED = real_world_scenes.ONLY_WHEN_ASKED


def build(request):
    if "open_with_scripts" in request:
        # Test-only control: open the file the unsafe way, to prove the fixture's
        # script is live (so "it did not run" elsewhere means something).
        bpy.ops.wm.open_mainfile(filepath=request["open_with_scripts"], use_scripts=True)
        return {}
    if "reference" in request:
        return render_reference(request["reference"], request["out"])
    if "references" in request:  # several files in one Blender: [[blend, out], ...]
        return [render_reference(blend, out) for blend, out in request["references"]]
    out = request["out"]
    os.makedirs(out, exist_ok=True)
    built = {}
    for name in request.get("cases") or sorted(set(CASES) - ONLY_WHEN_ASKED):
        maker = CASES[name]
        if name == "registered_script":
            maker(request["marker"])
            path = None
        elif name in ("sound_video", "appended_asset"):
            path = maker(out)
        elif name == "file_output":
            maker(out)
            path = None
        else:
            maker()
            path = None
        path = path or os.path.join(out, name + ".blend")
        bpy.ops.wm.save_as_mainfile(filepath=path, compress=False, relative_remap=True)
        built[name] = path
    return built


if __name__ == "__main__":
    boot.serve(build)
