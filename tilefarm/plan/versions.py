"""Which Blender renders a job: the runtime matching the Blender that saved its file.

Pure: the installed runtimes come in as a list of ``major.minor`` series. A file renders
with the runtime of its own series; a job setting (``"blender": "5.0"``, ``--blender``)
overrides. Without an exact match an older file renders with the nearest newer runtime,
as opening it there would, and the plan says so; a file newer than every runtime is
refused before anything renders, with the command that installs one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tilefarm.errors import SceneError, SettingsError
from tilefarm.plan.model import Versions

SERIES = re.compile(r"([0-9]+)\.([0-9]+)")


def series_key(series: str) -> tuple[int, int]:
    """``"4.10"`` -> ``(4, 10)``: versions compare as numbers, never as strings."""
    match = SERIES.fullmatch(series.strip())
    if match is None:
        raise ValueError(f"not a Blender major.minor: {series!r}")
    return int(match.group(1)), int(match.group(2))


# The oldest Blender a runtime can be: PyPI's ``bpy`` wheels start at 4.2 (measured with
# ``pip index versions bpy``: 4.2-5.0 for Python 3.11, 5.1 and later for 3.13; none for any
# older Python), and tilefarm's Blender-side scripts use the 4.2+ API (side/compat.py).
OLDEST_RUNTIME = (4, 2)


def installable(series: str) -> bool:
    """Whether ``tilefarm blender install`` can make a runtime of ``series`` at all (from
    PyPI, or from a Blender binary given with ``--executable``)."""
    return series_key(series) >= OLDEST_RUNTIME


def install_hint(series: str) -> str:
    """The command that installs a runtime of ``series``; ``installable`` must hold."""
    return f"tilefarm blender install {series}"


def _exact_match_hint(series: str) -> str:
    if installable(series):
        return f"for an exact match: {install_hint(series)}"
    return (f"Blender {series} cannot be installed as a runtime: PyPI's bpy and tilefarm's "
            "Blender-side scripts start at %d.%d" % OLDEST_RUNTIME)


def _listing(available: Sequence[str]) -> str:
    return ", ".join(sorted(set(available), key=series_key)) or "none"


def choose_runtime(saved_by: str, available: Sequence[str], *, wanted: str | None = None,
                   where: str = "", flag: str = "blender") -> Versions:
    """The runtime that renders a file saved by Blender ``saved_by`` (its header's
    major.minor), among the installed series ``available``; ``wanted`` is the job's
    ``blender`` setting, named by ``flag`` in errors."""
    if wanted is not None:
        if SERIES.fullmatch(wanted.strip()) is None:
            raise SettingsError(f"{wanted!r} is not a Blender version; give major.minor, "
                                "e.g. 4.5 or 5.0", flag=flag)
        wanted = "%d.%d" % series_key(wanted)
        if wanted not in available:
            raise SettingsError(f"no Blender {wanted} runtime is installed (installed: "
                                f"{_listing(available)}); install it with: "
                                f"{install_hint(wanted)}", flag=flag)
        note = None if wanted == saved_by else (
            f"saved by Blender {saved_by}, rendered with Blender {wanted} as {flag} asks")
        return Versions(saved_by, wanted, note)
    if not available:
        series = saved_by if installable(saved_by) else "4.5"
        raise SceneError(f"the file was saved by Blender {saved_by}, and no Blender runtime is "
                         "installed (PyPI has no bpy for this Python); install one with: "
                         f"{install_hint(series)}", path=where or None)
    if saved_by in available:
        return Versions(saved_by, saved_by, None)
    newer = sorted((s for s in available if series_key(s) > series_key(saved_by)),
                   key=series_key)
    if not newer:
        raise SceneError(f"the file was saved by Blender {saved_by}, newer than every Blender "
                         f"runtime installed ({_listing(available)}): its frames would differ "
                         f"from the artist's; install one with: {install_hint(saved_by)}",
                         path=where or None)
    return Versions(saved_by, newer[0], f"saved by Blender {saved_by}, rendered with Blender "
                    f"{newer[0]}, the nearest newer runtime installed "
                    f"({_exact_match_hint(saved_by)})")
