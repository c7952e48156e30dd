"""Fixtures for what real-world files carry (issue 26): Blender's factory default scene,
datablocks naming files the render never reads, every still output format, a movie output.

Blender side (imports ``bpy``); registered in ``build_scenes.CASES``.
"""

import os

import bpy

import compat
from scene_base import base


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


CASES = {
    "factory_default": factory_default,
    "appended_asset": appended_asset,
    "text_missing": text_missing,
    "unused_image_missing": unused_image_missing,
    "movie_output": movie_output,
    **{f"format_{name.lower()}": (lambda name=name: output_format(name))
       for name in [*FORMAT_SETTINGS, *NEWER_FORMAT_SETTINGS]},
}
# The cases a plain build (no "cases" in the request) leaves out.
ONLY_WHEN_ASKED = {f"format_{name.lower()}" for name in NEWER_FORMAT_SETTINGS}
