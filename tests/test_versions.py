"""Which Blender renders a job, and finding and registering runtimes (no Blender needed)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_one_line_error, run_cli
from tilefarm.blender import runtime_install, runtimes
from tilefarm.errors import SceneError, SettingsError, UsageError
from tilefarm.plan.model import Versions
from tilefarm.plan.versions import choose_runtime

HERE = ["4.5", "5.0", "5.2"]


def test_a_file_renders_with_the_runtime_of_the_blender_that_saved_it() -> None:
    assert choose_runtime("5.0", HERE) == Versions("5.0", "5.0", None)
    assert choose_runtime("5.2", HERE) == Versions("5.2", "5.2", None)


def test_an_older_file_renders_with_the_nearest_newer_runtime_and_says_so() -> None:
    chosen = choose_runtime("5.1", HERE)
    assert chosen.rendered_by == "5.2"
    assert chosen.note == ("saved by Blender 5.1, rendered with Blender 5.2, the nearest newer "
                           "runtime installed (for an exact match: tilefarm blender install 5.1)")
    old = choose_runtime("2.79", HERE)
    assert old.rendered_by == "4.5"
    # Only a hint that works: PyPI has no bpy 2.79, and no runtime can be older than 4.2.
    assert old.note == ("saved by Blender 2.79, rendered with Blender 4.5, the nearest newer "
                        "runtime installed (Blender 2.79 cannot be installed as a runtime: "
                        "PyPI's bpy and tilefarm's Blender-side scripts start at 4.2)")
    # Numbers, not strings: 4.10 is newer than 4.9 and older than 5.0.
    assert choose_runtime("4.9", ["4.10", "5.0"]).rendered_by == "4.10"


def test_a_file_newer_than_every_runtime_is_refused_with_the_install_command() -> None:
    with pytest.raises(SceneError) as err:
        choose_runtime("5.3", HERE, where="shots/a.blend")
    assert str(err.value) == (
        "shots/a.blend: the file was saved by Blender 5.3, newer than every Blender runtime "
        "installed (4.5, 5.0, 5.2): its frames would differ from the artist's; install one "
        "with: tilefarm blender install 5.3")


def test_the_blender_setting_overrides_and_must_name_an_installed_runtime() -> None:
    assert choose_runtime("4.5", HERE, wanted="5.0", flag="--blender") == Versions(
        "4.5", "5.0", "saved by Blender 4.5, rendered with Blender 5.0 as --blender asks")
    with pytest.raises(SettingsError, match=r"^tilefarm.json: blender: no Blender 5.1 runtime "
                                            r"is installed \(installed: 4.5, 5.0, 5.2\); install "
                                            r"it with: tilefarm blender install 5.1$"):
        choose_runtime("4.5", HERE, wanted="5.1", flag="tilefarm.json: blender")
    with pytest.raises(SettingsError, match="'five' is not a Blender version"):
        choose_runtime("4.5", HERE, wanted="five")


def test_pypi_wheels_decide_the_python_of_a_runtime() -> None:
    """Measured with pip index (docs/blender-versions.md): one Python per bpy series."""
    assert [runtime_install.python_for(s) for s in ("4.2", "4.5", "5.0", "5.1", "5.2", "5.3")] \
        == ["3.11", "3.11", "3.11", "3.13", "3.13", "3.13"]


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_a_pyenv_shim_is_passed_over_for_the_interpreter_pyenv_keeps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyenv's shim on PATH exits 127 unless its version is selected; the real interpreter
    lives in $PYENV_ROOT/versions/<version>/bin."""
    _script(tmp_path / "shims" / "python3.13", "echo 'pyenv: python3.13: command not found' >&2; "
            "exit 127")
    real = _script(tmp_path / "pyenv" / "versions" / "3.13.0" / "bin" / "python3.13",
                   "echo 3.13")
    monkeypatch.setenv("PATH", f"{tmp_path / 'shims'}:/usr/bin:/bin")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert runtime_install.find_python("3.13") == str(real)
    assert runtime_install.find_python("3.9") is None


