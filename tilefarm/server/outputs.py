"""A job's outputs as the server offers them: each file, or all of them in one ZIP.

The ZIP is zipstream-ng's: members stored, not compressed (PNG, EXR and MP4 are compressed
already), so its size is known before its first byte, and it is streamed from the store's
files as the client reads it. It holds what the output repos' heads hold: finished files
only, whatever is still rendering.
"""

from __future__ import annotations

from typing import Any

from zipstream import ZIP_STORED, ZipStream

from tilefarm.engine.engine import Engine
from tilefarm.engine.store import FileInfo


def job_outputs(engine: Engine, job: str) -> dict[str, FileInfo]:
    """The job's frames and video in the merger and encoder heads, by repo path."""
    found = {}
    for repo in ("merger", "encoder"):
        head = engine.store.head(repo)
        for info in engine.store.files(head.id if head else None, f"/{job}"):
            found[info.path] = info
    return found


def archive(engine: Engine, job: str) -> ZipStream:
    """Every output of the job, each under its repo path without the leading slash."""
    stream = ZipStream(compress_type=ZIP_STORED, sized=True)
    for path, info in sorted(job_outputs(engine, job).items()):
        stream.add_path(str(engine.store.object_path(info.hash)), path.lstrip("/"))
    return stream


def archive_headers(job: str, stream: Any, frames_done: int, frames_total: int
                    ) -> dict[str, str]:
    return {"Content-Length": str(len(stream)),
            "Content-Disposition": f'attachment; filename="{job}.zip"',
            "X-Tilefarm-Frames": f"{frames_done}/{frames_total}"}
