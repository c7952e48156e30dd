"""Registry of video codecs the encoder can write: ffmpeg arguments and container."""

from __future__ import annotations

from dataclasses import dataclass


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
