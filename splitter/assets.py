"""Every file a job's main .blend depends on, found without running Blender.

Blender Asset Tracer (BAT, PyPI ``blender-asset-tracer``, what Flamenco packs with) reads
the .blend's DNA and walks its data blocks; ``blender_asset_tracer.trace.deps`` follows
linked IDs into their library files (``trace.file2blocks.BlockIterator``), so one call
covers the main file and every library it reaches, recursively, and reports each path as
the data block stores it (``//tex/a.png``, ``//../tex/b.png``, ``/abs/c.png``) with the file
that names it. Zstd-compressed .blend files (Blender 5.x) need ``zstandard``.

What BAT 1.23 traces (block code -> ``Dependency.kind``): images ``IM`` (``image``,
``sequence``, ``movie``, ``udim`` by the image's source; packed and generated images are not
files), libraries ``LI`` (``library``), sounds ``SO`` (``sound``), fonts ``VF`` (``font``,
not ``<builtin>``), cache files ``CF`` (``cache``: Alembic/USD, also through MeshSequenceCache
modifiers), volumes ``VO`` (``volume``), movie clips ``MC`` (``movie``), external mesh
custom data ``ME`` (``mesh``), Mesh Cache/Ocean/Fluid modifier caches (``cache``), point
caches of particles, cloth, smoke, dynamic paint (``pointcache``), geometry-nodes bakes
(``bake``), IES files of light node trees (``ies``) and sequencer strips (``strip``).

What BAT 1.23 misses (measured against ``bpy.utils.blend_paths`` on a 4.5 file, or read in
its source; a later step fills these from ``blend_paths`` in the Blender child): IES files of
material and world node trees (only light trees are read); OSL script nodes' files; soft body
disk caches (no handler for that modifier); Alembic/USD override layers (``CacheFile.layers``,
only ``filepath`` is read); text datablocks' files (never rendered: scripts stay off). In a
library only the blocks reachable from linked IDs are walked, and line styles (``LS``) and
brushes (``BR``) are never expanded, so their textures there are missed. Neither BAT nor
``blend_paths`` reports the other views of a multi-view image (``eye_R.png`` beside the named
``eye_L.png``), file paths typed into geometry-nodes inputs (Import OBJ/STL/PLY nodes), or
the OCIO config. Sequences are found by globbing the first file's stem (``frame_*.png``) or
the ``<UDIM>`` pattern, so a sequence may list a few files Blender never reads.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from blender_asset_tracer import cdefs
from blender_asset_tracer import trace as bat_trace
from blender_asset_tracer.blendfile import close_all_cached, set_strict_pointer_mode
from blender_asset_tracer.blendfile import exceptions as bat_errors
from blender_asset_tracer.blendfile import iterators
from blender_asset_tracer.trace import file_sequence, progress
from blender_asset_tracer.trace.result import BlockUsage

from tilefarm.blender.blendfile import check_blend
from tilefarm.errors import BlendFileError

# BAT logs a missing file or library as a WARNING; with no handler configured, Python's
# last-resort handler would print it to stderr, and tilefarm's errors are one line there.
# Missing files are reported in the Dependency list instead.
logging.getLogger("blender_asset_tracer").addHandler(logging.NullHandler())
# A pointer to data the file does not hold is skipped, not an error: BAT's library default
# raises SegmentationFault, its own CLI turns that off (``--strict-pointers`` is opt-in).
# Blender 4.5 writes such pointers: every geometry-nodes modifier without bakes names a
# ``bakes`` array that is not in the file, and strict BAT fails on the whole .blend.
set_strict_pointer_mode(False)

# ID codes (the first two bytes of a block's ID name) as a user names the datablock.
_ID_LABELS = {
    "IM": "image", "LI": "library", "SO": "sound", "VF": "font", "CF": "cache file",
    "VO": "volume", "MC": "movie clip", "ME": "mesh", "OB": "object", "SC": "scene",
    "LA": "light", "MA": "material", "WO": "world", "NT": "node group",
}
_ID_KINDS = {b"LI": "library", b"SO": "sound", b"VF": "font", b"CF": "cache",
             b"VO": "volume", b"MC": "movie", b"ME": "mesh"}
_IMAGE_KINDS = {cdefs.IMA_SRC_FILE: "image", cdefs.IMA_SRC_SEQUENCE: "sequence",
                cdefs.IMA_SRC_MOVIE: "movie", cdefs.IMA_SRC_TILED: "udim"}
# Non-ID blocks BAT reports a path from (modifier data, point caches, node storage).
_STRUCT_KINDS = {
    "PointCache": "pointcache", "MeshCacheModifierData": "cache",
    "OceanModifierData": "cache", "FluidsimSettings": "cache", "FluidDomainSettings": "cache",
    "NodesModifierData": "bake", "NodesModifierBake": "bake", "NodeShaderTexIES": "ies",
    "Strip": "strip", "StripData": "strip",
}
# Users of non-ID blocks BAT cannot name (it reports them as "-unnamed-").
_STRUCT_USERS = {"Strip": "sequencer strip", "StripData": "sequencer strip",
                 "NodeShaderTexIES": "IES texture node of a light"}
_MODIFIERS = b".modifiers["


@dataclass(frozen=True)
class Dependency:
    """One file a job needs: how a .blend names it and where it is on this machine.

    A sequence, UDIM set or cache directory gives one Dependency per file found (all with
    the same ``path``, the pattern as named), or one with ``exists=False`` when none is.
    """

    path: str  # as the .blend names it: "//tex/wood.png", "//../tex/a.png", "/abs/tex.png"
    resolved: Path  # absolute path of the file on this machine (symlinks kept)
    kind: str  # image, sequence, udim, movie, sound, font, library, cache, volume, ...
    user: str  # the datablock that names it, e.g. "image 'wood.png'", "library 'props.blend'"
    blend: Path  # the .blend file whose block names it (the main file or a library)
    exists: bool
    size: int  # bytes, 0 if missing

    def describe(self) -> str:
        """One line for a listing or an error: who names which path, from which file."""
        state = f"{self.size} bytes" if self.exists else "missing"
        return f"{self.user} in {self.blend.name} names {self.path} ({self.resolved}): {state}"


class _Opened(progress.Callback):
    """Remembers the .blend BAT opened last (``trace_blendfile`` fires on every open),
    so a read error names the library that failed, not only the main file."""

    def __init__(self, first: Path) -> None:
        self.current = first

    def trace_blendfile(self, filename: Path) -> None:
        self.current = filename


# blend -> (what its trace saw of the files, the trace): one intake traces a job several
# times (plan, listing, packing); BAT decodes the whole file each time.
_TRACED: dict[Path, tuple[tuple[object, ...], list[Dependency]]] = {}
_TRACED_KEEP = 16


def _seen(blend: Path, found: list[Dependency]) -> tuple[object, ...]:
    """What a trace of ``blend`` depends on: the .blend, each dependency, and the folders of
    sets of files (a frame added to a sequence changes its folder)."""
    def stat(path: Path) -> object:
        try:
            info = path.stat()
            return (info.st_size, info.st_mtime_ns)
        except OSError:
            return None
    folders = sorted({d.resolved.parent for d in found
                      if d.kind in ("sequence", "udim", "cache")} | {d.resolved for d in found
                                                                     if d.kind == "cache"})
    return (stat(blend), *(stat(d.resolved) for d in found), *(stat(f) for f in folders))


def trace(blend: Path) -> list[Dependency]:
    """Every dependency of ``blend`` and of the libraries it links, recursively: sorted,
    without duplicates, missing files included (``exists=False``). A trace is reused while
    nothing it saw has changed.

    Raises BlendFileError naming the file when ``blend`` or a library it links cannot be read.
    Not thread-safe: BAT keeps opened files in one module-level cache, closed on return.
    """
    blend = Path(os.path.abspath(blend))
    known = _TRACED.get(blend)
    if known is not None and _seen(blend, known[1]) == known[0]:
        return list(known[1])
    found = _trace(blend)
    if len(_TRACED) >= _TRACED_KEEP:
        _TRACED.pop(next(iter(_TRACED)))
    _TRACED[blend] = (_seen(blend, found), found)
    return list(found)


def _trace(blend: Path) -> list[Dependency]:
    check_blend(blend)  # clear messages for a missing, empty, truncated or foreign file
    opened = _Opened(blend)
    found: set[Dependency] = set()
    try:
        for usage in bat_trace.deps(blend, opened):
            found.update(_dependencies(usage))
    except (bat_errors.BlendFileError, bat_errors.NoReaderImplemented,
            bat_errors.SegmentationFault, OSError, EOFError, struct.error, ValueError,
            KeyError, IndexError, UnicodeDecodeError) as exc:
        raise BlendFileError(f"Blender Asset Tracer cannot read it ({_reason(exc)}); expected "
                             "a .blend file saved by Blender", path=opened.current) from None
    finally:
        close_all_cached()
    return sorted(found, key=lambda d: (str(d.blend) != str(blend), str(d.blend), d.path,
                                        str(d.resolved), d.kind, d.user))


def _reason(exc: Exception) -> str:
    if isinstance(exc, (struct.error, EOFError)):  # a block header or struct read past the end
        return "truncated or damaged: a data block ends past the end of the file"
    detail = " ".join(str(exc).split()) or "no details"
    return f"{exc.__class__.__name__}: {detail}"


# Sequencer strip types whose file is their sound datablock's (SEQ_TYPE_SOUND_RAM/_HD).
_SOUND_STRIPS = (4, 5)


def _sound_strip_data(usage: BlockUsage) -> bool:
    """True for the strip data of a sound strip. It plays its bSound, which BAT traces on its
    own ('SO' block); BAT 1.23 also reports the strip data's stale dir + name ("/tone.wav"
    for a strip whose sound reads //tone.wav), a file Blender never reads."""
    block = usage.block
    if block.dna_type_name != "Strip":
        return False
    for scene in block.bfile.find_blocks_from_code(b"SC"):
        editor = scene.get_pointer(b"ed")
        if editor is None:
            continue
        for seq, seq_type in iterators.sequencer_strips(editor):
            if seq_type in _SOUND_STRIPS and seq.get(b"strip") == block.addr_old:
                return True
    return False


