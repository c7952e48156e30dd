"""Template jobs on the server (issue 24): the templates it keeps, their form's fields and
the conversion of what a form sends, then the page itself in Chromium: fill a name, type
a title, upload a photo, press Render; the MP4 plays, and the frames equal Blender's own
render of a hand-made copy of that variant."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.browser import Browser
from tests.conftest import BUILD_ASSETS, Assets, run_cli
from tests.pipeline import assert_identical, reference
from tests.serverkit import api, job, running_server, wait_for
from tilefarm.blender.runner import BlenderRunner
from tilefarm.errors import TilefarmError
from tilefarm.server import templates

AMY = {"text": {"Title": "AMY REED"}, "images": {"Photo": "photos/amy.png"},
       "values": {"tint": 0.35}}


def kept_template(root: Path, variants: dict[str, object]) -> Path:
    folder = root / templates.TEMPLATES / "card"
    (folder / "photos").mkdir(parents=True)
    (folder / "shot.blend").write_bytes(b"BLENDER-v405")
    (folder / "photos" / "amy.png").write_bytes(b"png")
    (folder / "tilefarm.json").write_text(json.dumps({"variants": variants}))
    return folder


def test_a_kept_templates_fields_are_what_its_variants_set(tmp_path: Path) -> None:
    kept_template(tmp_path, {"amy": AMY, "bob": {"text": {"Title": "BOB"},
                                                 "values": {"tint": 1, "on": True}}})
    (listed,) = templates.listing(tmp_path, {"card-amy"})
    assert listed == {"job": "card", "variants": [{"name": "amy", "job": "card-amy"}], "fields": [
        {"field": "text.Title", "kind": "text", "key": "Title", "type": "string"},
        {"field": "images.Photo", "kind": "images", "key": "Photo", "type": "file"},
        {"field": "values.on", "kind": "values", "key": "on", "type": "boolean"},
        {"field": "values.tint", "kind": "values", "key": "tint", "type": "number"}]}


def test_a_form_makes_a_folder_of_the_template_and_its_one_new_variant(tmp_path: Path) -> None:
    folder = kept_template(tmp_path, {"amy": AMY})
    photo = tmp_path / "upload"
    photo.write_bytes(b"zoe's photo")
    into = tmp_path / "made"
    into.mkdir()
    made = templates.variant_folder(tmp_path, "card", "zoe",
                                    {"text.Title": "ZOE", "values.tint": " 0.8 ",
                                     "max_workers": "2"},
                                    {"Photo": ("Zoe.PNG", photo)}, into)
    assert made == into / "card" and (made / "shot.blend").samefile(folder / "shot.blend")
    assert json.loads((made / "tilefarm.json").read_text()) == {"max_workers": 2, "variants": {
        "zoe": {"text": {"Title": "ZOE"}, "values": {"tint": 0.8},
                "images": {"Photo": "variants/zoe/Photo.png"}}}}
    assert (made / "variants" / "zoe" / "Photo.png").read_bytes() == b"zoe's photo"
    assert json.loads((folder / "tilefarm.json").read_text())["variants"] == {"amy": AMY}
    templates.record(tmp_path, "card", "zoe", made)
    assert sorted(json.loads((folder / "tilefarm.json").read_text())["variants"]) == [
        "amy", "zoe"]
    assert (folder / "variants" / "zoe" / "Photo.png").read_bytes() == b"zoe's photo"


@pytest.mark.parametrize("name, form, needle", [
    ("", {}, "name: give the variant a name"),
    ("a b", {}, "job name 'card-a b' is not allowed"),
    ("zoe", {"values.tint": "warm"}, "values.tint: 'warm' is not a number"),
    ("zoe", {"max_workers": "0"}, "max_workers: '0' is not a worker count"),
    ("zoe", {"text.Subtitle": "x"}, "text.Subtitle: the template has no such field; it has "
                                    "images.Photo, text.Title, values.tint"),
])
def test_a_bad_form_is_refused_naming_the_field(tmp_path: Path, name: str,
                                                form: dict[str, str], needle: str) -> None:
    kept_template(tmp_path, {"amy": AMY})
    (tmp_path / "made").mkdir()
    with pytest.raises(TilefarmError, match=re.escape(needle)):
        templates.variant_folder(tmp_path, "card", name, form, {}, tmp_path / "made")
    assert not (tmp_path / "made" / "card").exists()


def set_file(page: Browser, selector: str, path: Path) -> None:
    """Choose ``path`` in a file input, as a user picking it does (DevTools)."""
    root = page.send("DOM.getDocument")["root"]["nodeId"]
    node = page.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
    page.send("DOM.setFileInputFiles", nodeId=node, files=[str(path)])


@pytest.mark.blender
def test_the_page_makes_a_variant_that_renders_as_blender_would(
        browser: Browser, assets: Assets, tmp_path: Path) -> None:
    card = tmp_path / "card"
    shutil.copytree(assets.job("template"), card)
    (card / "tilefarm.json").write_text(json.dumps({"variants": {"amy": AMY}}))
    photo = tmp_path / "zoe.png"
    cv2.imwrite(str(photo), np.full((8, 8, 3), (40, 200, 60), np.uint8))
    with running_server(tmp_path / "store") as url:
        proc = run_cli("submit", str(card), "--server", url)
        assert proc.returncode == 0 and proc.stdout.startswith("submitted card-amy to"), proc
        (listed,) = api(url, "GET", "/api/templates")[1]
        assert [f["field"] for f in listed["fields"]] == ["text.Title", "images.Photo",
                                                          "values.tint"]
        browser.open(url + "/")
        form = "document.querySelector('form.template[data-job=\"card\"]')"
        browser.wait(f"{form} !== null", 30, "the template's form")
        browser.evaluate(f"(() => {{ const f = {form}; f.elements['name'].value = 'zoe';"
                         " f.elements['text.Title'].value = 'ZOE';"
                         " f.elements['max_workers'].value = '1';"
                         " f.elements['values.tint'].value = '0.8'; })()")
        set_file(browser, 'form.template[data-job="card"] input[name="images.Photo"]', photo)
        browser.evaluate(f"{form}.querySelector('button[type=submit]').click()")
        status = browser.wait(f"(() => {{ const s = {form}.querySelector('.template-status')"
                              f".textContent; return s !== 'sending…' && s; }})()", 120,
                              "the form's answer")
        assert status == "queued card-zoe"
        wait_for(lambda: (j := job(url, "card-zoe")) and j["state"] == "done", 300,
                 "the variant to render")
        assert job(url, "card-zoe")["max_workers"] == 1  # type: ignore[index]
        # Its progress, frames and MP4 on the same page: the video plays.
        browser.wait("document.getElementById('detail-title').textContent"
                     ".startsWith('card-zoe')", 30, "the variant's detail")
        browser.wait("document.getElementById('video').readyState >= 2", 60,
                     "the video to play")
        browser.wait(f"{form}.querySelector('.variants').textContent.includes('card-zoe')",
                     30, "the variant listed under its template")
        # A bad value: intake's one-line error, and no job.
        answer = browser.evaluate(
            "(async () => { const d = new FormData(); d.append('name', 'bad');"
            " d.append('values.tint', 'warm');"
            " const r = await fetch('/api/templates/card/variants', {method: 'POST', body: d});"
            " return [r.status, (await r.json()).error]; })()")
        assert answer == [400, "form: values.tint: 'warm' is not a number, as the template's "
                               "property is"]
        out = tmp_path / "fetched"
        assert run_cli("fetch", "card-zoe", "--server", url, "--out", str(out)).returncode == 0

    by_hand = card / "by-hand.blend"
    BlenderRunner(timeout=300).run_script(BUILD_ASSETS, {
        "substitute": str(card / "shot.blend"), "target": str(by_hand),
        "text": {"Title": "ZOE"}, "values": {"tint": 0.8}, "images": {"Photo": str(photo)}},
        label="by-hand")
    theirs = reference(by_hand, tmp_path / "ref")
    assert sorted(theirs) == [1, 2]
    for frame, path in theirs.items():
        assert_identical(out / "card-zoe" / "frames" / f"{frame:06d}.png", path)
