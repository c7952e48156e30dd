"""The fixture scenes' common base: an animated cube on a floor, lit, seen by a camera.

Blender side (imports ``bpy``), shared by ``build_scenes`` and ``real_world_scenes``.
"""

import math

import bpy

import compat
from scene_kit import camera as _camera, cube as _cube, plane as _plane


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
