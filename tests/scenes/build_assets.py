"""Builds the dependency fixtures: tiny real Cycles jobs (32x24, 4 samples, one frame) whose
.blend files name textures, sequences, UDIM tiles, libraries and a cache as users do.

Runs inside Blender through ``BlenderRunner.run_script``. ``{"out": DIR, "cases": [...]}``
(cases optional) answers ``{NAME: {"blend": PATH, "job": JOB_DIR}}``, every job being
``DIR/<case>/shot.blend`` with outside files in ``DIR/tex``, ``DIR/elsewhere``, ``DIR/libs``.
``{"render": [[BLEND, OUT_DIR], ...]}`` renders each as ``blender -b BLEND -a`` does
(``build_scenes.render_reference``), all in this one Blender: ``{BLEND: FRAME_PATH}``.
"""

import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tilefarm", "blender", "side"))

import bpy  # noqa: E402

import boot  # noqa: E402
from scene_kit import camera as _camera  # noqa: E402

SIZE = 8  # texture edge, pixels


def _write_png(path, rgb, size=SIZE):
    """A ``size``² PNG: a colour ramp from ``rgb`` to its complement, so every texel matters."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = bpy.data.images.new("tmp_write", size, size, alpha=False)
    ramp = [i / (size * size - 1) for i in range(size * size)]
    image.pixels = [v for t in ramp for v in (*(c * (1 - t) + (1 - c) * t for c in rgb), 1.0)]
    image.filepath_raw = path
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)


def _start(path):
    """An empty Cycles scene saved at ``path`` at once, so ``//`` paths resolve from here on."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0  # no .blend1 backups beside the jobs
    os.makedirs(os.path.dirname(path), exist_ok=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.samples = "CPU", 4
    scene.cycles.use_denoising = scene.cycles.use_adaptive_sampling = False
    scene.render.resolution_x, scene.render.resolution_y = 32, 24
    scene.render.resolution_percentage = 100
    scene.frame_start = scene.frame_end = 1
    scene.render.image_settings.file_format = "PNG"
    scene.world = bpy.data.worlds.new("World")
    scene.world.color = (0.8, 0.8, 0.8)
    scene.camera = _camera(scene)
    bpy.ops.wm.save_as_mainfile(filepath=path, compress=False)
    return scene


def _save():
    bpy.ops.wm.save_mainfile(compress=False)


def _textured(name, image, location=(0.0, 0.0, 0.0), size=6.0, u_max=1.0):
    """A UV-mapped quad whose emission shows ``image`` (so the texels reach the pixels)."""
    s, mesh = size, bpy.data.meshes.new(name)
    mesh.from_pydata([(-s, -s, 0), (s, -s, 0), (s, s, 0), (-s, s, 0)], [], [(0, 1, 2, 3)])
    uv = mesh.uv_layers.new(name="UVMap")
    for loop, coord in zip(uv.data, [(0, 0), (u_max, 0), (u_max, 1), (0, 1)]):
        loop.uv = coord
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    mat = bpy.data.materials.new(name + "Mat")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf, tex = nodes["Principled BSDF"], nodes.new("ShaderNodeTexImage")
    tex.image, tex.interpolation = image, "Closest"
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    links.new(tex.outputs["Color"], bsdf.inputs["Emission Color"])
    bsdf.inputs["Emission Strength"].default_value = 1.0
    mesh.materials.append(mat)
    return obj, tex


def _image(abs_path, named_as):
    """Load the PNG at ``abs_path`` and name it as the user would: ``named_as`` ("//..." or absolute)."""
    image = bpy.data.images.load(abs_path, check_existing=False)
    image.filepath = named_as
    return image


def _link(library, kind, name):
    """Link datablock ``name`` of ``kind`` ("objects", "collections") by a relative path."""
    with bpy.data.libraries.load(library, link=True, relative=True) as (_src, dst):
        setattr(dst, kind, [name])
    return getattr(dst, kind)[0]


def _textured_job(out, case, texture_abs, named_as, rgb):
    path = os.path.join(out, case, "shot.blend")
    scene = _start(path)
    _write_png(texture_abs, rgb)
    scene.collection.objects.link(_textured("Floor", _image(texture_abs, named_as))[0])
    return path


def relative(out):
    """A texture inside the job dir by a relative path: ``//tex/a.png``."""
    return _textured_job(out, "relative", os.path.join(out, "relative", "tex", "a.png"),
                         "//tex/a.png", (0.9, 0.2, 0.1))


def absolute(out):
    """A texture outside the job by an absolute path."""
    tex = os.path.join(out, "elsewhere", "absolute.png")
    return _textured_job(out, "absolute", tex, tex, (0.1, 0.8, 0.3))


def absolute_inside(out):
    """A texture inside the job dir named by its absolute path: packing keeps its place."""
    tex = os.path.join(out, "absolute_inside", "tex", "inside.png")
    return _textured_job(out, "absolute_inside", tex, tex, (0.7, 0.7, 0.2))


def parent(out):
    """A texture outside the job by a relative path that climbs out: ``//../tex/parent.png``."""
    return _textured_job(out, "parent", os.path.join(out, "tex", "parent.png"),
                         "//../tex/parent.png", (0.2, 0.3, 0.9))


def sequence(out):
    """An image sequence of three numbered PNGs; the image user starts at frame 1, so frame 1
    shows ``frame_001.png``."""
    path = os.path.join(out, "sequence", "shot.blend")
    scene = _start(path)
    files = [os.path.join(out, "sequence", "seq", f"frame_{n:03d}.png") for n in (1, 2, 3)]
    for n, file in enumerate(files):
        _write_png(file, (0.2 + 0.3 * n, 0.5, 0.9 - 0.3 * n))
    image = _image(files[0], "//seq/frame_001.png")
    image.source = "SEQUENCE"
    obj, tex = _textured("Floor", image)
    user = tex.image_user
    user.frame_duration, user.frame_start, user.frame_offset, user.use_auto_refresh = 3, 1, 0, True
    scene.collection.objects.link(obj)
    return path


def udim(out):
    """A UDIM texture: tiles 1001 and 1002 named ``//tex/wall.<UDIM>.png``, a quad spanning both."""
    path = os.path.join(out, "udim", "shot.blend")
    scene = _start(path)
    for number, rgb in {1001: (0.9, 0.7, 0.1), 1002: (0.1, 0.6, 0.7)}.items():
        _write_png(os.path.join(out, "udim", "tex", f"wall.{number}.png"), rgb)
    image = bpy.data.images.load(os.path.join(out, "udim", "tex", "wall.1001.png"), check_existing=False)
    image.source = "TILED"
    image.filepath = "//tex/wall.<UDIM>.png"
    if not any(t.number == 1002 for t in image.tiles):
        image.tiles.new(tile_number=1002)
    image.reload()
    scene.collection.objects.link(_textured("Floor", image, u_max=2.0)[0])
    return path


def _library_props(out):
    """``libs/props.blend``: objects Prop and Deep, each textured by a file beside the library."""
    path = os.path.join(out, "libs", "props.blend")
    scene = _start(path)
    for name, rgb, location in (("Prop", (0.9, 0.9, 0.1), (-2.0, 0.0, 0.5)),
                                ("Deep", (0.9, 0.1, 0.9), (2.0, -1.0, 0.7))):
        tex = os.path.join(out, "libs", "tex", name.lower() + ".png")
        _write_png(tex, rgb)
        image = _image(tex, f"//tex/{name.lower()}.png")
        scene.collection.objects.link(_textured(name, image, location=location, size=1.0)[0])
    _save()
    return path


def library(out):
    """Linked libraries: the shot links collection LibSet from ``//lib.blend`` (beside it) and
    object Prop from ``//../libs/props.blend`` (a sibling folder); lib.blend holds a textured
    plane and links object Deep from props.blend itself (found only by recursing)."""
    props = _library_props(out)
    lib = os.path.join(out, "library", "lib.blend")
    scene = _start(lib)
    tex = os.path.join(out, "library", "tex", "lib.png")
    _write_png(tex, (0.6, 0.4, 0.2))
    collection = bpy.data.collections.new("LibSet")
    scene.collection.children.link(collection)
    collection.objects.link(_textured("LibPlane", _image(tex, "//tex/lib.png"))[0])
    collection.objects.link(_link(props, "objects", "Deep"))
    _save()
    path = os.path.join(out, "library", "shot.blend")
    scene = _start(path)
    scene.collection.children.link(_link(lib, "collections", "LibSet"))
    scene.collection.objects.link(_link(props, "objects", "Prop"))
    return path


def cache(out):
    """An Alembic cache: a cube exported with ``wm.alembic_export`` to ``//cache/cube.abc``,
    read back by a MeshSequenceCache modifier (``wm.alembic_import``), over a textured floor."""
    path = os.path.join(out, "cache", "shot.blend")
    scene = _start(path)
    abc = os.path.join(out, "cache", "cache", "cube.abc")
    os.makedirs(os.path.dirname(abc), exist_ok=True)
    mesh = bpy.data.meshes.new("Source")
    mesh.from_pydata([(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (0, 2)], [],
                     [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
    source = bpy.data.objects.new("Source", mesh)
    scene.collection.objects.link(source)
    for obj in scene.objects:
        obj.select_set(obj is source)
    bpy.ops.wm.alembic_export(filepath=abc, start=1, end=1, selected=True, as_background_job=False)
    bpy.data.objects.remove(source)
    bpy.data.meshes.remove(mesh)
    # A static cache gets no reader unless asked: always_add_cache_reader adds the
    # MeshSequenceCache modifier (and its CacheFile) for a one-frame file too.
    bpy.ops.wm.alembic_import(filepath=abc, as_background_job=False, always_add_cache_reader=True)
    for cache_file in bpy.data.cache_files:
        cache_file.filepath = "//cache/cube.abc"
    red = bpy.data.materials.new("Red")  # so the cached cube shows in the render
    red.diffuse_color = (0.9, 0.1, 0.1, 1.0)  # a material without nodes renders this colour
    next(obj for obj in scene.objects if obj.modifiers).data.materials.append(red)
    tex = os.path.join(out, "cache", "tex", "floor.png")
    _write_png(tex, (0.3, 0.7, 0.5))
    scene.collection.objects.link(_textured("Floor", _image(tex, "//tex/floor.png"))[0])
    return path


def geometry_nodes(out):
    """A textured floor through a pass-through geometry-nodes modifier (no bakes): Blender 4.5
    saves its empty ``bakes`` array as a pointer to nothing, which strict BAT refuses."""
    path = _textured_job(out, "geometry_nodes", os.path.join(out, "geometry_nodes", "tex", "g.png"),
                         "//tex/g.png", (0.4, 0.9, 0.6))
    group = bpy.data.node_groups.new("PassThrough", "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    into, out_node = group.nodes.new("NodeGroupInput"), group.nodes.new("NodeGroupOutput")
    group.links.new(into.outputs[0], out_node.inputs[0])
    bpy.data.objects["Floor"].modifiers.new("GeometryNodes", "NODES").node_group = group
    return path


def missing_texture(out):
    """A present texture and one whose file is gone: ``//tex/missing.png``."""
    path = os.path.join(out, "missing_texture", "shot.blend")
    scene = _start(path)
    here = os.path.join(out, "missing_texture", "tex", "here.png")
    gone = os.path.join(out, "missing_texture", "tex", "missing.png")
    _write_png(here, (0.5, 0.5, 0.1))
    _write_png(gone, (0.1, 0.5, 0.5))
    scene.collection.objects.link(_textured("Floor", _image(here, "//tex/here.png"))[0])
    scene.collection.objects.link(_textured("Card", _image(gone, "//tex/missing.png"),
                                            location=(0, 0, 1), size=1.0)[0])
    _save()
    os.remove(gone)
    return path


def missing_library(out):
    """An object linked from ``//gone.blend``, a library deleted after the shot was saved."""
    gone = os.path.join(out, "missing_library", "gone.blend")
    scene = _start(gone)
    scene.collection.objects.link(_textured("Gone", bpy.data.images.new("blank", 4, 4))[0])
    _save()
    path = os.path.join(out, "missing_library", "shot.blend")
    scene = _start(path)
    scene.collection.objects.link(_link(gone, "objects", "Gone"))
    _save()
    os.remove(gone)  # after saving: Blender keeps the linked data in memory
    return path


def template(out):
    """A template for personalised renders (issue 17): a text object ``Title``, an image
    ``Photo`` (``//photos/default.png``), and a scene property ``tint`` that a plain
    single-property driver reads (the title's height); photos and a tune per person beside."""
    import struct
    import wave

    job = os.path.join(out, "template")
    path = os.path.join(job, "shot.blend")
    scene = _start(path)
    scene.frame_end = 2
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    for name, rgb in (("default", (0.5, 0.5, 0.5)), ("amy", (0.9, 0.3, 0.1)),
                      ("bob", (0.1, 0.4, 0.9))):
        _write_png(os.path.join(job, "photos", f"{name}.png"), rgb)
    photo = _image(os.path.join(job, "photos", "default.png"), "//photos/default.png")
    photo.name = "Photo"
    scene.collection.objects.link(_textured("Board", photo)[0])
    curve = bpy.data.curves.new("Title", "FONT")
    curve.body, curve.size, curve.align_x = "NAME", 2.5, "CENTER"
    ink = bpy.data.materials.new("Ink")
    ink.diffuse_color = (0.0, 0.0, 0.0, 1.0)  # Cycles without nodes: a dark title on the photo
    curve.materials.append(ink)
    title = bpy.data.objects.new("Title", curve)
    title.location = (0.0, 0.0, 0.2)
    scene.collection.objects.link(title)
    scene["tint"] = 0.5
    driver = title.driver_add("scale", 1).driver
    driver.type = "AVERAGE"
    var = driver.variables.new()
    var.type = "SINGLE_PROP"
    var.targets[0].id_type = "SCENE"
    var.targets[0].id = scene
    var.targets[0].data_path = '["tint"]'
    for name, pitch in (("amy", 440), ("bob", 660)):
        tune = os.path.join(job, "music", f"{name}.wav")
        os.makedirs(os.path.dirname(tune), exist_ok=True)
        with wave.open(tune, "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(48000)
            handle.writeframes(b"".join(struct.pack("<h", int(6000 * math.sin(
                2 * math.pi * pitch * i / 48000))) for i in range(24000)))
    return path


def substitute(request):
    """The ground truth for a variant: the template with its substitutions made by hand and
    saved as a copy (what an artist would render with Blender itself)."""
    boot.open_blend(request["substitute"])
    scene = bpy.context.scene
    for name, body in request.get("text", {}).items():
        bpy.data.objects[name].data.body = body
    for name, path in request.get("images", {}).items():
        bpy.data.images[name].filepath = path
    for key, value in request.get("values", {}).items():
        scene[key] = value
    bpy.ops.wm.save_as_mainfile(filepath=request["target"], copy=True, compress=False)
    return request["target"]


CASES = {maker.__name__: maker for maker in (
    relative, absolute, absolute_inside, parent, sequence, udim, library, cache, geometry_nodes,
    missing_texture, missing_library, template)}


def render(blend, out):
    """Blender's own animation render of ``blend`` (``blender -b FILE -a``), as build_scenes does."""
    boot.open_blend(blend)
    scene = bpy.context.scene
    scene.render.filepath = os.path.join(out, "######")
    bpy.ops.render.render(animation=True)
    return scene.render.frame_path(frame=scene.frame_start)


def build(request):
    if "substitute" in request:
        return substitute(request)
    if "render" in request:
        return {blend: render(blend, out) for blend, out in request["render"]}
    out = request["out"]
    os.makedirs(out, exist_ok=True)
    built = {}
    for name in request.get("cases") or sorted(CASES):
        path = CASES[name](out)  # each maker leaves its shot open, saved at `path` once
        _save()
        built[name] = {"blend": path, "job": os.path.dirname(path)}
    return built


if __name__ == "__main__":
    boot.serve(build)
