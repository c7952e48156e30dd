"""Checks a .blend file's container without Blender, so bad input fails fast and clearly.

A .blend is a 12-byte header (``BLENDER``, pointer size ``_``/``-``, endianness
``v``/``V``, version) followed by blocks (code, length, old pointer, SDNA index,
count) up to an ``ENDB`` block. Blender 3.0+ may zstd-compress the whole file,
older ones gzip it. Walking the block headers finds a truncated file without
reading its data, the way Blender Asset Tracer reads files.
"""

from __future__ import annotations

import gzip
import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from tilefarm.errors import BlendFileError

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
_WANT = "a .blend file saved by Blender"


@dataclass(frozen=True)
class BlendHeader:
    pointer_size: int
    little_endian: bool
    version: int  # e.g. 405 for Blender 4.5
    compressed: str | None  # "zstd", "gzip" or None

    @property
    def blender(self) -> str:
        """The Blender major.minor that saved the file: 405 -> "4.5", 500 -> "5.0"."""
        return f"{self.version // 100}.{self.version % 100}"


def check_blend(path: Path) -> BlendHeader:
    """Raise BlendFileError naming ``path`` unless it is a complete .blend file."""
    if not path.exists():
        raise BlendFileError(f"no such file; expected {_WANT}", path=path)
    if not path.is_file():
        raise BlendFileError(f"not a file; expected {_WANT}", path=path)
    if path.suffix.lower() != ".blend":
        raise BlendFileError(f"not a .blend file (suffix {path.suffix or 'none'!r}); "
                             f"expected {_WANT}", path=path)
    return blend_header(path)


def blend_header(path: Path) -> BlendHeader:
    """``check_blend`` by content alone, whatever the file's name (a store's object)."""
    if path.stat().st_size == 0:
        raise BlendFileError(f"the file is empty; expected {_WANT}", path=path)
    with path.open("rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        if magic == _ZSTD_MAGIC:
            reader: BinaryIO = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore[assignment]
            compressed: str | None = "zstd"
        elif magic[:2] == _GZIP_MAGIC:
            reader = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
            compressed = "gzip"
        else:
            reader, compressed = raw, None
        try:
            return _walk(reader, path, compressed)
        except (OSError, EOFError, zstandard.ZstdError) as exc:
            raise BlendFileError(f"the file is truncated or corrupt ({exc}); expected {_WANT}",
                                 path=path) from None


def _walk(reader: BinaryIO, path: Path, compressed: str | None) -> BlendHeader:
    head = _read(reader, 12)
    if len(head) < 12 or not head.startswith(b"BLENDER"):
        raise BlendFileError(f"not a .blend file (no BLENDER header); expected {_WANT}", path=path)
    if head[7:8].isdigit():
        # Blender 5.0's large-header format: "BLENDER17-01v0500". Blender 4.5 reads it;
        # its block layout differs, so only the header is checked here.
        rest = _read(reader, 5)
        version = int((head + rest)[13:17])
        return BlendHeader(8, True, version, compressed)
    pointer = {b"_": 4, b"-": 8}.get(head[7:8])
    endian = {b"v": "<", b"V": ">"}.get(head[8:9])
    if pointer is None or endian is None or not head[9:12].isdigit():
        raise BlendFileError(f"unreadable .blend header {head!r}; expected {_WANT}", path=path)
    bhead = struct.Struct(f"{endian}4si{'I' if pointer == 4 else 'Q'}ii")
    while True:
        block = _read(reader, bhead.size)
        if len(block) < bhead.size:
            raise BlendFileError("the file is truncated (it ends before its ENDB block); "
                                 f"expected {_WANT}", path=path)
        code, length = bhead.unpack(block)[:2]
        if code == b"ENDB":
            return BlendHeader(pointer, endian == "<", int(head[9:12]), compressed)
        if length < 0 or _skip(reader, length, seekable=compressed is None) < length:
            raise BlendFileError("the file is truncated (a data block runs past the end); "
                                 f"expected {_WANT}", path=path)


def _read(reader: BinaryIO, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = reader.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _skip(reader: BinaryIO, size: int, *, seekable: bool) -> int:
    """Skip ``size`` bytes; return how many were there."""
    if seekable:
        start = reader.tell()
        end = reader.seek(0, io.SEEK_END)
        reader.seek(min(start + size, end))
        return min(size, end - start)
    skipped = 0
    while skipped < size:
        chunk = reader.read(min(1 << 20, size - skipped))
        if not chunk:
            break
        skipped += len(chunk)
    return skipped
