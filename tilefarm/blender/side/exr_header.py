"""Reads an OpenEXR header without any EXR library (Blender's own Python has none).

The header is a magic number, a version word, then attributes (``name\\0 type\\0 size
value``) up to an empty name. The merger needs two things from it: the channel names a
merged frame holds (Blender loads a missing pass as zeros without an error) and the
string attributes Cycles wrote (Cryptomatte manifests, per-layer render statistics).
"""

import struct

_MAGIC = b"\x76\x2f\x31\x01"


def read_header(path):
    """(channel names, string attributes) of a single-part EXR file."""
    with open(path, "rb") as handle:
        data = handle.read(1 << 20)  # headers are small; 1 MiB holds thousands of channels
    if data[:4] != _MAGIC:
        raise ValueError(f"{path} is not an OpenEXR file")
    i = 8
    channels: list[str] = []
    strings: dict[str, str] = {}
    while True:
        end = data.index(b"\0", i)
        name = data[i:end].decode("utf-8")
        i = end + 1
        if not name:
            return channels, strings
        end = data.index(b"\0", i)
        kind = data[i:end].decode("ascii")
        i = end + 1
        (size,) = struct.unpack("<i", data[i:i + 4])
        value = data[i + 4:i + 4 + size]
        i += 4 + size
        if kind == "string":
            strings[name] = value.decode("utf-8")
        elif kind == "chlist":
            channels = _channels(value)


def _channels(value):
    names, k = [], 0
    while value[k] != 0:
        end = value.index(b"\0", k)
        names.append(value[k:end].decode("utf-8"))
        k = end + 1 + 16  # pixel type, pLinear + reserved, x and y sampling
    return names
