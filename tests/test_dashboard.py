"""The dashboard in a real browser: Debian's chromium, headless, driven over DevTools.

scripts/test installs chromium as root (scripts/chromium-setup); CI must run this test,
so there a missing browser fails it instead of skipping it. With TILEFARM_SCREENSHOT set
to a path, the screenshot taken mid-run is copied there (the README's docs/dashboard.png).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.browser import Browser, row
from tests.conftest import Scenes, run_cli
from tests.serverkit import api, job, running_server, wait_for

pytestmark = pytest.mark.blender


def test_the_dashboard_shows_and_steers_jobs_live(browser: Browser, scenes: Scenes,
                                                  tmp_path: Path) -> None:
    long = tmp_path / "long.blend"
    assert run_cli("demo", str(long), "--frames", "10", "--resolution", "160x90", "--samples",
                   "64", "--no-denoise").returncode == 0
    shutil.copy(scenes["plain"], tmp_path / "quick.blend")
    with running_server(tmp_path / "store") as url:
        browser.open(url + "/")
        browser.wait("document.getElementById('live').textContent === 'live'", 30,
                     "the live connection")
        assert browser.evaluate("document.getElementById('empty').hidden") is False

        assert run_cli("submit", str(tmp_path / "quick.blend"), "--server", url,
                       "--tiles", "2x2").returncode == 0
        browser.wait(f"{row('quick', 'state')} !== ''", 30, "the quick job's row")
        browser.wait(f"{row('quick', 'state')} === 'done'", 300, "the quick job done")
        assert browser.evaluate(row("quick", "frames")) == "3/3"

        # A thumbnail per finished frame, loaded by the browser from the API.
        browser.evaluate("document.querySelector('tr[data-job=\"quick\"]').click()")
        loaded = browser.wait("(() => { const imgs = [...document.querySelectorAll('img.thumb:not(.partial)')];"
                              " return imgs.length === 3 && imgs.every(i => i.complete && "
                              "i.naturalWidth === 64) && imgs.length; })()", 60,
                              "three loaded thumbnails")
        assert loaded == 3
        browser.wait("!document.getElementById('video').hidden", 30, "the video player")
        assert browser.evaluate("document.querySelectorAll('#chart rect').length") == 3
        # Peak memory, from the OS: the job's in the title, each frame's under its thumbnail.
        title = browser.evaluate("document.getElementById('detail-title').textContent")
        assert re.search(r"peak memory \d+\.\d (MiB|GiB)$", title), title
        captions = browser.evaluate("[...document.querySelectorAll('#frames figcaption')]"
                                    ".map(c => c.textContent)")
        assert len(captions) == 3 and all(re.fullmatch(r"frame \d · \d+\.\d (MiB|GiB)", c)
                                          for c in captions), captions

        # "Download all": the browser saves every output as one ZIP, bytes as the API's.
        downloads = tmp_path / "downloads"
        browser.send("Page.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
        browser.wait("!document.getElementById('download').hidden", 30, "Download all")
        browser.evaluate("document.getElementById('download').click()")
        saved = wait_for(lambda: (downloads / "quick.zip").exists() and downloads / "quick.zip",
                         60, "the browser's download")  # renamed into place when whole
        listing = api(url, "GET", "/api/jobs/quick/outputs")[1]
        with zipfile.ZipFile(saved) as archive:
            assert archive.namelist() == [item["path"][1:] for item in listing]
            assert len(listing) == 4  # three frames and the video
            for item in listing:
                assert archive.read(item["path"][1:]) == api(
                    url, "GET", f"/api/jobs/quick/outputs{item['path']}")[1]

        assert run_cli("submit", str(long), "--server", url, "--tiles", "2x2").returncode == 0
        browser.wait(f"{row('long', 'state')} === 'running'", 120, "the long job running")
        width = ("parseFloat(document.querySelector('tr[data-job=\"long\"] .bar > div')"
                 ".style.width || '0')")
        start = browser.evaluate(width)
        browser.wait(f"{width} > {start}", 120, "the long job's progress advancing")
        # Mid-render the archive holds the frames finished so far, and says how far it is.
        with urllib.request.urlopen(url + "/api/jobs/long/outputs.zip", timeout=60) as answer:
            body = answer.read()
            done, total = map(int, answer.headers["X-Tilefarm-Frames"].split("/"))
            assert int(answer.headers["Content-Length"]) == len(body) and total == 10
            assert answer.headers["Content-Disposition"] == 'attachment; filename="long.zip"'
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            frames = [n for n in archive.namelist() if n.startswith("long/frames/")]
            assert len(frames) >= done and archive.testzip() is None
        # Its frames in flight show the tiles rendered so far.
        browser.evaluate("document.querySelector('tr[data-job=\"long\"]').click()")
        browser.wait("[...document.querySelectorAll('img.partial')].some(i => i.complete && "
                     "i.naturalWidth === 160)", 60, "a frame in flight with its tiles")
        assert browser.evaluate("getComputedStyle(document.getElementById('video')).display"
                                ) == "none"  # quick's video is not shown for long
        screenshot = tmp_path / "dashboard.png"
        browser.screenshot(screenshot)
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("TILEFARM_SCREENSHOT"):
            shutil.copy(screenshot, os.environ["TILEFARM_SCREENSHOT"])

        click = "document.querySelector('tr[data-job=\"long\"] button[data-action=\"{}\"]').click()"
        browser.evaluate(click.format("pause"))
        browser.wait(f"{row('long', 'state')} === 'paused'", 30, "the pause")
        assert job(url, "long")["state"] == "paused"  # type: ignore[index]
        browser.evaluate(click.format("resume"))
        browser.wait(f"{row('long', 'state')} === 'running'", 60, "the resume")
        browser.evaluate(click.format("cancel"))
        browser.wait(f"{row('long', 'state')} === 'cancelled'", 30, "the cancel")
        wait_for(lambda: job(url, "long")["state"] == "cancelled", 10, "the API to agree")  # type: ignore[index]
        assert browser.evaluate(row("quick", "state")) == "done"

        # Re-render asks for its frames in a dialog: frame 2's four tiles, its merge and
        # the video run again.
        browser.evaluate("document.querySelector('tr[data-job=\"quick\"] "
                         "button[data-action=\"rerender\"]').click()")
        browser.wait("document.getElementById('rerender').open", 10, "the re-render dialog")
        browser.evaluate("(() => { const f = document.getElementById('rerender-frames');"
                         " f.value = '2'; f.dispatchEvent(new Event('input')); })()")
        browser.evaluate("document.getElementById('rerender-go').click()")
        status = browser.wait("document.getElementById('rerender-status').textContent", 30,
                              "the re-render's answer")
        assert status == "6 datum(s) of quick to run again"
        browser.evaluate("document.getElementById('rerender-close').click()")
        assert browser.evaluate("document.getElementById('rerender').open") is False
        wait_for(lambda: job(url, "quick")["state"] == "done", 300, "the re-render to end",  # type: ignore[index]
                 seen=lambda: api(url, "GET", "/api/jobs")[1])
