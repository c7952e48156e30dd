"""Atomic file writes: a reader sees the whole file or none of it."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def sha256_file(path: Path, extra: bytes = b"") -> str:
    """The hex sha256 of a file's bytes (then ``extra``), read in 1 MiB blocks."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    sha.update(extra)
    return sha.hexdigest()


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, document: Any) -> None:
    """Write a JSON document atomically, with a trailing newline."""
    write_bytes(path, (json.dumps(document, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def copy_file(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` through a temporary file beside it and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish(tmp: Path, path: Path) -> None:
    """Move a finished file into place atomically, across filesystems too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        copy_file(tmp, path)
        Path(tmp).unlink(missing_ok=True)


def cache_dir(env: str, name: str) -> Path:
    """A cache folder of tilefarm's: ``$env`` when set, else ``tilefarm/<name>`` under
    ``$XDG_CACHE_HOME`` (default ``~/.cache``)."""
    explicit = os.environ.get(env)
    if explicit:
        return Path(explicit)
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "tilefarm" / name
