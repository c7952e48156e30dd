"""Benchmark: how close ``tilefarm estimate`` comes to the render it predicts.

Builds scenes whose frames vary (bpy, in a child process), then for each: runs ``tilefarm
estimate SCENE --workers 1 --json`` (it renders its probes), then ``tilefarm render SCENE
--workers 1`` into a fresh output, and compares:

- the predicted work (``cpu_seconds``: every render task, merge and encode) with the
  render's measured datum seconds (the store's ``started``/``finished``);
- the predicted one-machine makespan with the render's wall time;
- the probes' cost with the render's wall time.

    .venv/bin/python bench/estimate.py [--frames 24] [--tiles 1x1] [--markdown]

Scenes (320x180, Cycles on the CPU): ``steady`` (the demo scene: every frame alike),
``dolly`` (the camera moves in until a glass sphere fills the frame), ``entering`` (a glass
sphere enters the frame halfway), ``blur`` (motion blur; the cube moves fast on a third of
the frames only).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TILEFARM = Path(sys.executable).parent / "tilefarm"

SCENES = r'''
import sys, bpy
out, frames = sys.argv[1], int(sys.argv[2])

def base():
    bpy.ops.wm.read_factory_settings(use_empty=False)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 24
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = 320, 180
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, frames
    scene.render.image_settings.file_format = "PNG"
    return scene

def glass_sphere(location):
    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.2, location=location, segments=64, ring_count=32)
    sphere = bpy.context.object
    material = bpy.data.materials.new("glass")
    material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    glass = nodes.new("ShaderNodeBsdfGlass")
    output = nodes.new("ShaderNodeOutputMaterial")
    material.node_tree.links.new(glass.outputs[0], output.inputs[0])
    sphere.data.materials.append(material)
    return sphere

def key(obj, frame, location):
    obj.location = location
    obj.keyframe_insert("location", frame=frame)

scene = base()  # dolly: far to close on a glass sphere
camera = scene.camera
glass_sphere((0, 0, 0))
scene.cycles.max_bounces = 24
scene.cycles.transmission_bounces = 24
key(camera, 1, (0, -30, 0))
key(camera, frames, (0, -2.6, 0))
camera.rotation_euler = (1.5708, 0, 0)
bpy.ops.wm.save_as_mainfile(filepath=f"{out}/dolly.blend")

scene = base()  # entering: a glass sphere crosses into the frame halfway
camera = scene.camera
camera.location, camera.rotation_euler = (0, -10, 0), (1.5708, 0, 0)
scene.cycles.max_bounces = 24
scene.cycles.transmission_bounces = 24
sphere = glass_sphere((12, 0, 0))
key(sphere, 1, (14, 0, 0))
key(sphere, frames // 2, (9, 0, 0))
key(sphere, frames, (0, 0, 0))
bpy.ops.wm.save_as_mainfile(filepath=f"{out}/entering.blend")

scene = base()  # blur: the cube moves fast on a third of the frames
scene.render.use_motion_blur = True
cube = bpy.data.objects["Cube"]
third = max(2, frames // 3)
key(cube, 1, (0, 0, 0))
key(cube, third, (0, 0, 0))
key(cube, 2 * third, (0, 0, 6))
key(cube, frames, (0, 0, 6))
bpy.ops.wm.save_as_mainfile(filepath=f"{out}/blur.blend")
'''


def datum_seconds(store: Path) -> float:
    db = sqlite3.connect(store / "meta.sqlite")
    try:
        return float(db.execute("SELECT SUM(finished - started) FROM datums WHERE state='success' "
                                "AND pipeline != 'splitter'").fetchone()[0] or 0.0)
    finally:
        db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--tiles", default="1x1")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tilefarm-estimate-bench-") as tmp:
        work = Path(tmp)
        script = work / "scenes.py"
        script.write_text(SCENES)
        subprocess.run([sys.executable, str(script), str(work), str(args.frames)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([str(TILEFARM), "demo", str(work / "steady.blend"), "--frames",
                        str(args.frames), "--resolution", "320x180", "--samples", "16"],
                       check=True, stdout=subprocess.DEVNULL)
        env = {k: v for k, v in os.environ.items() if k != "TILEFARM_ROOT"}
        rows = []
        for name in ("steady", "dolly", "entering", "blur"):
            blend = work / f"{name}.blend"
            done = subprocess.run([str(TILEFARM), "estimate", str(blend), "--tiles", args.tiles,
                                   "--workers", "1", "--json"], capture_output=True, text=True,
                                  check=True, env=env)
            guess = json.loads(done.stdout)
            out = work / f"out-{name}"
            start = time.perf_counter()
            subprocess.run([str(TILEFARM), "render", str(blend), "--out", str(out), "--tiles",
                            args.tiles, "--workers", "1"], check=True, stdout=subprocess.DEVNULL,
                           env=env)
            wall = time.perf_counter() - start
            work_s = datum_seconds(out / ".tilefarm")
            one = guess["workers"][0]
            rows.append((name, guess, work_s, wall, one))
            print(f"{name}: predicted work {guess['cpu_seconds']:.1f} s, measured {work_s:.1f} s; "
                  f"makespan {one['makespan_s']:.1f} s ({one['makespan_low_s']:.1f}-"
                  f"{one['makespan_high_s']:.1f}), measured {wall:.1f} s; probes "
                  f"{guess['probe_seconds']:.1f} s", flush=True)
    print(f"\n{args.frames} frames at 320x180, tiles {args.tiles}, one machine (--workers 1):")
    header = ("| scene | s/frame min-max (frames) | predicted work | measured work | error | "
              "predicted makespan (range) | measured wall | error | probes / render |")
    print(header if args.markdown else header.replace("|", " ").strip())
    if args.markdown:
        print("|" + "---|" * 9)
    for name, guess, work_s, wall, one in rows:
        spf = guess["seconds_per_frame"]
        cells = [name, f"{spf['min']:.2f}-{spf['max']:.2f} ({spf['min_frame']}, "
                 f"{spf['max_frame']})", f"{guess['cpu_seconds']:.1f} s", f"{work_s:.1f} s",
                 f"{(guess['cpu_seconds'] / work_s - 1) * 100:+.0f} %",
                 f"{one['makespan_s']:.1f} s ({one['makespan_low_s']:.1f}-"
                 f"{one['makespan_high_s']:.1f})", f"{wall:.1f} s",
                 f"{(one['makespan_s'] / wall - 1) * 100:+.0f} %",
                 f"{guess['probe_seconds'] / wall * 100:.0f} %"]
        print(("| " + " | ".join(cells) + " |") if args.markdown else "  ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
