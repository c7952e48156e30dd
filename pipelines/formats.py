"""Registry of final frame formats: Blender's format name, file extension, and whether
the encoder can read it directly or needs the merger's 8-bit preview."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameFormat:
    blender: str
    extension: str
    encodable: bool  # an 8-bit display-referred image ffmpeg can read as it is


FORMATS: dict[str, FrameFormat] = {f.blender: f for f in (
    FrameFormat("PNG", ".png", True),
    FrameFormat("JPEG", ".jpg", True),
    FrameFormat("OPEN_EXR", ".exr", False),
    FrameFormat("OPEN_EXR_MULTILAYER", ".exr", False),
    FrameFormat("TIFF", ".tif", False),
)}

# Scenes set to write a movie (FFMPEG) or an uncommon format get PNG frames; the
# encoder makes the video.
FALLBACK = FORMATS["PNG"]


def frame_format(blender_format: str) -> FrameFormat:
    return FORMATS.get(blender_format, FALLBACK)
