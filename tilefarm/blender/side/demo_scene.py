"""The demo scene behind ``tilefarm demo``: a short Cycles animation that exercises
tiling, denoising and a compositor glow, small enough to render in a minute on 2 cores."""

import math

import bpy
import compat
from scene_kit import camera, cube, plane


def build(request):
    """Write the demo scene a ``protocol.DemoRequest`` describes."""
    target, frames, denoise = request.target, request.frames, request.denoise
    width, height, samples = request.width, request.height, request.samples
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "Demo"
    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100
    r.fps, r.fps_base = 24, 1.0
    compat.set_file_format(r.image_settings, "PNG")
    scene.frame_start, scene.frame_end = 1, frames
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = denoise
    world = bpy.data.worlds.new("World")
    scene.world = world
    compat.set_world_color(world, (0.02, 0.03, 0.06))
    scene.collection.objects.link(plane("Floor", size=10.0, color=(0.55, 0.55, 0.6, 1)))
    colors = [(0.9, 0.25, 0.1, 1), (0.1, 0.5, 0.9, 1), (0.2, 0.8, 0.3, 1), (0.9, 0.8, 0.2, 1)]
    for i, color in enumerate(colors):
        angle = i * math.pi / 2
        box = cube(f"Box{i}", size=0.6, color=color,
                   location=(2.2 * math.cos(angle), 2.2 * math.sin(angle), 0.6))
        scene.collection.objects.link(box)
        for frame, turn in ((1, 0.0), (frames, math.pi)):
            box.rotation_euler = (0.0, 0.0, turn + angle)
            box.location.z = 0.6 + (0.8 if frame == frames and i % 2 else 0.0)
            box.keyframe_insert("rotation_euler", frame=frame)
            box.keyframe_insert("location", frame=frame)
    lamp = cube("Lamp", size=0.25, color=(1.0, 0.85, 0.6, 1), emission=30.0, location=(0, 0, 2.2))
    scene.collection.objects.link(lamp)
    light = bpy.data.objects.new("Key", bpy.data.lights.new("Key", "AREA"))
    light.data.energy, light.data.size = 800, 4
    light.location = (3, -3, 6)
    scene.collection.objects.link(light)
    scene.camera = camera(scene, location=(9.5, -9.5, 7.5), rotation=(58, 0, 45))
    tree, layers, output = compat.default_compositor(scene)
    glare = tree.nodes.new("CompositorNodeGlare")
    compat.set_option(glare, "glare_type", "Type", "FOG_GLOW")
    tree.links.new(layers.outputs["Image"], glare.inputs["Image"])
    tree.links.new(glare.outputs["Image"], output)
    bpy.ops.wm.save_as_mainfile(filepath=target, compress=False)
    return target
