"""Small helpers that build scene content with bpy data calls (no operators, no UI context).

Used by the demo scene and by the test fixtures.
"""

import math

import bpy
import compat


def mesh(name, verts, faces, location=(0, 0, 0), color=(0.8, 0.8, 0.8, 1), emission=0.0):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    mat = bpy.data.materials.new(name + "Mat")
    compat.ensure_material_nodes(mat)
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = color
    bsdf.inputs["Roughness"].default_value = 0.35
    if emission:
        bsdf.inputs["Emission Color"].default_value = color
        bsdf.inputs["Emission Strength"].default_value = emission
    mesh.materials.append(mat)
    return obj


def cube(name, size=1.0, **kw):
    s = size
    verts = [(x, y, z) for x in (-s, s) for y in (-s, s) for z in (-s, s)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return mesh(name, verts, faces, **kw)


def plane(name, size=6.0, **kw):
    s = size
    return mesh(name, [(-s, -s, 0), (s, -s, 0), (s, s, 0), (-s, s, 0)], [(0, 1, 2, 3)], **kw)


def camera(scene, name="Camera", location=(7.36, -6.93, 4.96), rotation=(63.6, 0.0, 46.7)):
    cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    cam.location = location
    cam.rotation_euler = [math.radians(a) for a in rotation]
    scene.collection.objects.link(cam)
    return cam
