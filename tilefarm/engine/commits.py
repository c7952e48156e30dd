"""What a finished job commits: the outputs its datums recorded, or why it failed."""

from __future__ import annotations

from tilefarm.engine.store import FileInfo, Store, in_shot, records


def job_error(store: Store, job: str, failed: int, crash: str | None) -> str | None:
    """Why the job fails: tilefarm's own failure, or its first failed datum's error."""
    if crash is not None or not failed:
        return crash
    rows = records.job_datums(store, job, "failed")
    return f"{failed} datum(s) failed: {rows[0]['error'] if rows else ''}"


def job_files(store: Store, job: str) -> dict[str, tuple[list[str], FileInfo]]:
    """Each path the job's datums (run or skipped) wrote -> the datums that wrote it, and
    the last one's file."""
    files: dict[str, tuple[list[str], FileInfo]] = {}
    for r in records.job_outputs(store, job):
        writers = files.get(r["path"], ([], None))[0]
        if r["datum"] not in writers:
            writers.append(r["datum"])
        files[r["path"]] = (writers, FileInfo(r["path"], r["hash"], r["size"]))
    return files


def conflicts(files: dict[str, tuple[list[str], FileInfo]], shot: str | None) -> str | None:
    """Why these outputs cannot be committed: two datums wrote one path (Pachyderm 2.x fails
    the job then), or a shot job's datum wrote outside its shot."""
    for path, (writers, _) in files.items():
        if len(writers) > 1:
            return f"datums {writers[0][:12]} and {writers[1][:12]} both wrote {path}"
        if shot is not None and not in_shot(path, shot):
            return (f"datum {writers[0][:12]} of job {shot} wrote {path}, outside /{shot}/ "
                    "(jobs run by shot write only their own)")
    return None
