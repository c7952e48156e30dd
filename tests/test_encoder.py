"""The encoder on real merged frames: decoded with PyAV, compared with Blender's own render."""

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from tilefarm.encoder.encode import ffmpeg_argv, frame_rate

from tests.conftest import Scenes, assert_one_line_error, run_cli
from tests.pipeline import Run, reference, run_pipeline
from tilefarm.plan.formats import CODECS
from tilefarm.plan.settings import JobSettings

pytestmark = pytest.mark.blender


def encode(run: Run) -> "av.container.InputContainer":
    proc = run_cli("-m", "tilefarm.encoder", "--pfs-root", str(run.pfs), env={"merger": ""})
    assert proc.returncode == 0, proc.stderr
    videos = list((run.pfs / "out" / run.plan.job).iterdir())
    assert len(videos) == 1 and videos[0].stem == run.plan.job
    return av.open(str(videos[0]))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.fixture(scope="module")
def sound_run(scenes: Scenes, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_pipeline(scenes["sound_video"].parent, tmp_path_factory.mktemp("sv") / "pfs",
                        JobSettings(tiles="2x2", chunk=6))


def test_h264_at_the_scene_rate_with_sound(sound_run: Run, scenes: Scenes, tmp_path: Path) -> None:
    with encode(sound_run) as video:
        stream = video.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == Fraction(25)
        assert (stream.width, stream.height) == (98, 62)  # 97x61 padded to even
        assert len(video.streams.audio) == 1
        decoded = [frame.to_ndarray(format="rgb24") for frame in video.decode(video=0)]
    assert len(decoded) == 12
    expected = reference(scenes["sound_video"], tmp_path / "ref")
    for frame, image in zip(sorted(expected), decoded):
        blender = cv2.cvtColor(cv2.imread(str(expected[frame])), cv2.COLOR_BGR2RGB)
        assert psnr(image[:61, :97], blender) > 30, frame


def test_audio_length_follows_the_video(sound_run: Run) -> None:
    with encode(sound_run) as video:
        audio = video.streams.audio[0]
        samples = sum(frame.samples for frame in video.decode(audio=0))
    seconds = samples / audio.rate
    assert abs(seconds - 12 / 25) < 0.05


def test_missing_frame_is_named(sound_run: Run, tmp_path: Path) -> None:
    pfs = tmp_path / "pfs"
    shutil.copytree(sound_run.pfs, pfs, symlinks=True, ignore=shutil.ignore_patterns("out"))
    (pfs / "merger" / "sound_video" / "frames" / "000007.png").unlink()
    proc = run_cli("-m", "tilefarm.encoder", "--pfs-root", str(pfs), env={"merger": ""})
    assert_one_line_error(proc, "000007.png", "frame 7 is missing")
    assert not (pfs / "out" / "sound_video" / "sound_video.mp4").exists()


def test_wrong_size_is_named(sound_run: Run, tmp_path: Path) -> None:
    pfs = tmp_path / "pfs"
    shutil.copytree(sound_run.pfs, pfs, symlinks=True, ignore=shutil.ignore_patterns("out"))
    cv2.imwrite(str(pfs / "merger" / "sound_video" / "frames" / "000003.png"),
                np.zeros((10, 20, 3), np.uint8))
    proc = run_cli("-m", "tilefarm.encoder", "--pfs-root", str(pfs), env={"merger": ""})
    assert_one_line_error(proc, "000003.png", "frame 3 is 20x10 px; the job is 97x61 px")


def test_ntsc_rate_is_exact_and_frame_step_is_consecutive(scenes: Scenes, tmp_path: Path) -> None:
    run = run_pipeline(scenes["ntsc_rate"], tmp_path / "a", JobSettings())
    with encode(run) as video:
        stream = video.streams.video[0]
        assert stream.average_rate == Fraction(24000, 1001)
        frames = list(video.decode(video=0))
        assert len(frames) == 3
        assert {frame.duration * stream.time_base for frame in frames} == {Fraction(1001, 24000)}
        assert len(video.streams.audio) == 0
    run = run_pipeline(scenes["frame_step"], tmp_path / "b", JobSettings())
    with encode(run) as video:
        assert video.streams.video[0].average_rate == 24
        assert sum(1 for _ in video.decode(video=0)) == 3  # frames 1, 4, 7


def test_exr_frames_encode_from_previews(scenes: Scenes, tmp_path: Path) -> None:
    run = run_pipeline(scenes["transparent_exr"], tmp_path / "pfs", JobSettings(tiles="2x1"))
    assert run.plan.output.preview
    with encode(run) as video:
        assert sum(1 for _ in video.decode(video=0)) == 2


def test_prores_through_job_settings(scenes: Scenes, tmp_path: Path) -> None:
    job = tmp_path / "prores_job"
    job.mkdir()
    shutil.copy(scenes["ntsc_rate"], job / "shot.blend")
    (job / "tilefarm.json").write_text(json.dumps({"video": {"codec": "prores"}}))
    run = run_pipeline(job, tmp_path / "pfs", JobSettings())
    with encode(run) as video:
        assert video.streams.video[0].codec_context.name == "prores"
        assert sum(1 for _ in video.decode(video=0)) == 3


def test_rate_and_argv_are_exact() -> None:
    assert frame_rate(24, 1.001) == Fraction(24000, 1001)
    assert frame_rate(24, float(np.float32(1.001))) == Fraction(24000, 1001)  # as Blender stores it
    assert frame_rate(60, float(np.float32(1.2))) == 50
    assert frame_rate(30, 1.001) == Fraction(30000, 1001)
    assert frame_rate(25, 1.0) == 25
    argv = ffmpeg_argv("ffmpeg", Path("/t/%07d.png"), Fraction(24000, 1001), CODECS["h264"], 18,
                       "medium", Path("/t/out.mp4"), frames=5)
    assert argv[argv.index("-framerate") + 1] == "24000/1001"
    assert argv[argv.index("-pix_fmt") + 1] == "yuv420p"
    assert "+faststart" in argv and "-crf" in argv and "shell" not in argv
