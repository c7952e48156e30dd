import re
from pathlib import Path

import pytest
import zstandard

from tests.conftest import Scenes
from tilefarm.blender.blendfile import check_blend
from tilefarm.errors import BlendFileError


def test_a_real_blend_passes(scenes: Scenes) -> None:
    header = check_blend(scenes["plain"])
    assert header.pointer_size == 8 and header.version == 405 and header.compressed is None


def test_a_zstd_compressed_blend_passes(scenes: Scenes, tmp_path: Path) -> None:
    packed = tmp_path / "packed.blend"
    packed.write_bytes(zstandard.ZstdCompressor().compress(scenes["plain"].read_bytes()))
    assert check_blend(packed).compressed == "zstd"


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_truncated_blend_is_refused(scenes: Scenes, tmp_path: Path, keep: float) -> None:
    data = scenes["plain"].read_bytes()
    cut = tmp_path / "cut.blend"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(BlendFileError, match="truncated") as err:
        check_blend(cut)
    assert str(cut) in str(err.value)


@pytest.mark.parametrize("name, content, needle", [
    ("empty.blend", b"", "the file is empty"),
    ("notes.txt", b"hello", "not a .blend file (suffix '.txt')"),
    ("fake.blend", b"PK\x03\x04 zip data", "no BLENDER header"),
    ("short.blend", b"BLENDER-v", "no BLENDER header"),
])
def test_not_a_blend(tmp_path: Path, name: str, content: bytes, needle: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BlendFileError, match=re.escape(needle)):
        check_blend(path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(BlendFileError, match="no such file"):
        check_blend(tmp_path / "nope.blend")


@pytest.mark.parametrize("head, blender", [
    (b"BLENDER-v405REND", "4.5"),  # Blender 4.x: 12-byte header
    (b"BLENDER17-01v0500REND", "5.0"),  # Blender 5.x: 17-byte header (docs/blender-versions.md)
    (b"BLENDER17-01v0502REND", "5.2"),
])
def test_the_saving_blender_is_read_from_the_header(tmp_path: Path, head: bytes,
                                                    blender: str) -> None:
    import struct

    blend = tmp_path / "x.blend"
    endb = (struct.pack("<4siQii", b"ENDB", 0, 0, 0, 0) if head.startswith(b"BLENDER-")
            else b"")
    blend.write_bytes(head[:-4] + endb if endb else head + b"\0" * 32)
    assert check_blend(blend).blender == blender
    compressed = tmp_path / "z.blend"
    compressed.write_bytes(zstandard.ZstdCompressor().compress(blend.read_bytes()))
    assert check_blend(compressed).blender == blender
