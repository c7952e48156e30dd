"""The HTTP side of ``tilefarm serve``: the JSON API, the live event stream and the page.

Routes (every error is JSON ``{"error": "<one line>"}`` with a 4xx status):

    GET  /                                  the dashboard (static files under /static/)
    GET  /api/jobs                          [{job, state, frames_done, frames_total, eta_s,
                                              priority, ...}]
    GET  /api/jobs/{job}                    one job, with its per-frame seconds, failed
                                            datums and log lines
    GET  /api/jobs/{job}/frames/{frame}     a PNG thumbnail of a finished frame
    GET  /api/jobs/{job}/video              the encoded video (byte ranges served)
    GET  /api/jobs/{job}/outputs            [{path, size}]: frames and video, for fetch
    GET  /api/jobs/{job}/outputs/{path}     one of them
    GET  /api/events                        server-sent events: the jobs list when it changes
    POST /api/jobs                          a tar of one job (tilefarm submit --server)
    POST /api/upload?name=shot.blend        one .blend (the page's upload)
    POST /api/jobs/{job}/pause|resume|cancel
    POST /api/jobs/{job}/priority           {"priority": N}
    POST /api/jobs/{job}/rerender           {"frames": "5-7"} (omitted: every frame)

With a token, every request carries it: ``Authorization: Bearer T``, the ``tilefarm_token``
cookie the page gets from ``/?token=T``, or ``?token=T``.
"""

from __future__ import annotations

import hmac
import json
import re
import tempfile
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from tilefarm.engine.rerender import rerender
from tilefarm.errors import TilefarmError
from tilefarm.plan.frames import parse_frames
from tilefarm.server import state
from tilefarm.server.farm import Farm
from tilefarm.server.intake import MAX_UPLOAD, intake_error, save_blend, take, unpack_tar
from tilefarm.server.previews import partial_frame, thumbnail

