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

import bpy  # noqa: E402

import boot  # noqa: E402
import compat  # noqa: E402  (the fixtures build under every supported runtime)
from scene_kit import camera as _camera, cube as _cube, plane as _plane  # noqa: E402


def base(width=64, height=48, start=1, end=3, samples=8, camera=True):
    """An animated cube on a floor, lit, seen by a camera: the plain case."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = True
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = start, end
    compat.set_file_format(scene.render.image_settings, "PNG")
    world = bpy.data.worlds.new("World")
    scene.world = world
    compat.set_world_color(world, (0.05, 0.06, 0.09))
    scene.collection.objects.link(_plane("Floor", color=(0.6, 0.55, 0.5, 1)))
    cube = _cube("Cube", color=(0.8, 0.2, 0.1, 1), location=(0, 0, 1))
    scene.collection.objects.link(cube)
    cube.keyframe_insert("location", frame=start)
    cube.keyframe_insert("rotation_euler", frame=start)
    cube.location = (1.5, 0.5, 1.2)
    cube.rotation_euler = (0.0, 0.0, math.radians(90))
    cube.keyframe_insert("location", frame=max(end, start + 1))
    cube.keyframe_insert("rotation_euler", frame=max(end, start + 1))
    light = bpy.data.objects.new("Light", bpy.data.lights.new("Light", "POINT"))
    light.data.energy = 1500
    light.location = (4, -2, 6)
    scene.collection.objects.link(light)
    if camera:
        scene.camera = _camera(scene)
    return scene


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


def factory_default():
    """Blender's own default scene (the factory startup file: its cube, light and camera,
    and the weak library reference its material keeps to an asset file), rendered with
    Cycles at 5 % so it is quick; one frame."""
    bpy.ops.wm.read_factory_settings(use_empty=False)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 8
    scene.render.resolution_percentage = 5
    scene.frame_start = scene.frame_end = 1


def appended_asset(out):
    """A material appended from an asset file with Reuse Data (the Asset Browser's
    default): the material remembers that file by a weak library reference, which Blender
    never reads to render. The asset file is gone afterwards, as on another machine."""
    library = os.path.join(out, "asset_library", "materials.blend")
    os.makedirs(os.path.dirname(library), exist_ok=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    material = bpy.data.materials.new("Brass")
    material.use_fake_user = True
    material.diffuse_color = (0.8, 0.6, 0.2, 1)
    bpy.ops.wm.save_as_mainfile(filepath=library, compress=False)
    scene = base(end=1)
    bpy.ops.wm.append(directory=library + "/Material/", filename="Brass",
                      do_reuse_local_id=True)
    scene.objects["Cube"].data.materials[0] = bpy.data.materials["Brass"]
    path = os.path.join(out, "appended_asset.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path, compress=False, relative_remap=True)
    os.remove(library)
    return path


def text_missing():
    """A Text datablock loaded from a README kept beside the project, which is not here:
    its text is in the .blend, and rendering never reads the file."""
    base(end=1)
    text = bpy.data.texts.new("README.md")
    text.write("notes about the shot\n")
    text.filepath = "//docs/README.md"


def unused_image_missing():
    """An image datablock nothing in the scene uses (kept by a fake user), whose file is
    missing: rendering never reads it."""
    base(end=1)
    image = bpy.data.images.new("old_plate", 4, 4)
    image.source = "FILE"
    image.filepath = "//textures/old_plate.png"
    image.use_fake_user = True


# Every still format Blender writes, each with settings other than its defaults where it
# has any (issue 26): frames must come out as Blender writes them, never as PNG.
FORMAT_SETTINGS = {
    "PNG": {"color_mode": "RGBA", "color_depth": "16", "compression": 40},
    "JPEG": {"color_mode": "RGB", "quality": 70},
    "JPEG2000": {"color_mode": "RGB", "color_depth": "12", "jpeg2k_codec": "J2K",
                 "quality": 80},
    "BMP": {"color_mode": "RGB"},
    "IRIS": {"color_mode": "RGBA"},
    "TARGA": {"color_mode": "RGBA"},
    "TARGA_RAW": {"color_mode": "RGB"},
    "CINEON": {},
    "DPX": {"color_mode": "RGBA", "color_depth": "16", "use_cineon_log": True},
    "OPEN_EXR": {"color_mode": "RGBA", "color_depth": "16", "exr_codec": "PIZ"},
    "HDR": {"color_mode": "RGB"},
    "TIFF": {"color_mode": "RGBA", "color_depth": "16", "tiff_codec": "LZW"},
    "WEBP": {"color_mode": "RGBA", "quality": 80},
}


# Formats of some Blenders only: built when asked for by name.
NEWER_FORMAT_SETTINGS = {
    "AVIF": {"color_mode": "RGBA", "color_depth": "10", "quality": 90},  # 5.2 and later
}


def output_format(name):
    """The plain scene (one frame), written in format ``name`` with its settings."""
    scene = base(width=64, height=48, end=1)
    settings = scene.render.image_settings
    compat.set_file_format(settings, name)
    for key, value in {**FORMAT_SETTINGS, **NEWER_FORMAT_SETTINGS}[name].items():
        setattr(settings, key, value)


def movie_output():
    """A scene set to write a movie: tilefarm writes PNG frames and its own video."""
    scene = base(end=2)
    compat.set_file_format(scene.render.image_settings, "FFMPEG")
    scene.render.ffmpeg.format = "MPEG4"


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
    "multilayer": multilayer,
    "file_output": file_output,
    "adaptive": adaptive,
    "adaptive_cycles_tiles": adaptive_cycles_tiles,
    "sound_video": sound_video,
    "ntsc_rate": ntsc_rate,
    "factory_default": factory_default,
    "appended_asset": appended_asset,
    "text_missing": text_missing,
    "unused_image_missing": unused_image_missing,
    "movie_output": movie_output,
    **{f"format_{name.lower()}": (lambda name=name: output_format(name))
       for name in [*FORMAT_SETTINGS, *NEWER_FORMAT_SETTINGS]},
}
ONLY_WHEN_ASKED = {f"format_{name.lower()}" for name in NEWER_FORMAT_SETTINGS}


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
