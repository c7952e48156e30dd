"""Frames to video with ffmpeg: the plan's frames in order, at the scene's exact frame rate."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from tilefarm.errors import EncodeError
from tilefarm.plan import layout
from tilefarm.plan.formats import CODECS, Codec
from tilefarm.plan.model import Plan
from tilefarm.runtime.files import publish

Run = Callable[..., subprocess.CompletedProcess[bytes]]


def ffmpeg_executable() -> str:
    """ffmpeg from PATH, else the binary imageio-ffmpeg ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def frame_rate(fps: int, fps_base: float) -> Fraction:
    """The scene's rate as an exact rational: 24 / 1.001 -> 24000/1001, never a rounded float.

    Blender stores ``fps_base`` in float32 (1.001 reads back as 1.00100004673...), so
    the simplest fraction within float32 precision is the one the user meant.
    """
    base = Fraction(fps_base)
    for limit in (1, 10, 100, 1000, 10000, 100000):
        simple = base.limit_denominator(limit)
        if abs(simple - base) <= base * Fraction(1, 4_000_000):  # float32 has 24 bits
            return Fraction(fps) / simple
    return Fraction(fps) / base


def source_frames(plan: Plan, frames_root: Path) -> list[Path]:
    """The image of each planned frame the encoder reads (the preview where the format needs one)."""
    paths = []
    for frame in plan.frames:
        if plan.output.preview:
            path = layout.preview_path(frames_root, plan.job, frame)
        else:
            path = layout.frame_path(frames_root, plan.job, frame, plan.output.extension)
        if not path.is_file():
            raise EncodeError(f"frame {frame} is missing ({path.name}); the video would be short",
                              path=path)
        size = image_size(path)
        if size != (plan.width, plan.height):
            raise EncodeError(f"frame {frame} is {size[0]}x{size[1]} px; the job is "
                              f"{plan.width}x{plan.height} px", path=path)
        paths.append(path)
    return paths


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG or JPEG header, without decoding the image."""
    with path.open("rb") as handle:
        head = handle.read(26)
        if head[:8] == b"\x89PNG\r\n\x1a\n":
            width, height = struct.unpack(">II", head[16:24])
            return width, height
        if head[:2] == b"\xff\xd8":
            handle.seek(2)
            while True:
                marker = handle.read(4)
                if len(marker) < 4 or marker[0] != 0xFF:
                    break
                length = struct.unpack(">H", marker[2:4])[0]
                if 0xC0 <= marker[1] <= 0xCF and marker[1] not in (0xC4, 0xC8, 0xCC):
                    height, width = struct.unpack(">HH", handle.read(5)[1:5])
                    return width, height
                handle.seek(length - 2, os.SEEK_CUR)
    raise EncodeError("not a PNG or JPEG image", path=path)


def ffmpeg_argv(ffmpeg: str, pattern: Path, rate: Fraction, codec: Codec, crf: int, preset: str,
                out: Path, audio: Path | None = None, audio_start: float = 0.0,
                frames: int = 0) -> list[str]:
    """The exact ffmpeg command line (argv list, no shell)."""
    argv = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-framerate", f"{rate.numerator}/{rate.denominator}", "-start_number", "0",
            "-i", str(pattern)]
    if audio is not None:
        argv += ["-ss", f"{audio_start:.6f}", "-i", str(audio)]
    argv += ["-map", "0:v:0"]
    if audio is not None:
        argv += ["-map", "1:a:0"]
    # Odd sizes are padded to even (yuv420p needs it); BT.709 conversion, tagged as such.
    argv += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2,scale=out_color_matrix=bt709:out_range=tv",
             *codec.video_args(crf, preset), "-pix_fmt", codec.pixel_format,
             "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
             "-r", f"{rate.numerator}/{rate.denominator}", "-frames:v", str(frames)]
    if audio is not None:
        duration = frames * rate.denominator / rate.numerator
        argv += [*codec.audio, "-t", f"{duration:.6f}"]
    if codec.extension in (".mp4", ".mov"):
        argv += ["-movflags", "+faststart"]
    argv.append(str(out))
    return argv


def encode(plan: Plan, frames_root: Path, out: Path, *, audio: Path | None = None,
           audio_start: float = 0.0, run: Run = subprocess.run) -> Path:
    """Encode the job's frames into ``out/<job>/<job>.<ext>``; the file appears whole."""
    codec = CODECS.get(plan.video.codec)
    if codec is None:
        raise EncodeError(f"unknown codec {plan.video.codec!r}; use one of {', '.join(CODECS)}")
    sources = source_frames(plan, frames_root)
    rate = frame_rate(plan.fps, plan.fps_base)
    target = layout.video_path(out, plan.job, codec.extension)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tilefarm-encode-") as tmp:
        work = Path(tmp)
        suffix = sources[0].suffix
        # Consecutive names in plan order: a frame step of 3 still gives consecutive video frames.
        for index, source in enumerate(sources):
            (work / f"{index:07d}{suffix}").symlink_to(source.resolve())
        staged = work / f"video{codec.extension}"
        argv = ffmpeg_argv(ffmpeg_executable(), work / f"%07d{suffix}", rate, codec,
                           plan.video.crf, plan.video.preset, staged, audio, audio_start,
                           len(sources))
        proc = run(argv, capture_output=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not staged.is_file():
            message = " ".join(proc.stderr.decode("utf-8", "replace").split())[-400:]
            raise EncodeError(f"ffmpeg failed with code {proc.returncode}: {message}", path=target)
        publish(staged, target)
    return target