JOB = r"(?P<job>[A-Za-z0-9_-][A-Za-z0-9._-]*)"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    """One request; ``farm`` and ``token`` are set on the subclass ``make_handler`` makes."""

    farm: Farm
    token: str | None = None
    server_version = "tilefarm"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (quiet by default)
        pass

    # -- plumbing ----------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None
              ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value: Any, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _authorized(self, query: dict[str, list[str]]) -> bool:
        if self.token is None:
            return True
        offered = []
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            offered.append(auth[7:].strip())
        offered += query.get("token", [])
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "tilefarm_token":
                offered.append(value)
        return any(hmac.compare_digest(o.encode(), self.token.encode()) for o in offered)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_UPLOAD:
            raise ApiError(413, f"the upload is {length} bytes; at most {MAX_UPLOAD} are taken")
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> dict[str, Any]:
        try:
            value = json.loads(self._body() or b"{}")
        except ValueError:
            raise ApiError(400, "the request body is not JSON") from None
        if not isinstance(value, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return value

    def _dispatch(self, routes: list[tuple[str, Any]]) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        try:
            if not self._authorized(query):
                raise ApiError(401, "this server needs its token: send Authorization: Bearer "
                                    "TOKEN (or open the page as /?token=TOKEN)")
            for pattern, method in routes:
                match = re.fullmatch(pattern, url.path)
                if match:
                    method(self, query, **{k: unquote(v) for k, v in match.groupdict().items()})
                    return
            raise ApiError(404, f"no such endpoint: {self.command} {url.path}")
        except ApiError as exc:
            self._json({"error": str(exc)}, exc.status)
        except TilefarmError as exc:
            self._json({"error": " ".join(str(exc).split())}, 400)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:  # noqa: N802  (http.server's names)
        self._dispatch(GET_ROUTES)

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch(GET_ROUTES)

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch(POST_ROUTES)

    # -- pages and static files ----------------------------------------------------------------

    def page(self, query: dict[str, list[str]]) -> None:
        body = (resources.files("tilefarm.server") / "static" / "index.html").read_bytes()
        headers = {}
        if self.token and query.get("token"):
            headers["Set-Cookie"] = (f"tilefarm_token={query['token'][0]}; Path=/; HttpOnly; "
                                     "SameSite=Strict")
        self._send(200, body, STATIC_TYPES[".html"], headers)

    def static(self, query: dict[str, list[str]], name: str) -> None:
        path = resources.files("tilefarm.server") / "static" / name
        suffix = Path(name).suffix
        if suffix not in STATIC_TYPES or not path.is_file():
            raise ApiError(404, f"no such file: /static/{name}")
        self._send(200, path.read_bytes(), STATIC_TYPES[suffix])

    # -- reading -------------------------------------------------------------------------------

    def jobs(self, query: dict[str, list[str]]) -> None:
        self._json(self.farm.snapshot if self.farm.version else self._views())

    def _views(self) -> list[dict[str, Any]]:
        with self.farm.reader() as engine:
            return [v.document() for v in state.all_views(engine, self.farm.busy)]

    def _known(self, engine: Any, job: str) -> None:
        if job not in state.shots(engine):
            raise ApiError(404, f"no job {job!r} on this server")

    def job(self, query: dict[str, list[str]], job: str) -> None:
        with self.farm.reader() as engine:
            self._known(engine, job)
            document = state.view(engine, job, self.farm.busy).document()
            rows = state.job_rows(engine, job)
            document["seconds_per_frame"] = {str(k): round(v, 3) for k, v in
                                             state.task_seconds(engine, job, rows).items()}
            document["peak_memory_per_frame"] = {str(k): v for k, v in
                                                 state.frame_memory(engine, job, rows).items()}
            document["tiles"] = state.tile_usage(engine, job, rows)
            document["failures"] = state.failures(engine, job)
            document["log"] = log_lines(self.farm.root, engine, job)
        self._json(document)

    def frame(self, query: dict[str, list[str]], job: str, frame: str) -> None:
        with self.farm.reader() as engine:
            self._known(engine, job)
            info = state.frame_files(engine, job).get(int(frame))
            if info is not None:
                data = thumbnail(engine.store.object_path(info.hash))
                self._send(200, data, "image/png")
                return
            tiles = state.tile_files(engine, job).get(int(frame))
            plan = state.plan_of(engine, job)
            if not tiles or plan is None:
                raise ApiError(404, f"frame {int(frame)} of job {job!r} has no tile rendered yet")
            data = partial_frame(plan["width"], plan["height"],
                                 [(meta, engine.store.object_path(exr.hash)) for meta, exr in tiles])
        self._send(200, data, "image/png",
                   {"X-Tilefarm-Tiles": f"{len(tiles)}/{len(plan['tiles'])}"})

    def video(self, query: dict[str, list[str]], job: str) -> None:
        with self.farm.reader() as engine:
            self._known(engine, job)
            info = state.video_file(engine, job)
            if info is None:
                raise ApiError(404, f"job {job!r} has no video yet")
            path = engine.store.object_path(info.hash)
        self._ranged(path, "video/mp4")

    def _ranged(self, path: Path, kind: str) -> None:
        size = path.stat().st_size
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if not match or not (match.group(1) or match.group(2)):
            self._send(200, path.read_bytes(), kind, {"Accept-Ranges": "bytes"})
            return
        start = int(match.group(1)) if match.group(1) else max(0, size - int(match.group(2)))
        end = min(size - 1, int(match.group(2))) if match.group(1) and match.group(2) else size - 1
        with path.open("rb") as handle:
            handle.seek(start)
            body = handle.read(end - start + 1)
        self._send(206, body, kind, {"Accept-Ranges": "bytes",
                                     "Content-Range": f"bytes {start}-{end}/{size}"})

    def listing(self, query: dict[str, list[str]], job: str) -> None:
        with self.farm.reader() as engine:
            self._known(engine, job)
            self._json([{"path": path, "size": info.size}
                        for path, info in sorted(job_outputs(engine, job).items())])

    def output(self, query: dict[str, list[str]], job: str, path: str) -> None:
        with self.farm.reader() as engine:
            self._known(engine, job)
            info = job_outputs(engine, job).get(path)
            if info is None:
                raise ApiError(404, f"job {job!r} has no output {path!r}")
            self._send(200, engine.store.object_path(info.hash).read_bytes(),
                       "application/octet-stream")

    def events(self, query: dict[str, list[str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = -1
        try:
            while not self.farm.stopping.is_set():
                version, snapshot = self.farm.wait_change(seen, timeout=15.0)
                if version == seen:
                    self.wfile.write(b": keep-alive\n\n")
                else:
                    seen = version
                    self.wfile.write(b"event: jobs\ndata: " + json.dumps(snapshot).encode()
                                     + b"\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return

    # -- changing ------------------------------------------------------------------------------

    def submit(self, query: dict[str, list[str]]) -> None:
        data = self._body()
        with tempfile.TemporaryDirectory(prefix="tilefarm-upload-") as tmp:
            folder = Path(tmp)
            try:
                self._taken(take_entry(self.farm, unpack_tar(data, folder)))
            except TilefarmError as exc:
                raise ApiError(400, intake_error(exc, folder)) from None

    def upload(self, query: dict[str, list[str]]) -> None:
        name = (query.get("name") or [""])[0]
        data = self._body()
        with tempfile.TemporaryDirectory(prefix="tilefarm-upload-") as tmp:
            folder = Path(tmp)
            try:
                self._taken(take_entry(self.farm, save_blend(data, name, folder)))
            except TilefarmError as exc:
                raise ApiError(400, intake_error(exc, folder)) from None

    def _taken(self, jobs: list[str]) -> None:
        self.farm.poke()
        self._json({"jobs": jobs}, 201)

    def control(self, query: dict[str, list[str]], job: str, verb: str) -> None:
        with self.farm.reader() as engine:
            self._known(engine, job)
        control = self.farm.engine.control  # the one whose cancel kills running datums
        {"pause": control.pause, "resume": control.resume, "cancel": control.cancel}[verb](job)
        self.farm.poke()
        self.farm._dirty.set()
        self._json({"job": job, "done": verb})

    def priority(self, query: dict[str, list[str]], job: str) -> None:
        value = self._json_body().get("priority")
        if type(value) is not int:
            raise ApiError(400, "priority must be an integer, e.g. {\"priority\": 10}")
        with self.farm.reader() as engine:
            self._known(engine, job)
            engine.control.set_priority(job, value)
        self.farm._dirty.set()
        self._json({"job": job, "priority": value})

    def rerender_frames(self, query: dict[str, list[str]], job: str) -> None:
        spec = self._json_body().get("frames")
        if spec is not None and not isinstance(spec, str):
            raise ApiError(400, "frames must be a string such as \"5-7\"")
        frames = set(parse_frames(spec, flag="frames")) if spec else None
        with self.farm.reader() as engine:
            self._known(engine, job)
            count = rerender(engine, job, frames)
        self.farm.poke()
        self._json({"job": job, "datums": count})


def take_entry(farm: Farm, entry: Path) -> list[str]:
    with farm.reader() as engine:
        return take(engine.store, entry, farm.intake_runner)


def job_outputs(engine: Any, job: str) -> dict[str, Any]:
    """The job's frames and video in the merger and encoder heads, by repo path."""
    found = {}
    for repo in ("merger", "encoder"):
        head = engine.store.head(repo)
        for info in engine.store.files(head.id if head else None, f"/{job}"):
            found[info.path] = info
    return found


def log_lines(root: Path, engine: Any, job: str, limit: int = 60) -> list[str]:
    """The last lines mentioning ``job`` in the logs of the pipeline jobs on its version."""
    logs: list[Path] = []
    for row in reversed(state.current_jobs(engine, job)):
        folder = root / "logs" / row["pipeline"] / row["id"]
        logs += sorted(folder.glob("*.log")) if folder.is_dir() else []
    logs += sorted((root / "logs").glob("*/warm-*.log"))  # warm workers serve many jobs
    lines = [line.strip() for log in dict.fromkeys(logs)
             for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
             if job in line]
    return lines[-limit:]


GET_ROUTES = [
    (r"/", Handler.page),
    (r"/static/(?P<name>[a-z0-9_.-]+)", Handler.static),
    (r"/api/jobs", Handler.jobs),
    (rf"/api/jobs/{JOB}", Handler.job),
    (rf"/api/jobs/{JOB}/frames/(?P<frame>[0-9]{{1,9}})", Handler.frame),
    (rf"/api/jobs/{JOB}/video", Handler.video),
    (rf"/api/jobs/{JOB}/outputs", Handler.listing),
    (rf"/api/jobs/{JOB}/outputs(?P<path>/.+)", Handler.output),
    (r"/api/events", Handler.events),
]
POST_ROUTES = [
    (r"/api/jobs", Handler.submit),
    (r"/api/upload", Handler.upload),
    (rf"/api/jobs/{JOB}/(?P<verb>pause|resume|cancel)", Handler.control),
    (rf"/api/jobs/{JOB}/priority", Handler.priority),
    (rf"/api/jobs/{JOB}/rerender", Handler.rerender_frames),
]


def make_handler(farm: Farm, token: str | None) -> type[Handler]:
    return type("BoundHandler", (Handler,), {"farm": farm, "token": token})
