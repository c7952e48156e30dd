"""Blender side of ``bench/overhead.py --textures N``: the demo scene with image textures.

Runs inside Blender through ``tilefarm.blender.runner.BlenderRunner`` (it imports ``bpy``):
request ``{"blend": PATH, "textures": N, "size": PX}``. Opens ``blend`` the safe way, saves
``N`` PNG images of ``PX`` x ``PX`` noise beside it (``texture-K.png``), gives a sphere behind
the demo's cube a material that mixes them all, and saves the file in place (relative paths).

A production shot's image textures are what Blender loads and decodes again on every frame of
its own animation render (persistent data off, its default): serial work per frame, which a
warm renderer keeps between frames. The result: the textures' total bytes on disk.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tilefarm", "blender", "side"))

import bpy  # noqa: E402
import numpy  # noqa: E402

import boot  # noqa: E402


def add_textures(request):
    boot.open_blend(request["blend"])
    folder, size = os.path.dirname(request["blend"]), request["size"]
    bpy.ops.mesh.primitive_uv_sphere_add(radius=2.0, location=(0.0, 3.0, 1.0))
    material = bpy.data.materials.new("textured")
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    colour = nodes["Principled BSDF"].inputs["Base Color"]
    noise = numpy.random.default_rng(1)
    written = 0
    for k in range(request["textures"]):
        path = os.path.join(folder, f"texture-{k}.png")
        image = bpy.data.images.new(f"texture-{k}", size, size, alpha=False)
        image.pixels.foreach_set(noise.random(size * size * 4, dtype=numpy.float32))
        image.filepath_raw, image.file_format = path, "PNG"
        image.save()
        written += os.path.getsize(path)
        node = nodes.new("ShaderNodeTexImage")
        node.image = bpy.data.images.load(path)
        if k == 0:
            links.new(node.outputs["Color"], colour)
        else:  # mixed in, so that the render reads every texture
            mix = nodes.new("ShaderNodeMix")
            mix.data_type = "RGBA"
            links.new(colour.links[0].from_socket, mix.inputs["A"])
            links.new(node.outputs["Color"], mix.inputs["B"])
            links.new(mix.outputs["Result"], colour)
    bpy.context.object.data.materials.append(material)
    bpy.ops.wm.save_as_mainfile(filepath=request["blend"], relative_remap=True)
    return {"bytes": written}


if __name__ == "__main__":
    boot.serve(add_textures)
