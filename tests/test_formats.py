"""Every still format Blender writes comes out as Blender writes it (issue 26): its own
extension, the scene's settings (colour depth, codec, quality), the same image, tiled. A
movie output is said out loud: frames plus the encoder's video. Nothing becomes PNG
silently, and a format tilefarm does not know is refused before rendering."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from tests.conftest import Scenes, run_cli
from tests.factories import make_facts
from tests.pipeline import assert_same_frame, references
from tilefarm.errors import SceneError, SettingsError
from tilefarm.plan.facts import Output, SceneFacts
from tilefarm.plan.formats import FORMATS, frame_format
from tilefarm.plan.planner import make_plan
from tilefarm.plan.settings import JobSettings

# Format -> the extension Blender gives it with the fixture's settings (JPEG 2000 with the
# J2K codec writes a raw codestream, .j2c).
EXTENSIONS = {
    "PNG": ".png", "JPEG": ".jpg", "JPEG2000": ".j2c", "BMP": ".bmp", "IRIS": ".rgb",
    "TARGA": ".tga", "TARGA_RAW": ".tga", "CINEON": ".cin", "DPX": ".dpx",
    "OPEN_EXR": ".exr", "HDR": ".hdr", "TIFF": ".tif", "WEBP": ".webp",
}


def _facts(file_format: str, extension: str) -> SceneFacts:
    output = Output(file_format, extension, "RGB", "8", "ZIP", 90, 15, False, "AgX", "None",
                    0.0, 1.0, "sRGB", 1.0)
    return make_facts(output=output)


def test_the_scene_format_and_extension_are_kept() -> None:
    for name, ext in {"HDR": ".hdr", "WEBP": ".webp", "TARGA": ".tga", "JPEG2000": ".j2c",
                      "AVIF": ".avif"}.items():
        plan = make_plan("shot", "shot.blend", _facts(name, ext), JobSettings())
        assert (plan.output.file_format, plan.output.extension) == (name, ext)
        assert plan.output.preview  # the encoder reads an 8-bit preview, not these
        assert plan.notes == []


def test_a_movie_output_gives_frames_and_says_so() -> None:
    plan = make_plan("shot", "shot.blend", _facts("FFMPEG", ".png"), JobSettings())
    assert (plan.output.file_format, plan.output.extension) == ("PNG", ".png")
    assert plan.notes == ["the scene writes a movie (FFMPEG); tilefarm writes PNG frames (.png) "
                          "instead, and the encoder makes the video from them"]


def test_a_format_tilefarm_does_not_know_is_refused() -> None:
    with pytest.raises(SceneError, match="writes DDS frames, a format tilefarm cannot write "
                                         "exactly; set the output to one of PNG, JPEG"):
        make_plan("shot", "shot.blend", _facts("DDS", ".dds"), JobSettings())
    with pytest.raises(SettingsError, match="'DDS' is not one tilefarm writes exactly"):
        frame_format("DDS")
    assert frame_format("FFMPEG") == FORMATS["PNG"]


@pytest.mark.blender
def test_every_still_format_is_written_as_blender_writes_it(scenes: Scenes,
                                                             tmp_path: Path) -> None:
    """Each format at 2x2: tiles merged, then the scene's own writer on the whole frame."""
    jobs = {name: scenes[f"format_{name.lower()}"] for name in EXTENSIONS}
    out = tmp_path / "out"
    proc = run_cli("render", *map(str, jobs.values()), "--tiles", "2x2", "--out", str(out),
                   timeout=1500)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rendering whole frames" not in proc.stdout
    theirs = references([(blend, tmp_path / "ref" / blend.stem) for blend in jobs.values()])
    for (name, blend), their in zip(jobs.items(), theirs):
        job = blend.stem
        frames = sorted((out / job / "frames").iterdir())
        assert [p.name for p in frames] == [f"000001{EXTENSIONS[name]}"], name
        assert_same_frame(frames[0], their[1])
        with av.open(str(out / job / f"{job}.mp4")) as video:  # made from the 8-bit preview
            assert video.streams.video[0].frames == 1


@pytest.mark.blender
def test_a_movie_scene_renders_frames_and_the_video(scenes: Scenes, tmp_path: Path) -> None:
    blend = scenes["movie_output"]
    proc = run_cli("plan", str(blend))
    assert proc.returncode == 0, proc.stderr
    assert any("writes a movie (FFMPEG)" in note for note in json.loads(proc.stdout)["notes"])
    out = tmp_path / "out"
    proc = run_cli("render", str(blend), "--tiles", "2x2", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("movie_output: note: the scene writes a movie (FFMPEG); tilefarm writes PNG frames "
            "(.png) instead, and the encoder makes the video from them") in proc.stdout
    assert sorted(p.name for p in (out / "movie_output" / "frames").iterdir()) == [
        "000001.png", "000002.png"]
    with av.open(str(out / "movie_output" / "movie_output.mp4")) as video:
        assert video.streams.video[0].frames == 2
