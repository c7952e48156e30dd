"""Building and pushing the one pipeline image with the docker SDK, tagged by content.

The image holds tilefarm's own Blender runtime (the ``bpy`` its Python gets from
pyproject.toml) and, with ``--blender``, the runtimes of other Blender series that use the
same Python (4.2-4.5 and 5.0 share 3.11): ``/opt/tilefarm-runtimes/<series>``, found by
every stage through ``TILEFARM_RUNTIMES``, so one set of pipelines renders each job with
the Blender that saved it. Series that need another Python (5.1+ need 3.13) make an image
of their own, built by a tilefarm running on that Python.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tilefarm.blender.runtime_install import check_series, python_for
from tilefarm.errors import TilefarmError

ROOT = Path(__file__).resolve().parent.parent
CONTEXT_PARTS = ("Dockerfile", "pyproject.toml", "setup.py", "README.md", "tilefarm", "pipelines", "splitter", "renderer",
                 "merger", "encoder", "specs")


class ImageError(TilefarmError):
    """Docker could not build or push the image."""


def content_tag(root: Path = ROOT, extra: tuple[str, ...] = ()) -> str:
    """A tag derived from every file that goes into the image (and ``extra``, the runtimes
    asked for): same code and runtimes, same tag."""
    sha = hashlib.sha256("\0".join(extra).encode())
    for part in CONTEXT_PARTS:
        base = root / part
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()
                                                      and "__pycache__" not in p.parts)
        for path in files:
            sha.update(path.relative_to(root).as_posix().encode() + b"\0")
            sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


def image_name(image: str, tag: str) -> str:
    """``registry/name[:tag]`` with its tag replaced by ``tag``."""
    repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repo}:{tag}"


def requirements(root: Path = ROOT) -> list[str]:
    """tilefarm's runtime dependencies, as pyproject.toml lists them."""
    with (root / "pyproject.toml").open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def image_runtimes(series: list[str], own: str | None) -> list[str]:
    """The extra runtimes an image built by this Python holds for ``--blender`` ``series``
    (tilefarm's own is always there); refuse series whose wheels need another Python."""
    python = "%d.%d" % sys.version_info[:2]
    extra: list[str] = []
    for wanted in series:
        wanted = check_series(wanted)
        if python_for(wanted) != python:
            raise ImageError(f"Blender {wanted} needs Python {python_for(wanted)}, and this image "
                             f"is built for Python {python} (the Python running tilefarm): run "
                             f"tilefarm deploy with Python {python_for(wanted)} and a base image "
                             "that has it for those runtimes", flag="--blender")
        if wanted != own and wanted not in extra:
            extra.append(wanted)
    return extra


def prepare_context(root: Path = ROOT, run: Callable[..., Any] = subprocess.run,
                    runtimes: list[str] | None = None) -> None:
    """Put a wheelhouse of every dependency and tilefarm's own wheel in the build context,
    so the image builds without network (pip's own cache makes reruns cheap), and one of
    ``bpy`` (with its own dependencies) per extra runtime in ``wheelhouse/runtimes/<series>``."""
    wheelhouse, dist = root / "wheelhouse", root / "dist"
    wheelhouse.mkdir(exist_ok=True)
    shutil.rmtree(wheelhouse / "runtimes", ignore_errors=True)
    (wheelhouse / "runtimes").mkdir()
    (wheelhouse / "requirements.txt").write_text("\n".join(requirements(root)) + "\n")
    for old in dist.glob("tilefarm-*.whl") if dist.exists() else []:
        old.unlink()
    steps = (
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--wheel-dir", str(wheelhouse), "-r", str(wheelhouse / "requirements.txt")],
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--wheel-dir", str(dist), str(root)],
        *([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--dest", str(wheelhouse / "runtimes" / series),
           f"bpy=={series}.*"] for series in runtimes or []),
    )
    for argv in steps:
        proc = run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " ".join(proc.stderr.split())[-300:]
            raise ImageError(f"pip could not prepare the build context: {tail}", flag="--build")


def build(image: str, root: Path = ROOT, buildargs: dict[str, str] | None = None,
          runtimes: list[str] | None = None) -> str:
    """Build the image from ``Dockerfile`` with the extra Blender ``runtimes``, tagged by
    content; return its reference."""
    import docker
    import docker.errors

    prepare_context(root, runtimes=runtimes)
    buildargs = {**(buildargs or {}), "RUNTIMES": " ".join(runtimes or [])}
    ref = image_name(image, content_tag(root, tuple(runtimes or [])))
    try:
        client = docker.from_env()
        client.images.build(path=str(root), dockerfile="Dockerfile", tag=ref, rm=True,
                            buildargs=buildargs)
    except docker.errors.DockerException as exc:
        raise ImageError(f"docker could not build {ref}: {' '.join(str(exc).split())}",
                         flag="--build") from None
    return ref


def push(ref: str) -> None:
    import docker
    import docker.errors

    repo, tag = ref.rsplit(":", 1)
    try:
        for line in docker.from_env().images.push(repo, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise ImageError(f"docker could not push {ref}: {line['error']}", flag="--push")
    except docker.errors.DockerException as exc:
        raise ImageError(f"docker could not push {ref}: {' '.join(str(exc).split())}",
                         flag="--push") from None
