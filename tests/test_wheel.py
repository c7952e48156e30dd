"""The release as users install it: the built wheel, installed without -e into a fresh
venv, works from a directory outside the checkout (issues 11 and 12)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Scenes

pytestmark = pytest.mark.blender  # `tilefarm plan` runs the wheel's own bpy


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding tilefarm's wheel and its dependencies; returns its bin/."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "--wheel-dir", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("tilefarm-*.whl")
    venv = base / "venv"
    python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                              "--disable-pip-version-check", str(wheel)],
                             capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stderr[-3000:]
    return venv / "bin"


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
