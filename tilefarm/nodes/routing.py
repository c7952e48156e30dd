"""Which Blender runtime a datum needs, read on the head from the datum's own files.

A node advertises its runtimes as Ray resources (``blender-5.0``; ``tilefarm join``), and a
datum goes only to a node that has the runtime its job renders with:

- a render task names it (``tasks/<task>.json``: ``blender``);
- the merger's and encoder's datums carry the job's plan (``blender.rendered_by``);
- the splitter's datum is the job's source: its runtime is chosen as the splitter chooses
  it (``plan.versions.choose_runtime``), from the main .blend's header and the job's
  ``tilefarm.json``, among the runtimes of the whole cluster.

None: any node may run it (a datum of no job, or one the splitter will refuse anyway,
with the reason it gives today).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache

from tilefarm.blender.blendfile import blend_header
from tilefarm.engine.datums import Datum
from tilefarm.engine.store import FileInfo, Store
from tilefarm.errors import TilefarmError
from tilefarm.plan.settings import SETTINGS_FILE, read_settings
from tilefarm.plan.versions import choose_runtime

RESOURCE_PREFIX = "blender-"  # a node's runtime 5.0 is the Ray resource "blender-5.0"
_JSON_LIMIT = 16 * 1024 * 1024


def runtime_needed(store: Store, datum: Datum, series: Sequence[str]) -> str | None:
    files = tuple(info for part in datum.parts for info in part.files)
    return _needed(store, files, tuple(series))


@lru_cache(maxsize=65536)
def _needed(store: Store, files: tuple[FileInfo, ...], series: tuple[str, ...]) -> str | None:
    for info in files:
        parts = info.path.strip("/").split("/")
        if len(parts) == 2 and parts[1] == "plan.json":
            return _field(store, info, "blender", "rendered_by")
        if len(parts) == 3 and parts[1] == "tasks" and parts[2].endswith(".json"):
            return _field(store, info, "blender")
    return _source_runtime(store, files, series)


def _field(store: Store, info: FileInfo, *keys: str) -> str | None:
    if info.size > _JSON_LIMIT:
        return None
    try:
        value = json.loads(store.object_path(info.hash).read_bytes())
        for key in keys:
            value = value[key]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def _source_runtime(store: Store, files: tuple[FileInfo, ...],
                    series: tuple[str, ...]) -> str | None:
    """The runtime the splitter will choose for a job source (``splitter.intake``)."""
    top = [i for i in files if i.path.lower().endswith(".blend")
           and i.path.count("/") <= 2]
    settings = next((i for i in files if i.path.count("/") == 2
                     and i.path.endswith("/" + SETTINGS_FILE)), None)
    try:
        wanted = blend = None
        if settings is not None:
            read = read_settings(store.object_path(settings.hash))
            wanted, blend = read.blender, read.blend
        if blend is not None:
            top = [i for i in top if i.path.rsplit("/", 1)[-1] == blend]
        # A store's object is named by its hash: read by content, not by name.
        saved = {blend_header(store.object_path(i.hash)).blender for i in top}
        if len(saved) != 1:
            return None  # no .blend, or several saved by different Blenders
        return choose_runtime(saved.pop(), series, wanted=wanted).rendered_by
    except (TilefarmError, OSError):
        return None
