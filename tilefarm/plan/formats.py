"""Registries of what a job can output: final frame formats (Blender's format name, file
extension, and whether the encoder can read it directly or needs the merger's 8-bit
preview) and video codecs (ffmpeg arguments and container). Job settings are checked
against these registries, so the settings schema does not repeat them."""

from __future__ import annotations

from dataclasses import dataclass

from tilefarm.errors import SettingsError


@dataclass(frozen=True)
class FrameFormat:
    blender: str
    extension: str  # what Blender appends (BKE_image_path_ext_from_imformat)
    encodable: bool  # an 8-bit display-referred image ffmpeg can read as it is


# Every still format Blender 4.5-5.2 writes (measured on 4.5.15, 5.0.1, 5.2.4: AVIF is
# 5.2's). Frames are written by Blender's own writer with the scene's image settings (colour
# depth, codec, quality), so each comes out as Blender writes it; only PNG and JPEG frames go
# to the encoder as they are, every other format gets the merger's 8-bit preview beside it
# (deep, float, log or not readable by every ffmpeg).
FORMATS: dict[str, FrameFormat] = {f.blender: f for f in (
    FrameFormat("PNG", ".png", True),
    FrameFormat("JPEG", ".jpg", True),
    FrameFormat("JPEG2000", ".jp2", False),  # ".j2c" with the J2K codec: the scene's own
    FrameFormat("BMP", ".bmp", False),
    FrameFormat("IRIS", ".rgb", False),
    FrameFormat("TARGA", ".tga", False),
    FrameFormat("TARGA_RAW", ".tga", False),
    FrameFormat("CINEON", ".cin", False),
    FrameFormat("DPX", ".dpx", False),
    FrameFormat("OPEN_EXR", ".exr", False),
    FrameFormat("OPEN_EXR_MULTILAYER", ".exr", False),
    FrameFormat("HDR", ".hdr", False),
    FrameFormat("TIFF", ".tif", False),
    FrameFormat("WEBP", ".webp", False),
    FrameFormat("AVIF", ".avif", False),  # Blender 5.2 and later
)}

# Movie formats: a scene set to write one gets frames in this format, and the encoder makes
# the video; the plan says so in a note (STYLE.md 14: no silent fallbacks).
MOVIE_FORMATS = ("FFMPEG", "AVI_JPEG", "AVI_RAW")
MOVIE_FRAMES = FORMATS["PNG"]


def frame_format(blender_format: str, where: str = "output_format") -> FrameFormat:
    """The registry entry of ``blender_format``; a movie format gives PNG frames (see
    ``movie_note``); any other unknown format is refused, naming it and what is allowed."""
    if blender_format in MOVIE_FORMATS:
        return MOVIE_FRAMES
    found = FORMATS.get(blender_format)
    if found is None:
        raise SettingsError(f"output format {blender_format!r} is not one tilefarm writes "
                            f"exactly; use one of {', '.join(FORMATS)}", path=where)
    return found


def movie_note(blender_format: str) -> str | None:
    """The plan's one line where the scene writes a movie, which tilefarm does not."""
    if blender_format not in MOVIE_FORMATS:
        return None
    return (f"the scene writes a movie ({blender_format}); tilefarm writes "
            f"{MOVIE_FRAMES.blender} frames ({MOVIE_FRAMES.extension}) instead, and the "
            "encoder makes the video from them")


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
