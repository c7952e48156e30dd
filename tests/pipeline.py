"""Runs splitter -> renderer -> merger on a pfs tree in this process, for tests.

The stage functions are the ones the stage mains call; one warm Blender
session serves the renderer, another the merger, as in a batching worker.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import OpenEXR
from tilefarm.merger.merge import merge_frame
from tilefarm.renderer.render import RenderOptions, render_task
from tilefarm.splitter.intake import open_job
from tilefarm.splitter.split import plan_job, write_plan

from tests.conftest import BUILD_SCRIPT
from tilefarm.blender.runner import BlenderRunner, BlenderSession
from tilefarm.plan import layout
from tilefarm.plan.model import Plan, read_plan, read_task
from tilefarm.plan.settings import JobSettings


@dataclass
class Run:
    plan: Plan
    pfs: Path

    def frame(self, frame: int) -> Path:
        return layout.frame_path(self.pfs / "merger", self.plan.job, frame, self.plan.output.extension)


def stage_in(pfs: Path, name: str) -> None:
    """Pachyderm's next stage sees this stage's output as an input named after it."""
    shutil.move(pfs / "out", pfs / name)


def run_pipeline(source: Path, pfs: Path, settings: JobSettings, *, threads: int = 2) -> Run:
    blends = pfs / "blends"
    blends.mkdir(parents=True)
    entry = blends / source.name
    (shutil.copytree if source.is_dir() else shutil.copy)(source, entry)
    runner = BlenderRunner(timeout=600)
    plan = plan_job(open_job(entry), settings, lambda series: runner)
    write_plan(plan, pfs / "out")
    stage_in(pfs, "splitter")
    with BlenderSession(runner, label="test-renderer") as session:
        for task_file in sorted((pfs / "splitter" / plan.job / "tasks").iterdir()):
            manifest = read_task(task_file)
            render_task(manifest, blends / manifest.blend, pfs / "out", session,
                        RenderOptions(threads=threads))
    stage_in(pfs, "renderer")
    plan = read_plan(layout.plan_path(pfs / "splitter", plan.job))
    with BlenderSession(runner, label="test-merger") as session:
        for frame in plan.frames:
            merge_frame(plan, frame, pfs / "renderer", blends / plan.blend, pfs / "out", session)
    stage_in(pfs, "merger")
    return Run(plan, pfs)


def reference(blend: Path, out: Path, runner: BlenderRunner | None = None) -> dict[int, Path]:
    """Blender's own animation render of ``blend`` (by ``runner``'s Blender; default 4.5)."""
    result = (runner or BlenderRunner(timeout=600)).run_script(BUILD_SCRIPT, {"reference": str(blend), "out": str(out)}, label="reference")
    return {int(frame): Path(path) for frame, path in result.items()}


def references(jobs: list[tuple[Path, Path]],
               runner: BlenderRunner | None = None) -> list[dict[int, Path]]:
    """``reference`` of each (blend, out) pair, all in one Blender (one start-up)."""
    result = (runner or BlenderRunner(timeout=1200)).run_script(
        BUILD_SCRIPT, {"references": [[str(b), str(o)] for b, o in jobs]}, label="references")
    return [{int(frame): Path(path) for frame, path in one.items()} for one in result]


def pixels(path: Path) -> dict[str, np.ndarray]:
    """Decoded pixels of a frame: every channel of every EXR part (named ``<part>:<channel>``
    in a multi-part file, as Blender 5.x writes multilayer EXR), or the image's array."""
    if path.suffix == ".exr":
        with OpenEXR.File(str(path), separate_channels=True) as handle:
            many = len(handle.parts) > 1
            return {f"{index}:{name}" if many else name: ch.pixels.copy()
                    for index, part in enumerate(handle.parts)
                    for name, ch in part.channels.items()}
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return {"pixels": image}


def assert_identical(ours: Path, theirs: Path) -> None:
    a, b = pixels(ours), pixels(theirs)
    assert sorted(a) == sorted(b), (sorted(a), sorted(b))
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        if not np.array_equal(a[name], b[name], equal_nan=True):
            diff = np.abs(a[name].astype(np.float64) - b[name].astype(np.float64))
            raise AssertionError(f"{ours.name} {name}: {int((diff > 0).sum())} pixels differ, "
                                 f"max {diff.max()}")


# How a frame is compared with Blender's own: by its decoded pixels where the suite's decoders
# (OpenCV, OpenEXR) read the format (PNG, JPEG, TIFF and EXR carry render times and dates,
# which differ between two of Blender's own renders), else byte for byte, less the header
# fields that differ between two of Blender's own renders: Cineon's file name and creation
# date and time (cineonlib.cc: the name written to, local time), DPX's file name (OpenImageIO
# stores the path written to).
DECODED = {".png", ".jpg", ".exr", ".tif"}
VOLATILE_BYTES = {".cin": [(32, 156)], ".dpx": [(36, 136)]}


def assert_same_frame(ours: Path, theirs: Path) -> None:
    """``ours`` holds what Blender's own frame ``theirs`` holds (see DECODED)."""
    assert ours.suffix == theirs.suffix, (ours, theirs)
    if ours.suffix in DECODED:
        assert_identical(ours, theirs)
        return
    a, b = bytearray(ours.read_bytes()), bytearray(theirs.read_bytes())
    for start, end in VOLATILE_BYTES.get(ours.suffix, []):
        a[start:end] = b[start:end] = bytes(end - start)
    if a != b:
        differ = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
        raise AssertionError(f"{ours.name}: {differ} of {len(b)} bytes differ from Blender's")

