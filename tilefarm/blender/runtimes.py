"""Blender runtimes: which Blenders this machine can render with, and the runner for each.

A runtime is ``bpy`` of one Blender series (``major.minor``) in a Python environment, or a
Blender executable registered by path. tilefarm's own environment holds one (the ``bpy``
pyproject.toml installs for its Python: 4.5 LTS on 3.11, 5.2 LTS on 3.13); others live
under the runtimes folder (``$TILEFARM_RUNTIMES``, default ``~/.cache/tilefarm/runtimes``),
one folder per series with a ``runtime.json`` written last, so a half-made runtime is never
listed. ``tilefarm blender install`` makes them (``runtime_install.py``).

Every stage that runs Blender for a job (inspection, tiles, compose, mixdown) asks
``runner_for(plan.blender.rendered_by)``, so a job renders with one Blender from end to end.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from tilefarm.blender.runner import BLENDER_ENV, BlenderRunner, BlenderSession
from tilefarm.errors import BlenderError
from tilefarm.plan.versions import install_hint, series_key
from tilefarm.runtime.files import cache_dir

RUNTIMES_ENV = "TILEFARM_RUNTIMES"
# On a Ray cluster (tilefarm.nodes): the runtimes its nodes have, comma-separated. The head
# sets it for itself and every stage, so a job's runtime is chosen among the cluster's.
CLUSTER_ENV = "TILEFARM_CLUSTER_RUNTIMES"
# The series whose Blender a stage started before its job starts at once (Engine.prestart).
WARM_ENV = "TILEFARM_WARM_BLENDER"
RUNTIME_FILE = "runtime.json"
OWN = "tilefarm's environment"


@dataclass(frozen=True)
class Runtime:
    """One Blender tilefarm can run: ``python`` runs ``bpy`` scripts, or ``executable`` is a
    Blender binary; ``where`` says where it lives, for ``tilefarm blender list``."""

    series: str  # "5.0"
    version: str  # "5.0.1"
    python: str | None
    executable: str | None
    where: str

    def runner(self, **kwargs: Any) -> BlenderRunner:
        """A runner that runs tilefarm's Blender-side scripts with this Blender."""
        return BlenderRunner(executable=self.executable, python=self.python,
                             version=self.version, **kwargs)


def runtimes_root() -> Path:
    """Where installed runtimes live: ``$TILEFARM_RUNTIMES`` or ``~/.cache/tilefarm/runtimes``."""
    return cache_dir(RUNTIMES_ENV, "runtimes")


def series_of(version: str) -> str:
    """``"5.0.1"`` or ``"4.5.3 LTS"`` -> ``"5.0"``."""
    major, minor = version.split()[0].split(".")[:2]
    return f"{int(major)}.{int(minor)}"


def own_runtime() -> Runtime | None:
    """The Blender of tilefarm's own environment: ``$TILEFARM_BLENDER`` when set, else the
    ``bpy`` installed beside tilefarm (read from its metadata, without importing it)."""
    executable = os.environ.get(BLENDER_ENV)
    if executable:
        version = executable_version(executable)
        return Runtime(series_of(version), version, None, executable, f"${BLENDER_ENV}")
    try:
        version = importlib.metadata.version("bpy")
    except importlib.metadata.PackageNotFoundError:
        return None  # e.g. Python 3.12, for which PyPI has no bpy
    return Runtime(series_of(version), version, sys.executable, None, OWN)


