"""Reads the scene facts the planner needs (schema ``scene_facts``)."""

import os

import bpy
import compat
from boot import freestyle_runs_script
from file_outputs import file_output_nodes
from reads import render_reads


def facts(scene):
    render = scene.render
    pct = render.resolution_percentage
    return {
        "blender_version": bpy.app.version_string,
        "scene": scene.name,
        "scenes": sorted(s.name for s in bpy.data.scenes),
        "frame_start": scene.frame_start,
        "frame_end": scene.frame_end,
        "frame_step": scene.frame_step,
        "resolution_x": render.resolution_x,
        "resolution_y": render.resolution_y,
        "resolution_percentage": pct,
        # Blender's own integer rule (BKE_render_resolution): size * percentage / 100.
        "width": render.resolution_x * pct // 100,
        "height": render.resolution_y * pct // 100,
        "fps": render.fps,
        "fps_base": render.fps_base,
        "engine": render.engine,
        "samples": _samples(scene),
        "adaptive_sampling": _adaptive(scene),
        "camera": scene.camera.name if scene.camera else None,
        "camera_markers": [{"frame": m.frame, "camera": m.camera.name}
                           for m in sorted(scene.timeline_markers, key=lambda m: m.frame)
                           if m.camera is not None],
        "view_layers": [{"name": layer.name, "use": layer.use, "passes": _passes(layer)}
                        for layer in scene.view_layers],
        "compositor": _compositor(scene),
        "denoise": _denoise(scene),
        "output": _output(scene),
        "motion_blur": render.use_motion_blur,
        "use_sequencer": render.use_sequencer,
        "sequencer_strips": len(_strips(scene)),
        "sound_strips": [_sound(strip) for strip in _strips(scene) if strip.type == "SOUND"],
        "freestyle_script": freestyle_runs_script(scene),
        "freestyle": bool(render.use_freestyle) and any(
            layer.use and layer.use_freestyle for layer in scene.view_layers),
        "path_guiding": render.engine == "CYCLES" and bool(getattr(scene.cycles, "use_guiding",
                                                                    False)),
        "grease_pencil": _grease_pencil(scene),
        **_files(scene),
    }


def _files(scene):
    """The external files Blender reads to render the scene (``reads``), so the parent can
    check Blender Asset Tracer missed none (tilefarm.splitter.contents), and the files the
    .blend names that the render never reads, with why. Relative to the .blend's folder:
    facts are cached by the file's bytes, and the same bytes are inspected where the user
    keeps them and again inside the store."""
    folder = os.path.dirname(bpy.data.filepath)
    read, unread = render_reads(scene)
    return {"files": sorted(os.path.relpath(p, folder) for p in read),
            "unread_files": [{"path": os.path.relpath(p, folder), "why": why}
                             for p, why in sorted(unread.items())]}


# Grease Pencil object types: GPENCIL before 4.3, GREASEPENCIL (v3) since.
_GREASE_PENCIL = ("GPENCIL", "GREASEPENCIL")


def _grease_pencil(scene):
    """What the scene renders of Grease Pencil: "effects" where a rendered object has a
    shader effect shown in renders, "strokes" for rendered objects without, else ""."""
    found = ""
    for obj in scene.objects:
        if obj.type not in _GREASE_PENCIL or obj.hide_render:
            continue
        if any(effect.show_render for effect in getattr(obj, "shader_effects", [])):
            return "effects"
        found = "strokes"
    return found


def _samples(scene):
    if scene.render.engine == "CYCLES":
        return scene.cycles.samples
    eevee = getattr(scene, "eevee", None)
    return getattr(eevee, "taa_render_samples", 0) if eevee else 0


def _adaptive(scene):
    if scene.render.engine != "CYCLES":
        return {"enabled": False, "min_samples": 0, "sample_offset": 0, "max_samples": 0}
    c = scene.cycles
    return {"enabled": bool(c.use_adaptive_sampling), "min_samples": c.adaptive_min_samples,
            "sample_offset": getattr(c, "sample_offset", 0),
            "max_samples": max([_layer_samples(c, layer) for layer in scene.view_layers
                                if layer.use] or [c.samples])}


def _layer_samples(cycles, layer):
    """A view layer's own sample count overrides the scene's (``use_layer_samples``)."""
    mode = getattr(cycles, "use_layer_samples", "IGNORE")
    if mode == "IGNORE" or not layer.samples:
        return cycles.samples
    return layer.samples if mode == "USE" else min(layer.samples, cycles.samples)


def _passes(layer):
    # use_pass_cryptomatte_accurate is an option of the cryptomatte passes, not a pass.
    names = [prop.identifier[len("use_pass_"):] for prop in layer.bl_rna.properties
             if prop.identifier.startswith("use_pass_") and getattr(layer, prop.identifier)
             and prop.identifier != "use_pass_cryptomatte_accurate"]
    cycles = getattr(layer, "cycles", None)
    if cycles is not None:
        names += ["cycles." + prop.identifier[len("use_pass_"):] for prop in cycles.bl_rna.properties
                  if prop.identifier.startswith("use_pass_") and getattr(cycles, prop.identifier)]
        if getattr(cycles, "denoising_store_passes", False):
            names.append("cycles.denoising_data")
    return ["combined"] + sorted(n for n in names if n != "combined")


def _compositor(scene):
    tree = compat.compositor_tree(scene)
    nodes = []
    if tree is not None:
        for node in tree.nodes:
            if node.type == "R_LAYERS" and not node.mute:
                nodes.append({"node": node.name, "layer": node.layer,
                              "outputs": [s.name for s in node.outputs if s.is_linked]})
    return {"use_compositing": scene.render.use_compositing,
            "has_tree": tree is not None and compat.has_output(tree),
            "render_layer_nodes": nodes,
            "file_output_nodes": [n.name for n in file_output_nodes(tree)],
            "cryptomatte_nodes": tree is not None and any(
                n.type in ("CRYPTOMATTE", "CRYPTOMATTE_V2") and not n.mute for n in tree.nodes)}


def _denoise(scene):
    if scene.render.engine != "CYCLES":
        return {"enabled": False, "denoiser": "", "prefilter": "", "quality": "",
                "input_passes": "", "use_gpu": False, "film_exposure": 1.0}
    c = scene.cycles
    return {"enabled": bool(c.use_denoising), "denoiser": c.denoiser,
            "prefilter": c.denoising_prefilter, "quality": getattr(c, "denoising_quality", ""),
            "input_passes": c.denoising_input_passes,
            "use_gpu": bool(getattr(c, "denoising_use_gpu", False)),
            "film_exposure": c.film_exposure}


def _output(scene):
    image = scene.render.image_settings
    view = scene.view_settings
    return {"file_format": image.file_format, "extension": scene.render.file_extension,
            "color_mode": image.color_mode, "color_depth": image.color_depth or "",
            "exr_codec": image.exr_codec, "quality": image.quality,
            "compression": image.compression, "film_transparent": scene.render.film_transparent,
            "view_transform": view.view_transform, "look": view.look,
            "exposure": view.exposure, "gamma": view.gamma,
            "display_device": scene.display_settings.display_device,
            "dither_intensity": scene.render.dither_intensity}


def _strips(scene):
    editor = scene.sequence_editor
    if editor is None:
        return []
    return list(compat.strips(editor, all_levels=True))


def _sound(strip):
    sound = strip.sound
    return {"name": strip.name, "filepath": sound.filepath if sound else "",
            "channel": strip.channel, "frame_start": strip.frame_final_start,
            "frame_end": strip.frame_final_end, "volume": strip.volume, "mute": strip.mute}
