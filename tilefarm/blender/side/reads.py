"""Which external files Blender reads to render a scene, and which it names but never reads.

A .blend names more files than a render reads: ``bpy.utils.blend_paths`` also lists every
``ID.library_weak_reference`` (the asset file a datablock was appended from with Reuse
Data, by the Asset Browser, by copy-paste between files, or in the factory startup file
itself), the file a Text datablock was loaded from (its text is stored in the .blend), and
the files of datablocks nothing in the scene uses. Deciding from that list refuses
Blender's own default scene. Here the decision is made from what the render uses:

- the datablocks reachable from the scene through ``bpy.data.user_map()`` (its objects,
  their data and materials, world, node trees, sequencer, other scenes it composites);
- the files those datablocks name, as ``bpy.data.file_path_map()`` gives them per
  datablock (it leaves weak references out, as Blender's own path traversal can);
- the library files the reachable linked datablocks come from, and their parents.

Text datablocks are never read from disk by a render, even when reachable (an OSL Script
node in internal mode reads the text stored in the .blend).
"""

import os

import bpy

# ID types whose own file a render never reads.
_NEVER_READ = ("TEXT",)


def _reached(scene):
    """Every ID the scene uses, directly or through other IDs (the scene included)."""
    uses: dict = {}
    for used, users in bpy.data.user_map().items():
        for user in users:
            uses.setdefault(user, set()).add(used)
    reached, todo = set(), [scene]
    while todo:
        idb = todo.pop()
        if idb in reached:
            continue
        reached.add(idb)
        todo.extend(uses.get(idb, ()))
    return reached


def _absolute(path, library):
    return os.path.normpath(bpy.path.abspath(path, library=library))


def _label(idb):
    kind = getattr(idb, "id_type", "") or type(idb).__name__
    return f"{kind.lower().replace('_', ' ')} {idb.name!r}"


def _all_ids():
    for attr in dir(bpy.data):
        collection = getattr(bpy.data, attr, None)
        if isinstance(collection, bpy.types.bpy_prop_collection) and attr != "window_managers":
            yield from (idb for idb in collection if isinstance(idb, bpy.types.ID))


def render_reads(scene):
    """(the absolute paths Blender reads to render ``scene``, {absolute path: why it is
    named but not read} for every other path the file names)."""
    reached = _reached(scene)
    libraries = set()
    for idb in reached:
        library = idb.library
        while library is not None and library not in libraries:
            libraries.add(library)
            library = library.parent
    read: set = set()
    unread: dict = {}
    for idb, paths in bpy.data.file_path_map(include_libraries=False).items():
        used = (idb in reached or idb in libraries) and idb.id_type not in _NEVER_READ
        for path in paths:
            if not path:
                continue
            full = _absolute(path, idb.library)
            if used:
                read.add(full)
            elif idb.id_type in _NEVER_READ:
                unread.setdefault(full, f"{_label(idb)} was loaded from it; its text is "
                                        "stored in the .blend")
            elif idb.id_type == "LIBRARY":
                unread.setdefault(full, f"{_label(idb)} is linked, but scene "
                                        f"{scene.name!r} uses nothing from it")
            else:
                unread.setdefault(full, f"{_label(idb)} names it, but scene "
                                        f"{scene.name!r} does not use it")
    for idb in _all_ids():
        weak = getattr(idb, "library_weak_reference", None)
        if weak is not None and weak.filepath:
            unread.setdefault(_absolute(weak.filepath, None),
                              f"{_label(idb)} remembers the asset file it was appended from "
                              "(a weak library reference)")
    return read, {path: why for path, why in unread.items() if path not in read}
