"""What every request passes: the token check, the headers every answer carries, and the
wording of errors (one line, never a server path)."""

from __future__ import annotations

import hmac
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_COOKIE = "tilefarm_token"


class ApiError(Exception):
    """A request refused: ``status`` (4xx) and one line saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, one_line(message)


def one_line(text: str) -> str:
    return " ".join(text.split())


# A datum's inputs sit under .../work/<job id>/<worker>/pfs/<input>/...: what the user knows
# is <input>/... (the pipeline's input and the job's own file).
PFS_PATH = re.compile(r"(?:/[^\s'\"]*)?/pfs/")


def scrub(text: Any, root: Path) -> Any:
    """``text`` with the server's own paths cut to what the job knows them as: a datum's
    files by their place in its input (``renderer/shot/tiles/000001/t0003.exr``), other
    files of the store by their place in it."""
    if not isinstance(text, str):
        return text
    return PFS_PATH.sub("", text).replace(f"{root}/", "")


def offered_tokens(scope: Scope) -> list[str]:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    offered = []
    auth = headers.get("authorization", "")
    if auth.startswith("Bearer "):
        offered.append(auth[7:].strip())
    for part in scope.get("query_string", b"").decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if name == "token":
            offered.append(unquote_plus(value))
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == TOKEN_COOKIE:
            offered.append(value)
    return offered


class TokenGate:
    """ASGI middleware: refuses a request without the server's token (when it has one), and
    marks every answer ``Cache-Control: no-store`` (the farm changes under the page)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token is not None and not any(
                hmac.compare_digest(o.encode(), self.token.encode())
                for o in offered_tokens(scope)):
            body = json.dumps({"error": "this server needs its token: send Authorization: "
                                        "Bearer TOKEN (or open the page as /?token=TOKEN)"})
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": body.encode()})
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, marked)