def test_install_without_the_python_it_needs_says_what_is_missing(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYENV_ROOT": str(tmp_path / "none"),
           "HOME": str(tmp_path), "TILEFARM_RUNTIMES": str(tmp_path / "runtimes")}
    proc = run_cli("blender", "install", "5.2", env=env)
    assert_one_line_error(proc, "--python", "bpy 5.2 is built for Python 3.13, which was not "
                          "found", "--python PATH")
    assert not (tmp_path / "runtimes" / "5.2").exists()
    for old in ("2.79", "4.1"):  # no bpy on PyPI, and older than the Blender-side scripts
        assert_one_line_error(run_cli("blender", "install", old, env=env), "VERSION",
                              f"Blender {old} cannot be a runtime", "use 4.2 or later")
    assert_one_line_error(run_cli("blender", "install", "five", env=env),
                          "'five' is not a Blender version")


def _runtime(root: Path, series: str, version: str, **program: str) -> Path:
    folder = root / series
    folder.mkdir(parents=True)
    (folder / runtimes.RUNTIME_FILE).write_text(json.dumps(
        {"series": series, "version": version, **program}))
    return folder


def test_list_shows_complete_runtimes_only(tmp_path: Path) -> None:
    root = tmp_path / "runtimes"
    _runtime(root, "5.0", "5.0.1", python=sys.executable)
    (root / "5.2").mkdir()  # an install that was interrupted: no runtime.json yet
    _runtime(root, "4.2", "4.2.9", python=str(tmp_path / "gone" / "python"))  # deleted venv
    found = runtimes.installed(root)
    assert [r.series for r in found if r.where != runtimes.OWN] == ["5.0"]
    proc = run_cli("blender", "list", env={"TILEFARM_RUNTIMES": str(root)})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["SERIES", "VERSION", "RUNS", "WITH", "WHERE"]
    assert any(line.split()[:2] == ["5.0", "5.0.1"] and str(root / "5.0") in line
               for line in lines)
    assert not any(line.startswith(("5.2", "4.2")) for line in lines)


def test_a_runtime_missing_on_this_machine_names_the_install_command(tmp_path: Path) -> None:
    from tilefarm.errors import BlenderError

    with pytest.raises(BlenderError, match=r"no Blender 5\.1 runtime .* install it with: "
                                           r"tilefarm blender install 5\.1 \(on a cluster: "
                                           r"tilefarm deploy --blender 5\.1\)"):
        runtimes.find("5.1", tmp_path)


def test_a_blender_executable_registers_as_the_runtime_of_its_version(tmp_path: Path) -> None:
    blender = _script(tmp_path / "blender-4.2" / "blender",
                      'echo "Blender 4.2.9 LTS"; echo "build date: 2025"')
    root = tmp_path / "runtimes"
    with pytest.raises(UsageError, match=r"is Blender 4\.2\.9, not 4\.5"):
        runtime_install.register_executable("4.5", str(blender), root=root)
    runtime = runtime_install.register_executable("4.2", str(blender), root=root)
    assert (runtime.series, runtime.version, runtime.executable) == ("4.2", "4.2.9", str(blender))
    runner = runtimes.find("4.2", root).runner()
    assert runner.executable == str(blender)
    assert os.path.basename(runner.invocation(Path("s.py"), Path("q"), Path("r"),
                                              tmp_path).argv[0]) == "blender"


def test_an_image_holds_the_runtimes_of_its_own_python_and_refuses_others(
        tmp_path: Path) -> None:
    """One image, one Python: 4.5 and 5.0 share 3.11 (tilefarm's own 4.5 is always there);
    5.2 needs 3.13, so it takes an image built by a tilefarm on Python 3.13."""
    import subprocess

    from tilefarm.pipelines import image

    assert sys.version_info[:2] == (3, 11)  # the suite's own Python (scripts/test)
    assert image.image_runtimes(["4.5", "5.0", "5.0"], own="4.5") == ["5.0"]
    with pytest.raises(image.ImageError, match=r"^--blender: Blender 5\.2 needs Python 3\.13, "
                                               r"and this image is built for Python 3\.11"):
        image.image_runtimes(["5.0", "5.2"], own="4.5")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    seen: list[list[str]] = []

    def record(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    image.prepare_context(tmp_path, run=record, runtimes=["5.0"])
    assert seen[-1][-4:] == ["--only-binary=:all:", "--dest",
                             str(tmp_path / "wheelhouse" / "runtimes" / "5.0"), "bpy==5.0.*"]
    assert image.content_tag(ROOT, ("5.0",)) != image.content_tag(ROOT)
    proc = run_cli("deploy", "--pachd", "localhost:1", "--image", "x/tilefarm", "--blender",
                   "5.0", "--dry-run")
    assert_one_line_error(proc, "--blender needs --build")
