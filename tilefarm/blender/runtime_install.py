"""Making runtimes: ``tilefarm blender install X.Y`` with pip alone, or a Blender registered by path.

PyPI's ``bpy`` wheels each exist for one Python only (measured, docs/blender-versions.md):
4.2-4.5 and 5.0 for 3.11, 5.1 and later for 3.13. A runtime is a venv of that Python holding
``bpy==X.Y.*`` (and the numpy it pins), so runtimes needing numpy 1 and numpy 2 live side
by side. The interpreter is found on PATH or where version managers keep theirs (pyenv,
asdf, uv), each candidate run to prove it works: a pyenv shim on PATH answers only for
the version pyenv has selected.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tilefarm.blender.runtimes import RUNTIME_FILE, Runtime, executable_version, read_runtime, \
    runtimes_root, series_of
from tilefarm.errors import BlenderError, UsageError
from tilefarm.plan.versions import OLDEST_RUNTIME, SERIES, installable, series_key

Run = Callable[..., "subprocess.CompletedProcess[str]"]


def python_for(series: str) -> str:
    """The Python version PyPI's ``bpy`` wheels of ``series`` are built for (``series`` is
    at least ``versions.OLDEST_RUNTIME``: ``check_series`` refuses older ones)."""
    key = series_key(series)
    if key <= (5, 0):
        return "3.11"
    return "3.13"


def _candidates(version: str) -> Iterator[str]:
    """Interpreters that may be Python ``version``, most likely first."""
    name = f"python{version}"
    if "%d.%d" % sys.version_info[:2] == version:
        yield sys.executable
    on_path = shutil.which(name)
    if on_path:
        yield on_path
    home = Path.home()
    pyenv = os.environ.get("PYENV_ROOT") or str(home / ".pyenv")
    patterns = [
        f"{pyenv}/versions/{version}*/bin/{name}",  # pyenv (its shim only answers when selected)
        f"{home}/.asdf/installs/python/{version}*/bin/{name}",  # asdf
        f"{home}/.local/share/uv/python/cpython-{version}*/bin/{name}",  # uv
        f"/usr/bin/{name}", f"/usr/local/bin/{name}", f"/opt/homebrew/bin/{name}",
    ]
    for pattern in patterns:
        yield from sorted(glob.glob(pattern), reverse=True)  # newest patch release first


def find_python(version: str, run: Run = subprocess.run) -> str | None:
    """The first interpreter that runs and reports Python ``version``, or None."""
    seen: set[str] = set()
    for candidate in _candidates(version):
        if candidate in seen:
            continue
        seen.add(candidate)
        if reports_version(candidate, run) == version:
            return candidate
    return None


def reports_version(python: str, run: Run = subprocess.run) -> str | None:
    """The major.minor ``python`` reports when run, or None if it does not run."""
    try:
        proc = run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                   capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def check_series(series: str) -> str:
    if SERIES.fullmatch(series.strip()) is None:
        raise UsageError(f"{series!r} is not a Blender version; give major.minor, e.g. 4.5, "
                         "5.0 or 5.2", flag="VERSION")
    series = "%d.%d" % series_key(series)
    if not installable(series):
        raise UsageError(f"Blender {series} cannot be a runtime: PyPI's bpy and tilefarm's "
                         "Blender-side scripts start at %d.%d; use 4.2 or later" % OLDEST_RUNTIME,
                         flag="VERSION")
    return series


def install(series: str, *, python: str | None = None, root: Path | None = None,
            run: Run = subprocess.run, say: Callable[[str], None] = print) -> Runtime:
    """Make the runtime of ``series`` from PyPI (or return the one already there)."""
    series = check_series(series)
    folder = (root or runtimes_root()) / series
    existing = read_runtime(folder)
    if existing is not None:
        say(f"tilefarm: Blender {existing.version} is already installed in {folder}")
        return existing
    wanted = python_for(series)
    if python is None:
        python = find_python(wanted, run)
        if python is None:
            raise UsageError(f"PyPI's bpy {series} is built for Python {wanted}, which was not "
                             f"found (looked for python{wanted} on PATH and in pyenv, asdf and "
                             f"uv); install Python {wanted} or name one with --python PATH",
                             flag="--python")
    elif reports_version(python, run) is None:
        raise UsageError(f"{python} does not run as a Python interpreter", flag="--python")
    if folder.exists():
        shutil.rmtree(folder)  # a half-made runtime from an interrupted install
    folder.mkdir(parents=True)
    venv_python = folder / "venv" / "bin" / "python"
    say(f"tilefarm: installing Blender {series} (bpy=={series}.*) with {python} into {folder}")
    started = time.monotonic()
    try:
        _step(run, [python, "-m", "venv", str(folder / "venv")], "create a venv", series)
        _step(run, [str(venv_python), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "--only-binary=:all:", f"bpy=={series}.*"],
              f"install bpy=={series}.* from PyPI", series)
        probe = _step(run, [str(venv_python), "-c", "import bpy; print(bpy.app.version_string)"],
                      "import the installed bpy", series)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    version = probe.stdout.strip().splitlines()[-1].split()[0]
    runtime = _register(folder, series, version, python=str(venv_python))
    say(f"tilefarm: installed Blender {version} in {time.monotonic() - started:.0f} s")
    return runtime


def register_executable(series: str, executable: str, *, root: Path | None = None) -> Runtime:
    """Register a Blender binary as the runtime of ``series`` (its version must match)."""
    series = check_series(series)
    path = shutil.which(executable) or executable
    if not Path(path).is_file():
        raise UsageError(f"{executable}: no such file; name a Blender executable",
                         flag="--executable")
    version = executable_version(str(Path(path).resolve()))
    if series_of(version) != series:
        raise UsageError(f"{executable} is Blender {version}, not {series}",
                         flag="--executable")
    folder = (root or runtimes_root()) / series
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return _register(folder, series, version, executable=str(Path(path).resolve()))


def _register(folder: Path, series: str, version: str, **program: str) -> Runtime:
    """Write ``runtime.json`` last and atomically: only then is the runtime listed."""
    doc: dict[str, Any] = {"series": series, "version": version, **program}
    partial = folder / f".{RUNTIME_FILE}.partial"
    partial.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    partial.replace(folder / RUNTIME_FILE)
    runtime = read_runtime(folder)
    assert runtime is not None
    return runtime


def _step(run: Run, argv: list[str], what: str,
          series: str) -> "subprocess.CompletedProcess[str]":
    proc = run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).split())[-300:]
        raise BlenderError(f"installing Blender {series}: could not {what}: {tail}")
    return proc
