"""The release as users install it: the built wheel, installed without -e into a fresh
venv, works from a directory outside the checkout (issues 11 and 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import early
from tests.conftest import ROOT, Scenes
from tilefarm.blender.runtime_install import find_python

pytestmark = pytest.mark.blender  # `tilefarm plan` runs the wheel's own bpy


def build_wheel(dist: Path) -> Path:
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "--wheel-dir", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("tilefarm-*.whl")
    return wheel


def install_wheel(venv: Path, python: str, wheel: Path) -> Path:
    """A fresh venv of ``python`` holding tilefarm's wheel and its dependencies; its bin/."""
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                              "--disable-pip-version-check", str(wheel)],
                             capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stderr[-3000:]
    return venv / "bin"


# The Pythons the wheel is installed into: the suite's own, and the newer ones requires-python
# allows (None where this machine has none).
PYTHONS = {"3.11": lambda: getattr(sys, "_base_executable", sys.executable),
           "3.12": lambda: find_python("3.12"), "3.13": lambda: find_python("3.13")}


def start_installs(base: Path) -> dict[str, Future[Path]]:
    """The wheel built once and installed into a venv of each Python, side by side: each
    install unpacks about a gigabyte of wheels, and one after another they took 110 s."""
    with early.WHEEL_BUILD:
        wheel = build_wheel(base / "dist")
    pool = ThreadPoolExecutor(len(PYTHONS), thread_name_prefix="wheel")
    installs = {version: pool.submit(install_wheel, base / version, python, wheel)
                for version, find in PYTHONS.items() if (python := find()) is not None}
    pool.shutdown(wait=False)  # its threads end with their installs
    return installs


INSTALLS = early.Preparation("installs", lambda factory: start_installs(factory.mktemp("wheel")))


@pytest.fixture(scope="module")
def installs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[Path]]:
    return INSTALLS.result(tmp_path_factory)


@pytest.fixture(scope="module")
def installed(installs: dict[str, Future[Path]]) -> Path:
    return installs["3.11"].result()


def run(bin_dir: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_wheel_carries_every_package_and_no_stray_top_level_name(installed: Path,
                                                                  tmp_path: Path) -> None:
    proc = run(installed, str(installed / "python"), "-c",
               "import importlib.metadata as m, json, tilefarm; "
               "print(json.dumps([tilefarm.__file__, m.distribution('tilefarm')"
               ".read_text('top_level.txt')]))", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    location, top_level = json.loads(proc.stdout)
    assert str(installed.parent) in location and str(ROOT) not in location
    assert top_level.split() == ["tilefarm"]


def test_installed_commands_work_outside_the_checkout(installed: Path, tmp_path: Path,
                                                      scenes: Scenes) -> None:
    assert run(installed, "tilefarm", "--help", cwd=tmp_path).returncode == 0
    for stage in ("splitter", "renderer", "merger", "encoder"):
        proc = run(installed, str(installed / "python"), "-m", f"tilefarm.{stage}", "--help",
                   cwd=tmp_path)
        assert proc.returncode == 0 and "usage:" in proc.stdout, (stage, proc.stderr)
    proc = run(installed, "tilefarm", "plan", str(scenes["odd_size"]), "--tiles", "3x3",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert (plan["job"], plan["grid"], len(plan["tasks"])) == ("odd_size", [3, 3], 18)


@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_tilefarm_installs_and_plans_on_newer_pythons(version: str, tmp_path: Path,
                                                      installs: dict[str, Future[Path]],
                                                      scenes: Scenes) -> None:
    """requires-python is 3.11-3.13; each Python gets the newest LTS bpy PyPI has for it
    (pyproject's environment markers): 5.2 on 3.13, none on 3.12 (PyPI has no wheel)."""
    if version not in installs:
        if version == "3.13" and os.environ.get("CI"):
            pytest.fail("CI's machine has Python 3.13 (issue 15); it was not found")
        pytest.skip(f"no Python {version} on this machine")
    bin_dir = installs[version].result()
    listing = run(bin_dir, "tilefarm", "blender", "list", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    proc = run(bin_dir, "tilefarm", "plan", str(scenes["odd_size"]), cwd=tmp_path)
    if version == "3.13":
        assert "5.2" in listing.stdout.splitlines()[1].split()[0]
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["blender"] == {
            "saved_by": "4.5", "rendered_by": "5.2", "note": "saved by Blender 4.5, rendered "
            "with Blender 5.2, the nearest newer runtime installed (for an exact match: "
            "tilefarm blender install 4.5)"}
    else:
        assert "no Blender runtime is installed" in listing.stdout
        assert proc.returncode == 1 and proc.stderr.strip().endswith(
            "no Blender runtime is installed (PyPI has no bpy for this Python); install one "
            "with: tilefarm blender install 4.5")