def _dependencies(usage: BlockUsage) -> list[Dependency]:
    """The Dependency of each file of one BAT usage (several for a sequence)."""
    if _sound_strip_data(usage):
        return []
    named = os.fsdecode(bytes(usage.asset_path))
    resolved = Path(usage.abspath)
    kind, user = _kind(usage), _user(usage)
    blend = Path(os.path.abspath(usage.block.bfile.filepath))
    files = [resolved]
    if usage.is_sequence:
        try:
            # BAT's own expansion: a <UDIM> or * pattern globbed, a directory walked, or the
            # first file's digits stripped and globbed (frame_001.png -> frame_*.png).
            files = list(file_sequence.expand_sequence(resolved)) or [resolved]
        except file_sequence.DoesNotExist:
            files = [resolved]
    return [_one(named, f, kind, user, blend) for f in files]


def _one(named: str, file: Path, kind: str, user: str, blend: Path) -> Dependency:
    exists = file.is_file()
    return Dependency(path=named, resolved=file, kind=kind, user=user, blend=blend,
                      exists=exists, size=file.stat().st_size if exists else 0)


def _kind(usage: BlockUsage) -> str:
    block = usage.block
    if block.code == b"IM":
        source = block.get(b"source", default=cdefs.IMA_SRC_FILE)
        return _IMAGE_KINDS.get(source, "image")
    if block.code in _ID_KINDS:
        return _ID_KINDS[block.code]
    name = block.dna_type_name
    return _STRUCT_KINDS.get(name, name.lower())


def _user(usage: BlockUsage) -> str:
    """The datablock as the user knows it: ``image 'wood.png'``, ``object 'Cube' modifiers[0]``.

    BAT names a usage by the ID name of its block (two-letter code + name) or, for data
    reached through a modifier, ``<object ID name>.modifiers[i]``; a sequencer strip has no
    name of its own (``-unnamed-``) and is called by its struct."""
    raw = usage.block_name if isinstance(usage.block_name, bytes) else b""
    suffix = b""
    if _MODIFIERS in raw:
        at = raw.index(_MODIFIERS)
        raw, suffix = raw[:at], raw[at + 1:]
    code, name = raw[:2].decode("ascii", "replace"), raw[2:].decode("utf-8", "replace")
    label = _ID_LABELS.get(code)
    if label is None:
        struct_name = usage.block.dna_type_name
        return _STRUCT_USERS.get(struct_name, struct_name)
    text = f"{label} '{name}'"
    return f"{text} {suffix.decode('utf-8', 'replace')}" if suffix else text