@cache
def executable_version(executable: str) -> str:
    """The version a Blender executable reports (``Blender 4.5.3 LTS`` -> ``4.5.3``)."""
    try:
        proc = subprocess.run([executable, "--version"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BlenderError(f"cannot run it to read its version ({exc.__class__.__name__}); "
                           "name a Blender executable", path=executable) from None
    match = re.search(r"^Blender ([0-9]+\.[0-9]+(?:\.[0-9]+)?)", proc.stdout, re.MULTILINE)
    if match is None:
        raise BlenderError("it does not report a Blender version (`--version`); name a "
                           "Blender executable", path=executable)
    return match.group(1)


def read_runtime(folder: Path) -> Runtime | None:
    """The runtime installed in ``folder``, or None if it is incomplete or damaged."""
    try:
        doc = json.loads((folder / RUNTIME_FILE).read_text(encoding="utf-8"))
        runtime = Runtime(series=doc["series"], version=doc["version"], python=doc.get("python"),
                          executable=doc.get("executable"), where=str(folder))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    program = runtime.python or runtime.executable
    return runtime if program and Path(program).exists() else None


def installed(root: Path | None = None) -> list[Runtime]:
    """Every usable runtime, one per series: tilefarm's own first where series coincide."""
    found: dict[str, Runtime] = {}
    own = own_runtime()
    if own is not None:
        found[own.series] = own
    base = root or runtimes_root()
    if base.is_dir():
        for folder in sorted(base.iterdir()):
            runtime = read_runtime(folder) if folder.is_dir() else None
            if runtime is not None and runtime.series not in found:
                found[runtime.series] = runtime
    return sorted(found.values(), key=lambda r: series_key(r.series))


def available_series(root: Path | None = None) -> list[str]:
    """The series a job may render with: this machine's, or on a Ray cluster its nodes'."""
    cluster = os.environ.get(CLUSTER_ENV)
    if cluster is not None:
        return sorted({s for s in cluster.split(",") if s}, key=series_key)
    return available_series_here(root)


def available_series_here(root: Path | None = None) -> list[str]:
    return [r.series for r in installed(root)]


def find(series: str, root: Path | None = None) -> Runtime:
    """The installed runtime of ``series``; raise naming the install command if none is."""
    runtimes = installed(root)
    for runtime in runtimes:
        if runtime.series == series:
            return runtime
    have = ", ".join(r.series for r in runtimes) or "none"
    raise BlenderError(f"this machine has no Blender {series} runtime (installed: {have}); "
                       f"install it with: {install_hint(series)} (on a cluster: tilefarm "
                       f"deploy --blender {series})")


def runner_for(series: str | None, **kwargs: Any) -> BlenderRunner:
    """A runner for the job's Blender ``series`` (None: tilefarm's own, or else the newest)."""
    if series is None:
        own = own_runtime()
        if own is not None:
            return own.runner(**kwargs)
        runtimes = installed()
        if not runtimes:
            raise BlenderError("no Blender runtime is installed (this Python has no bpy); "
                               f"install one with: {install_hint('4.5')}")
        return runtimes[-1].runner(**kwargs)
    return find(series).runner(**kwargs)


class WarmRunner(BlenderRunner):
    """A runner whose requests all go to one warm Blender, one at a time: the server's
    intake inspects job after job without a Blender start each (about 2.6 s)."""

    def __init__(self, runner: BlenderRunner) -> None:
        super().__init__(**{f.name: getattr(runner, f.name) for f in fields(BlenderRunner)})
        self._lock = threading.Lock()
        self.session = BlenderSession(self, label="intake")

    def run(self, request: Any, *, label: str = "blender", timeout: float | None = None,
            on_line: Any = None) -> Any:
        with self._lock:
            return self.session.call(request, timeout=timeout)

    def close(self) -> None:
        with self._lock:
            self.session.close()


class Sessions:
    """One warm Blender session per runtime, each started when a job first needs it: a stage
    serving datums of jobs saved by different Blenders keeps each Blender warm."""

    def __init__(self, label: str, **runner_kwargs: Any) -> None:
        self.label = label
        self.runner_kwargs = runner_kwargs
        self._sessions: dict[str, BlenderSession] = {}

    def __enter__(self) -> "Sessions":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, series: str) -> BlenderSession:
        """The warm session of ``series``; raise naming the install command if none is here."""
        session = self._sessions.get(series)
        if session is None:
            runner = find(series).runner(**self.runner_kwargs)
            session = BlenderSession(runner, label=f"{self.label}-{series}")
            self._sessions[series] = session
        return session

    def start_early(self) -> None:
        """Start the Blender of ``$TILEFARM_WARM_BLENDER`` now: a stage started before its
        first job (``tilefarm render``) boots it while intake plans the job."""
        series = os.environ.get(WARM_ENV)
        if series:
            try:
                self.get(series).start()
            except BlenderError:
                pass  # no such runtime here: the job's own request says so

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()
