"""Renders the frames of one task.

Tiles (``mode: tiles``) are raw 32-bit multilayer EXR (DESIGN.md point 1):
compositing, stamps and render denoising off, every pass the view layers
produce kept, plus the denoising data passes when the scene denoises, so the
merger can run the scene's output stage once on the whole frame.

A whole-frame task (``mode: final``) has nothing to merge: it renders exactly as
Blender's own animation render does, output stage included, into the final format.
"""

import os
import resource
import time

import bpy
import compat
from boot import ReportedError, refuse_freestyle_script
import file_outputs
from compose import render_frame, save_preview
from protocol import GPU_DEVICES, RenderRequest


def prepare(scene, request: RenderRequest) -> None:
    """Scene settings shared by every frame and tile of this blend."""
    refuse_freestyle_script(scene, request.blend)
    r = scene.render
    # Tiles of a frame reuse the BVH (DESIGN.md point 5). Not with several view layers:
    # Blender 4.5 then renders a later layer with the wrong sample count when layers
    # override samples differently (measured: tests/test_outputs.py, multilayer scene).
    r.use_persistent_data = sum(1 for layer in scene.view_layers if layer.use) == 1
    if request.mode == "final":
        # use_file_extension stays as the scene has it: its File Output nodes obey it too.
        compat.set_file_format(r.image_settings, request.file_format)
    else:
        r.use_file_extension = False
        r.use_compositing = False
        r.use_sequencer = False
        r.use_stamp = False
        image = r.image_settings
        compat.set_file_format(image, "OPEN_EXR_MULTILAYER")
        compat.single_part_exr(image)  # the merger reads one part holding every pass
        image.color_depth = "32"
        image.exr_codec = "ZIP"  # lossless
    threads = request.threads
    r.threads_mode = "FIXED" if threads else "AUTO"
    if threads:
        r.threads = threads
    if r.engine == "CYCLES":
        if request.mode != "final":
            if request.denoise:
                for layer in scene.view_layers:
                    layer.cycles.denoising_store_passes = True
            scene.cycles.use_denoising = False
        _device(scene, request.device)


def _device(scene, device):
    if device == "CPU":
        scene.cycles.device = "CPU"
        return
    if device not in GPU_DEVICES:
        raise ReportedError("RenderError", f"device {device!r} is not known; use CPU or one of "
                            f"{', '.join(GPU_DEVICES)}")
    prefs = bpy.context.preferences.addons["cycles"].preferences
    try:
        prefs.compute_device_type = device
    except TypeError:
        raise ReportedError("RenderError", f"this Blender has no {device} support; use CPU")
    prefs.get_devices()
    found = [d for d in prefs.devices if d.type == device]
    if not found:
        raise ReportedError("RenderError", f"no {device} device is present on this machine; "
                            "use --device CPU")
    for d in prefs.devices:
        d.use = d.type == device
    scene.cycles.device = "GPU"


def render_task(scene, request: RenderRequest) -> list:
    """Render every frame of the task; return one record per tile written."""
    r = scene.render
    region = request.region
    if region is None:
        r.use_border = False
        r.use_crop_to_border = False
        rendered = {"x0": 0, "y0": 0, "x1": request.width, "y1": request.height}
    else:
        r.use_border = True
        r.use_crop_to_border = True
        r.border_min_x, r.border_max_x = region.min_x, region.max_x
        r.border_min_y, r.border_max_y = region.min_y, region.max_y
        rendered = {"x0": region.x0, "y0": region.y0, "x1": region.x1, "y1": region.y1}
    records = []
    for frame, target, preview, outputs in zip(request.frames, request.targets, request.previews,
                                               request.file_outputs):
        scene.frame_set(frame)
        stem, ext = os.path.splitext(target)
        tmp = f"{stem}.part{ext}"
        if request.mode == "final":
            file_outputs.redirect(compat.compositor_tree(scene), outputs)
        started = time.monotonic()
        render_frame(scene, frame, tmp)
        seconds = time.monotonic() - started
        if not os.path.exists(tmp):
            raise ReportedError("RenderError", f"Blender wrote no image for frame {frame}",
                                request.blend)
        if preview:
            save_preview(scene, preview + ".part")
            os.replace(preview + ".part", preview)
        os.replace(tmp, target)
        records.append({
            "frame": frame,
            "file": target,
            "rendered": rendered,
            "render_seconds": round(seconds, 4),
            # ru_maxrss is in KiB on Linux: the process's peak so far.
            "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "blender_version": bpy.app.version_string,
            "samples": scene.cycles.samples if r.engine == "CYCLES" else 0,
        })
    return records
