"""Template jobs (issue 17): one .blend, many personalised renders, a video each. Every
variant's frames equal Blender's own render of the template with the same substitutions
made by hand and saved as a copy; bad substitutions are refused naming variant and key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import pytest

from tests.conftest import BUILD_ASSETS, Assets, assert_one_line_error, run_cli
from tests.pachd_server import FakePachd
from tests.pipeline import assert_identical, reference
from tilefarm.blender.runner import BlenderRunner

pytestmark = pytest.mark.blender

VARIANTS = {
    "amy": {"text": {"Title": "AMY REED"}, "images": {"Photo": "photos/amy.png"},
            "values": {"tint": 0.35}, "video": {"audio": "music/amy.wav"}},
    "bob": {"text": {"Title": "BOB CHEN"}, "images": {"Photo": "photos/bob.png"}},
}


@pytest.fixture
def template(assets: Assets, tmp_path: Path) -> Path:
    job = tmp_path / "card"
    shutil.copytree(assets.job("template"), job)
    (job / "tilefarm.json").write_text(json.dumps({"variants": VARIANTS}))
    return job


def render(job: Path, out: Path, *flags: str) -> str:
    proc = run_cli("render", str(job), "--tiles", "2x2", "--out", str(out), *flags)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def by_hand(job: Path, name: str, tmp_path: Path) -> dict[int, Path]:
    """Blender's own render of the template with the variant's substitutions, saved as a copy."""
    variant = VARIANTS[name]
    copy = job / f"by-hand-{name}.blend"
    BlenderRunner(timeout=300).run_script(BUILD_ASSETS, {
        "substitute": str(job / "shot.blend"), "target": str(copy),
        "text": variant["text"], "values": variant.get("values", {}),
        "images": {k: f"//{v}" for k, v in variant["images"].items()}}, label="by-hand")
    try:
        return reference(copy, tmp_path / f"ref-{name}")
    finally:
        copy.unlink()


def test_each_variant_is_a_job_matching_blender_with_its_own_video(template: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert render(template, out).startswith("2 of 2 jobs done; 24 processed")
    for name in VARIANTS:
        for frame, path in by_hand(template, name, tmp_path).items():
            assert_identical(out / f"card-{name}" / "frames" / f"{frame:06d}.png", path)
    with av.open(str(out / "card-amy" / "card-amy.mp4")) as video:
        assert len(video.streams.audio) == 1 and video.streams.video[0].frames == 2
    with av.open(str(out / "card-bob" / "card-bob.mp4")) as video:
        assert len(video.streams.audio) == 0  # the template has no sound of its own
    # Unchanged: nothing renders again. One variant changed: it alone renders.
    assert render(template, out).startswith("2 of 2 jobs done; 0 processed")
    changed = dict(VARIANTS, bob={**VARIANTS["bob"], "text": {"Title": "BOB C."}})
    (template / "tilefarm.json").write_text(json.dumps({"variants": changed}))
    assert render(template, out).startswith("2 of 2 jobs done; 12 processed")
    assert not any(p.name.startswith(".tilefarm-variant") for p in template.iterdir())


def test_variant_picks_some(template: Path, tmp_path: Path) -> None:
    assert render(template, tmp_path / "out", "--variant", "bob").startswith("1 of 1 jobs done")
    assert not (tmp_path / "out" / "card-amy").exists()
    proc = run_cli("render", str(template), "--variant", "cat", "--out", str(tmp_path / "o2"))
    assert proc.returncode != 0 and "job card has no variant 'cat'; it has: amy, bob" in proc.stderr


@pytest.mark.parametrize("change, needle", [
    ({"text": {"Titel": "X"}}, "variant amy: no text object 'Titel'; the template has 'Title'"),
    ({"images": {"Foto": "photos/amy.png"}}, "variant amy: no image 'Foto'; the template has "
                                             "'Photo'"),
    ({"values": {"tone": 1.0}}, "variant amy: no scene property 'tone'; the template has 'tint'"),
    ({"values": {"tint": "dark"}}, "variant amy: values.tint is str 'dark'; the template's "
                                   "property is float 0.5"),
    ({"images": {"Photo": "/etc/hostname"}}, "variant amy: images.Photo: '/etc/hostname' is not "
                                             "a path inside the job directory"),
    ({"images": {"Photo": "photos/nobody.png"}}, "variant amy: images.Photo: "
                                                 "'photos/nobody.png' is not a file"),
])
def test_bad_substitutions_are_refused_naming_variant_and_key(
        template: Path, tmp_path: Path, change: dict[str, object], needle: str) -> None:
    (template / "tilefarm.json").write_text(json.dumps({"variants": {"amy": change}}))
    proc = run_cli("render", str(template), "--out", str(tmp_path / "out"))
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode != 0 and len(errors) == 1 and needle in errors[0], proc.stderr
    assert not (tmp_path / "out" / "card-amy").exists()


def test_submit_adds_a_variant_from_the_command_line(template: Path, tmp_path: Path) -> None:
    """``--set`` makes (or changes) the one ``--variant``; an image file named there may be
    anywhere: it is packed into the job like any file the .blend uses."""
    photo = tmp_path / "elsewhere" / "cat.png"
    photo.parent.mkdir()
    shutil.copy(template / "photos" / "amy.png", photo)
    pachd = FakePachd()
    try:
        proc = run_cli("submit", str(template), "--pachd", pachd.address, "--variant", "cat",
                       "--set", "text.Title=CAT", "--set", f"images.Photo={photo}",
                       "--set", "values.tint=0.7")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("submitted card-cat:")
        files = pachd.rec.head_files("blends")
    finally:
        pachd.stop()
    assert "/card-cat/shot.blend" in files and "/card-amy/shot.blend" not in files
    packed = [p for p in files if p.endswith("/cat.png")]
    assert len(packed) == 1 and packed[0].startswith("/card-cat/_outside_project/")
    assert files[packed[0]] == photo.read_bytes()
    proc = run_cli("submit", str(template), "--pachd", "127.0.0.1:1", "--set", "text.Title=X")
    assert_one_line_error(proc, "--set", "name the one variant")
