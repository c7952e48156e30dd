"""Registries of what a job can output: final frame formats (Blender's format name, file
extension, and whether the encoder can read it directly or needs the merger's 8-bit
preview) and video codecs (ffmpeg arguments and container). Job settings are checked
against these registries, so the settings schema does not repeat them."""

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


# -- video codecs the encoder can write --------------------------------------------------

@dataclass(frozen=True)
class Codec:
    name: str
    extension: str
    pixel_format: str
    audio: list[str]

    def video_args(self, crf: int, preset: str) -> list[str]:
        return CODEC_ARGS[self.name](crf, preset)


CODEC_ARGS = {
    "h264": lambda crf, preset: ["-c:v", "libx264", "-preset", preset, "-crf", str(crf)],
    # ProRes 422 HQ; quality is the profile's, so crf and preset do not apply.
    "prores": lambda crf, preset: ["-c:v", "prores_ks", "-profile:v", "3"],
}

CODECS: dict[str, Codec] = {c.name: c for c in (
    Codec("h264", ".mp4", "yuv420p", ["-c:a", "aac", "-b:a", "192k"]),
    Codec("prores", ".mov", "yuv422p10le", ["-c:a", "pcm_s16le"]),
)}
