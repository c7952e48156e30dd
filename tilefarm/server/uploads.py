"""Request bodies that carry files: streamed to a private folder on the store's disk as they
arrive, never held whole in memory, and removed whatever happens (an upload cut short
leaves nothing behind)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request

from tilefarm.server.gate import ApiError
from tilefarm.server.intake import MAX_UPLOAD

CHUNK = 1 << 20  # bytes written at a time


class UploadFolder(tempfile.TemporaryDirectory):  # type: ignore[type-arg]
    """``STORE/uploads/upload-*/``, as a Path, for one request."""

    def __init__(self, root: Path) -> None:
        (root / "uploads").mkdir(exist_ok=True)
        super().__init__(prefix="upload-", dir=root / "uploads")

    def __enter__(self) -> Path:  # type: ignore[override]
        return Path(self.name)


async def receive_to(request: Request, target: Path) -> None:
    """Stream the request's body into ``target``, refusing more than MAX_UPLOAD bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_UPLOAD):
        raise ApiError(413 if declared.isdigit() else 400,
                       f"the upload is {declared} bytes; at most {MAX_UPLOAD} are taken")
    size = 0
    try:
        with target.open("wb") as sink:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise ApiError(413, f"the upload is over {MAX_UPLOAD} bytes; at most "
                                        f"{MAX_UPLOAD} are taken")
                sink.write(chunk)
    except ClientDisconnect:
        raise ApiError(400, "the upload was cut short; nothing was taken") from None


async def variant_form(request: Request, folder: Path
                       ) -> tuple[str, dict[str, str], dict[str, tuple[str, Path]]]:
    """The template form's fields: the variant's name, its ``text.X``/``values.Y`` fields,
    and its ``images.Z`` files (datablock -> (the file's name, where it was saved))."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD:
        raise ApiError(413, f"the form is {declared} bytes; at most {MAX_UPLOAD} are taken")
    try:
        form = await request.form(max_files=64, max_fields=256)
    except (ClientDisconnect, MultiPartException) as exc:
        raise ApiError(400, f"not a form this endpoint takes ({exc}); send "
                            "multipart/form-data") from None
    name = ""
    fields: dict[str, str] = {}
    images: dict[str, tuple[str, Path]] = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                kind, _, datablock = key.partition(".")
                if kind != "images" or not datablock:
                    raise ApiError(400, f"{key}: only images.<datablock> fields take a file")
                saved = folder / f"image-{len(images)}"
                with saved.open("wb") as sink:
                    while chunk := await value.read(CHUNK):
                        sink.write(chunk)
                images[datablock] = (value.filename or "image.png", saved)
            elif key == "name":
                name = value.strip()
            else:
                fields[key] = value
    finally:
        await form.close()
    return name, fields, images
