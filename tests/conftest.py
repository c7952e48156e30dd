"""Shared fixtures: the tiny real .blend scenes, built once per test run (shared by the run's
two streams), and the streams themselves."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tilefarm.blender.runner import BlenderRunner

if TYPE_CHECKING:
    from tests.browser import Browser

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "tests" / "scenes" / "build_scenes.py"
BUILD_ASSETS = ROOT / "tests" / "scenes" / "build_assets.py"
BIN = Path(sys.executable).parent


class Scenes:
    """Paths of the fixture scenes by case name, and the registered script's marker file."""

    def __init__(self, paths: dict[str, str], marker: Path):
        self.paths = {name: Path(p) for name, p in paths.items()}
        self.marker = marker

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]


def built_once(factory: pytest.TempPathFactory, name: str,
               build: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    """``build(out)``'s result, made by the first stream of this run to ask for it: the
    other waits for it (a lock beside it) and reads it. Both streams' temporary folders are
    in one folder of the run (pytest-xdist's ``popen-gwN``)."""
    run = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run = run.parent
    out, done = run / name, run / f"{name}.json"
    with (run / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            out.mkdir(exist_ok=True)
            done.write_text(json.dumps(build(out)))
    return out, json.loads(done.read_text())


@pytest.fixture(scope="session")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Scenes:
    def build(out: Path) -> dict[str, Any]:
        return BlenderRunner(timeout=300).run_script(
            BUILD_SCRIPT, {"out": str(out), "marker": str(out / "SCRIPT_RAN")},
            label="build-scenes")

    out, built = built_once(tmp_path_factory, "scenes", build)
    return Scenes({name: str(path) for name, path in built.items()}, out / "SCRIPT_RAN")


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``tilefarm`` (or ``python -m X`` when args[0] is "-m") as a user would."""
    argv = [sys.executable, *args] if args and args[0] == "-m" else [str(BIN / "tilefarm"), *args]
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A user error: non-zero exit, one line on stderr naming what is wrong, no traceback."""
    assert proc.returncode != 0, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@dataclass(frozen=True)
class Assets:
    """The production-shaped fixture jobs of tests/scenes/build_assets.py."""

    root: Path  # the fixtures' folder: jobs in <root>/<case>/, outside files beside them

    def blend(self, case: str) -> Path:
        return self.root / case / "shot.blend"

    def job(self, case: str) -> Path:
        return self.root / case


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    def build(out: Path) -> dict[str, Any]:
        return BlenderRunner(timeout=300).run_script(BUILD_ASSETS, {"out": str(out)},
                                                     label="build-assets")

    out, built = built_once(tmp_path_factory, "assets", build)
    assert all(Path(info["blend"]) == out / case / "shot.blend" for case, info in built.items())
    return Assets(out)


# Fixtures that build real scenes in Blender: a test using one needs Blender, marked or not.
BLENDER_FIXTURES = {"scenes", "assets"}


# The whole suite runs as two streams side by side (scripts/test: pytest -n 2 --dist
# loadgroup), each test in one of them, in order: "side" takes what leaves a core idle much
# of the time (the container image's build, the wheel's installs, a 2 GiB stream, the tests
# without Blender) and some renders, so that the two take about as long; "main" takes the
# rest, the Ray cluster's and the server's tests among them. test_cli_plan and
# test_bit_identical share the registered script's marker file, so they share a stream.
SIDE_FILES = {"test_image.py", "test_wheel.py", "test_server_files.py", "test_cli_plan.py",
              "test_bit_identical.py", "test_intake.py"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BLENDER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.blender)
        heavy = item.get_closest_marker("blender") or item.get_closest_marker("docker")
        side = item.path.name in SIDE_FILES or not heavy
        item.add_marker(pytest.mark.xdist_group("side" if side else "main"))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator["Browser"]:
    """Debian's chromium, headless, driven over DevTools (tests/browser.py). scripts/test
    installs it as root (scripts/chromium-setup); CI must run the browser tests, so there a
    missing browser fails them instead of skipping them."""
    from tests.browser import Browser

    if shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests, but chromium is not installed "
                        "(scripts/test installs it as root: scripts/chromium-setup)")
        pytest.skip("no chromium; run scripts/test as root to install it")
    page = Browser(tmp_path / "profile")
    yield page
    page.close()
