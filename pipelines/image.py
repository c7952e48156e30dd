"""Building and pushing the one pipeline image with the docker SDK, tagged by content."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tilefarm.errors import TilefarmError

ROOT = Path(__file__).resolve().parent.parent
CONTEXT_PARTS = ("Dockerfile", "pyproject.toml", "setup.py", "README.md", "tilefarm", "pipelines", "splitter", "renderer",
                 "merger", "encoder", "specs")


class ImageError(TilefarmError):
    """Docker could not build or push the image."""


def content_tag(root: Path = ROOT) -> str:
    """A tag derived from every file that goes into the image: same code, same tag."""
    sha = hashlib.sha256()
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


def prepare_context(root: Path = ROOT, run: Callable[..., Any] = subprocess.run) -> None:
    """Put a wheelhouse of every dependency and tilefarm's own wheel in the build context,
    so the image builds without network (pip's own cache makes reruns cheap)."""
    wheelhouse, dist = root / "wheelhouse", root / "dist"
    wheelhouse.mkdir(exist_ok=True)
    (wheelhouse / "requirements.txt").write_text("\n".join(requirements(root)) + "\n")
    for old in dist.glob("tilefarm-*.whl") if dist.exists() else []:
        old.unlink()
    steps = (
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--wheel-dir", str(wheelhouse), "-r", str(wheelhouse / "requirements.txt")],
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--wheel-dir", str(dist), str(root)],
    )
    for argv in steps:
        proc = run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " ".join(proc.stderr.split())[-300:]
            raise ImageError(f"pip could not prepare the build context: {tail}", flag="--build")


def build(image: str, root: Path = ROOT, buildargs: dict[str, str] | None = None) -> str:
    """Build the image from ``Dockerfile``, tagged by content; return its reference."""
    import docker
    import docker.errors

    prepare_context(root)
    ref = image_name(image, content_tag(root))
    try:
        client = docker.from_env()
        client.images.build(path=str(root), dockerfile="Dockerfile", tag=ref, rm=True,
                            buildargs=buildargs or {})
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
