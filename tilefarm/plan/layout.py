"""Where each stage's files live in its output repo (DESIGN.md, "Repos and data layout").

Frames and tiles are named by zero-padded numbers; nothing parses these names
back into geometry (the manifests say where a tile goes).
"""

from __future__ import annotations

from pathlib import Path


def plan_path(root: Path, job: str) -> Path:
    return root / job / "plan.json"


def task_dir(root: Path, job: str) -> Path:
    return root / job / "tasks"


def task_path(root: Path, job: str, task_id: str) -> Path:
    return task_dir(root, job) / f"{task_id}.json"


def frame_dir_name(frame: int) -> str:
    return f"{frame:06d}"


def tile_dir(root: Path, job: str, frame: int) -> Path:
    return root / job / "tiles" / frame_dir_name(frame)


def tile_path(root: Path, job: str, frame: int, tile: int) -> Path:
    """A rendered tile: one path per (frame, tile), so no two tasks write the same file."""
    return tile_dir(root, job, frame) / f"t{tile:04d}.exr"


def tile_meta_path(root: Path, job: str, frame: int, tile: int) -> Path:
    return tile_dir(root, job, frame) / f"t{tile:04d}.json"


def final_frame_path(root: Path, job: str, frame: int, extension: str) -> Path:
    """A final frame a whole-frame task rendered directly, beside its metadata."""
    return tile_dir(root, job, frame) / f"frame{extension}"


def final_preview_path(root: Path, job: str, frame: int) -> Path:
    return tile_dir(root, job, frame) / "preview.png"


def final_file_output_dir(root: Path, job: str, frame: int) -> Path:
    """The files a whole-frame task's File Output nodes wrote, as the merger publishes them."""
    return tile_dir(root, job, frame) / "file_output"


def file_output_dir(root: Path, job: str) -> Path:
    """Compositor File Output nodes' files: ``<node name>/<the name Blender gives>``."""
    return root / job / "file_output"


def frame_path(root: Path, job: str, frame: int, extension: str) -> Path:
    return root / job / "frames" / f"{frame_dir_name(frame)}{extension}"


def preview_path(root: Path, job: str, frame: int) -> Path:
    """The 8-bit display-referred PNG the encoder reads where the final format is not PNG/JPEG."""
    return root / job / "previews" / f"{frame_dir_name(frame)}.png"


def video_path(root: Path, job: str, extension: str = ".mp4") -> Path:
    return root / job / f"{job}{extension}"
