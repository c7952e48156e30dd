"""Shared fixtures: the tiny real .blend scenes, built once per test session (beside the
first tests: tests/early.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import early
from tilefarm.blender import runtimes
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


def build_scenes(out: Path) -> Scenes:
    marker = out / "SCRIPT_RAN"
    built = BlenderRunner(timeout=300).run_script(BUILD_SCRIPT, {"out": str(out), "marker": str(marker)}, label="build-scenes")
    return Scenes(built, marker)


SCENES = early.Preparation("scenes", lambda factory: build_scenes(factory.mktemp("scenes")))


@pytest.fixture(scope="session")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Scenes:
    return SCENES.result(tmp_path_factory)


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


def build_assets(out: Path) -> Assets:
    built = BlenderRunner(timeout=300).run_script(BUILD_ASSETS, {"out": str(out)},
                                                  label="build-assets")
    assert all(Path(info["blend"]) == out / case / "shot.blend" for case, info in built.items())
    return Assets(out)


ASSETS = early.Preparation("assets", lambda factory: build_assets(factory.mktemp("assets")))


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return ASSETS.result(tmp_path_factory)


# Fixtures that build real scenes in Blender: a test using one needs Blender, marked or not.
BLENDER_FIXTURES = {"scenes", "assets"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BLENDER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.blender)


@pytest.fixture(scope="session", autouse=True)
def early_setup(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> None:
    """Start the slow preparations of the selected tests beside the first tests
    (tests/early.py): the fixture scenes first, which most of them need soonest."""
    early.start_for(request.session.items, tmp_path_factory)


@pytest.fixture(autouse=True)
def own_caches() -> Iterator[None]:
    """A farm made in the test process (``server.farm.Farm``) points the facts and variant
    caches of this process, and of every CLI it starts, at its store; after the test they are
    as they were, so a later test's ``render`` uses its own store's."""
    from tilefarm.splitter.split import FACTS_CACHE_ENV
    from tilefarm.splitter.variants import VARIANT_CACHE_ENV

    before = {name: os.environ.get(name) for name in (FACTS_CACHE_ENV, VARIANT_CACHE_ENV)}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def install_runtime(series: str) -> runtimes.Runtime:
    proc = run_cli("blender", "install", series, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return runtimes.find(series)


# The Blender 5.0 and 5.2 runtimes, installed from PyPI by ``tilefarm blender install`` into
# the runtimes folder (it persists between runs), once a session.
BLENDER_50 = early.Preparation("blender_50", lambda _: install_runtime("5.0"))
BLENDER_52 = early.Preparation("blender_52", lambda _: install_runtime("5.2"))


@pytest.fixture(scope="session")
def blender_50(tmp_path_factory: pytest.TempPathFactory) -> runtimes.Runtime:
    return BLENDER_50.result(tmp_path_factory)


@pytest.fixture(scope="session")
def blender_52(tmp_path_factory: pytest.TempPathFactory) -> runtimes.Runtime:
    return BLENDER_52.result(tmp_path_factory)


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
