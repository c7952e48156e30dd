"""Reaching a running server from the command line: its URL, token and JSON API."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tilefarm.errors import TilefarmError
from tilefarm.server.farm import SERVER_FILE

TOKEN_ENV = "TILEFARM_TOKEN"
CHUNK = 1 << 20  # bytes copied at a time when a file streams


class ServerError(TilefarmError):
    """The server refused a request or could not be reached."""


def server_of_store(root: Path) -> str | None:
    """The URL of the server that owns the store at ``root``, if one is running."""
    try:
        info = json.loads((root / SERVER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = info.get("url") if isinstance(info, dict) else None
    return url if isinstance(url, str) else None


class Client:
    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get(TOKEN_ENV)

    def _open(self, method: str, path: str, body: Any = None, kind: str = "application/json",
              length: int | None = None) -> Any:
        """The open response; ``body``: bytes, or a file streamed (with its ``length``)."""
        headers = {"Content-Type": kind}
        if length is not None:
            headers["Content-Length"] = str(length)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=body, method=method,
                                         headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=600)
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error") or exc.reason
            except ValueError:
                message = exc.reason
            raise ServerError(str(message), flag="--server") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerError(f"cannot reach the server at {self.url} ({reason}); is "
                              "`tilefarm serve` running?", flag="--server") from None

    def request(self, method: str, path: str, body: bytes | None = None,
                kind: str = "application/json") -> bytes:
        with self._open(method, path, body, kind) as response:
            return response.read()  # type: ignore[no-any-return]

    def download(self, path: str, target: Path) -> None:
        """Stream ``path`` into ``target``, renamed into place once whole."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        try:
            with self._open("GET", path) as response, partial.open("wb") as sink:
                shutil.copyfileobj(response, sink, CHUNK)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)

    def json(self, method: str, path: str, value: Any = None) -> Any:
        body = None if value is None else json.dumps(value).encode()
        if method == "POST" and body is None:
            body = b""
        return json.loads(self.request(method, path, body) or b"null")

    def submit(self, entries: list[tuple[str, Path]]) -> list[str]:
        """Send one packed job (``/<job>.blend`` or ``/<job>/...`` entries) as a tar, written
        to a temporary file and streamed from it."""
        with tempfile.TemporaryFile(prefix="tilefarm-submit-") as spool:
            with tarfile.open(fileobj=spool, mode="w") as tar:
                for path, file in entries:
                    tar.add(file, arcname=path.lstrip("/"), recursive=False)
            length = spool.tell()
            spool.seek(0)
            with self._open("POST", "/api/jobs", spool, "application/x-tar", length) as answer:
                return list(json.loads(answer.read())["jobs"])

    def fetch_zip(self, job: str, target: Path) -> None:
        """Save every output of the job as one ZIP (what the page's "Download all" gives)."""
        self.download(f"/api/jobs/{job}/outputs.zip", target)

    def fetch(self, job: str, out: Path) -> list[Path]:
        """Download the job's frames and video into ``out/<job>/``, each renamed into place
        once whole."""
        written = []
        for item in self.json("GET", f"/api/jobs/{job}/outputs"):
            path = str(item["path"])
            target = out / path.lstrip("/")
            self.download(f"/api/jobs/{job}/outputs{path}", target)
            written.append(target)
        return written
