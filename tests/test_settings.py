import json
from pathlib import Path

import pytest

from tilefarm.errors import SettingsError
from tilefarm.plan.settings import JobSettings, VideoSettings, read_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tilefarm.json"
    path.write_text(text)
    return path


def test_reads_every_key(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"frames": "1-3", "tiles": "2x2", "chunk": 2, "overscan": 8,
                                       "scene": "Shot", "output_format": "JPEG",
                                       "video": {"crf": 20, "codec": "h264"}}))
    s = read_settings(path)
    assert s == JobSettings("1-3", "2x2", 2, 8, "Shot", "JPEG", VideoSettings(codec="h264", crf=20))


@pytest.mark.parametrize("text, needle", [
    ('{"chnk": 2}', "unknown key(s) 'chnk'; allowed: allow_missing, blend, blender, chunk, frames"),
    ('{"chunk": 0}', "chunk: 0 is less than the minimum of 1"),
    ('{"tiles": "0x"}', "tiles: '0x' does not match"),
    ('{"video": {"codec": "gif"}}', "video/codec: 'gif' is not one of"),
    ('{"chunk": 2,}', "not valid JSON (line 1"),
    ('[1]', "is not of type 'object'"),
])
def test_invalid_settings_name_the_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as err:
        read_settings(path)
    assert str(err.value).startswith(str(path))
    assert needle in str(err.value)


def test_later_layers_override_earlier_ones() -> None:
    file = JobSettings(tiles="2x2", chunk=3, video=VideoSettings(crf=20, preset="slow"))
    flags = JobSettings(tiles="4x4", video=VideoSettings(crf=10))
    merged = file.merged(flags)
    assert (merged.tiles, merged.chunk) == ("4x4", 3)
    assert merged.video == VideoSettings(crf=10, preset="slow")
