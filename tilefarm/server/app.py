"""The HTTP side of ``tilefarm serve``: the JSON API, the live event stream and the page, as
a Starlette application (uvicorn serves it; sse-starlette streams the events).

The routes, their bodies and their answers are described at ``/api/openapi.json``
(``server.openapi``); the README's API table lists the same. Every error is JSON
``{"error": "<one line>"}`` with a 4xx status. Files (uploads, frames, the video, outputs)
stream: none is held whole in memory. Blocking work (the store, Blender Asset Tracer,
thumbnails) runs in Starlette's thread pool, never on the event loop.

With a token, every request carries it: ``Authorization: Bearer T``, the ``tilefarm_token``
cookie the page gets from ``/?token=T``, or ``?token=T``.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tilefarm.engine.rerender import rerender
from tilefarm.errors import TilefarmError
from tilefarm.plan.frames import parse_frames
from tilefarm.server import state, templates
from tilefarm.server.farm import Farm
from tilefarm.server.gate import ApiError, TokenGate, one_line, scrub
from tilefarm.server.intake import blend_name, intake_error, unpack_tar
from tilefarm.server.openapi import document as openapi_document
from tilefarm.server.outputs import archive, archive_headers, job_outputs
from tilefarm.server.previews import partial_frame, thumbnail
from tilefarm.server.uploads import UploadFolder, receive_to, variant_form

class Changes:
    """Every version of the farm's view (made on the farm's watcher thread), in order, for the
    event streams (on the event loop): each subscriber is sent every version, never only
    the latest, so a state that lasts a moment reaches it too. The last HISTORY are kept; a
    subscriber further behind skips to those."""

    HISTORY = 256

    def __init__(self, version: int, data: bytes) -> None:
        self.event = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.versions: deque[tuple[int, bytes]] = deque([(version, data)], maxlen=self.HISTORY)

    def changed(self, version: int, data: bytes) -> None:  # any thread
        self.loop.call_soon_threadsafe(self._add, version, data)

    def _add(self, version: int, data: bytes) -> None:
        self.versions.append((version, data))
        self.event.set()
        self.event = asyncio.Event()

    def since(self, seen: int) -> list[tuple[int, bytes]]:
        return [(v, d) for v, d in self.versions if v > seen]


class Api:
    """The endpoints, on one farm."""

    def __init__(self, farm: Farm) -> None:
        self.farm = farm
        self.changes: Changes | None = None

    # -- reading -------------------------------------------------------------------------------

    def page(self, request: Request) -> Response:
        body = (resources.files("tilefarm.server") / "static" / "index.html").read_bytes()
        response = Response(body, media_type="text/html; charset=utf-8")
        token = request.query_params.get("token")
        if token and request.app.state.token:
            response.set_cookie("tilefarm_token", token, httponly=True, samesite="strict")
        return response

    def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(openapi_document())

    async def jobs(self, request: Request) -> Response:
        if not self.farm.version:  # before the watcher's first view: computed once, aside
            return Response(await run_in_threadpool(self.farm.current_view),
                            media_type="application/json")
        return Response(self.farm.snapshot_json, media_type="application/json")

    def _known(self, engine: Any, job: str) -> None:
        if job not in state.shots(engine):
            raise ApiError(404, f"no job {job!r} on this server")

    def job(self, request: Request) -> JSONResponse:
        job = request.path_params["job"]
        with self.farm.reader() as engine:
            self._known(engine, job)
            document = state.view(engine, job, self.farm.busy).document()
            rows = state.job_rows(engine, job)
            document["seconds_per_frame"] = {str(k): round(v, 3) for k, v in
                                             state.task_seconds(engine, job, rows).items()}
            document["peak_memory_per_frame"] = {str(k): v for k, v in
                                                 state.frame_memory(engine, job, rows).items()}
            document["tiles"] = state.tile_usage(engine, job, rows)
            document["failures"] = [{**f, "error": scrub(f.get("error"), self.farm.root)}
                                    for f in state.failures(engine, job)]
            document["log"] = [scrub(line, self.farm.root) for line in
                               log_lines(self.farm.root, engine, job)]
        document["error"] = scrub(document.get("error"), self.farm.root)
        document["estimate_s"] = self.farm.estimate_of(job)
        return JSONResponse(document)

    def estimate(self, request: Request) -> JSONResponse:
        job = request.path_params["job"]
        with self.farm.reader() as engine:
            self._known(engine, job)
        try:
            return JSONResponse(self.farm.estimate(job))
        except TilefarmError as exc:
            raise ApiError(422, scrub(one_line(str(exc)), self.farm.root)) from None

    def frame(self, request: Request) -> Response:
        job, frame = request.path_params["job"], request.path_params["frame"]
        with self.farm.reader() as engine:
            self._known(engine, job)
            info = state.frame_files(engine, job).get(frame)
            if info is not None:
                return Response(thumbnail(engine.store.object_path(info.hash)),
                                media_type="image/png")
            tiles = state.tile_files(engine, job).get(frame)
            plan = state.plan_of(engine, job)
            if not tiles or plan is None:
                raise ApiError(404, f"frame {frame} of job {job!r} has no tile rendered yet")
            data = partial_frame(plan["width"], plan["height"],
                                 [(meta, engine.store.object_path(exr.hash)) for meta, exr in tiles])
        return Response(data, media_type="image/png",
                        headers={"X-Tilefarm-Tiles": f"{len(tiles)}/{len(plan['tiles'])}"})

    def video(self, request: Request) -> FileResponse:
        job = request.path_params["job"]
        with self.farm.reader() as engine:
            self._known(engine, job)
            info = state.video_file(engine, job)
            if info is None:
                raise ApiError(404, f"job {job!r} has no video yet")
            path = engine.store.object_path(info.hash)
        return FileResponse(path, media_type="video/mp4")  # byte ranges too

    def listing(self, request: Request) -> JSONResponse:
        job = request.path_params["job"]
        with self.farm.reader() as engine:
            self._known(engine, job)
            return JSONResponse([{"path": path, "size": info.size}
                                 for path, info in sorted(job_outputs(engine, job).items())])

    def output(self, request: Request) -> FileResponse:
        job, path = request.path_params["job"], "/" + request.path_params["path"]
        with self.farm.reader() as engine:
            self._known(engine, job)
            info = job_outputs(engine, job).get(path)
            if info is None:
                raise ApiError(404, f"job {job!r} has no output {path!r}")
            return FileResponse(engine.store.object_path(info.hash),
                                media_type="application/octet-stream")

    def outputs_zip(self, request: Request) -> StreamingResponse:
        job = request.path_params["job"]
        with self.farm.reader() as engine:
            self._known(engine, job)
            view = state.view(engine, job, self.farm.busy)
            stream = archive(engine, job)
        return StreamingResponse(stream, media_type="application/zip", headers=archive_headers(
            job, stream, view.frames_done, view.frames_total))

    async def events(self, request: Request) -> EventSourceResponse:
        changes = self.changes
        assert changes is not None  # set by the lifespan, before any request

        async def stream() -> AsyncIterator[dict[str, str]]:
            seen = -1
            while not self.farm.stopping.is_set():
                event = changes.event  # taken first: a change after this wakes the wait
                newer = changes.since(seen)
                for version, data in newer if seen >= 0 else newer[-1:]:  # first: the latest
                    seen = version
                    yield {"event": "jobs", "data": data.decode()}
                if newer:
                    continue
                try:
                    await asyncio.wait_for(event.wait(), timeout=5.0)
                except TimeoutError:
                    pass

        return EventSourceResponse(stream(), ping=15, sep="\n",
                                   headers={"Cache-Control": "no-store"})

    # -- changing ------------------------------------------------------------------------------

    async def submit(self, request: Request) -> JSONResponse:
        """A tar of one job, streamed to a file of the store's, then unpacked and taken."""
        with UploadFolder(self.farm.root) as folder:
            tarball = folder / "job.tar"
            await receive_to(request, tarball)
            job = folder / "job"
            job.mkdir()
            return await run_in_threadpool(self._take, lambda: unpack_tar(tarball, job), job)

    async def upload(self, request: Request) -> JSONResponse:
        """One .blend, named by ``?name=``: the name is checked before the body is read."""
        name = request.query_params.get("name", "")
        with UploadFolder(self.farm.root) as folder:
            job = folder / "job"
            job.mkdir()
            try:
                target = job / blend_name(name)
            except TilefarmError as exc:
                raise ApiError(400, intake_error(exc, job)) from None
            await receive_to(request, target)
            return await run_in_threadpool(self._take, lambda: target, job)

    def _take(self, entry: Callable[[], Path], folder: Path) -> JSONResponse:
        try:
            jobs = self.farm.take(entry())
        except TilefarmError as exc:
            raise ApiError(400, intake_error(exc, folder)) from None
        self.farm.poke()
        return JSONResponse({"jobs": jobs}, status_code=201)

    def templates(self, request: Request) -> JSONResponse:
        with self.farm.reader() as engine:
            jobs = set(state.shots(engine))
        return JSONResponse(templates.listing(self.farm.root, jobs))

    async def add_variant(self, request: Request) -> JSONResponse:
        """``POST /api/templates/{job}/variants``: multipart form data, ``name``,
        ``text.<object>``, ``values.<prop>`` and ``images.<datablock>`` files."""
        job = request.path_params["job"]
        if job not in templates.kept(self.farm.root):
            raise ApiError(404, f"no template {job!r} on this server")
        with UploadFolder(self.farm.root) as folder:
            name, fields, images = await variant_form(request, folder)
            made = folder / "job"
            made.mkdir()
            try:
                taken = await run_in_threadpool(self.farm.add_variant, job, name, fields, images,
                                                made)
            except TilefarmError as exc:
                raise ApiError(400, intake_error(exc, made)) from None
        self.farm.poke()
        return JSONResponse({"job": taken}, status_code=201)

    def control(self, request: Request) -> JSONResponse:
        job, verb = request.path_params["job"], request.url.path.rsplit("/", 1)[1]
        with self.farm.reader() as engine:
            self._known(engine, job)
        control = self.farm.engine.control  # the one whose cancel kills running datums
        {"pause": control.pause, "resume": control.resume, "cancel": control.cancel}[verb](job)
        self.farm.poke()
        self.farm.refresh()
        return JSONResponse({"job": job, "done": verb})

    async def priority(self, request: Request) -> JSONResponse:
        value = (await json_object(request)).get("priority")
        if type(value) is not int or not -(2**31) <= value < 2**31:
            raise ApiError(400, "priority must be an integer, e.g. {\"priority\": 10}")
        return await run_in_threadpool(self._set_priority, request.path_params["job"], value)

    def _set_priority(self, job: str, value: int) -> JSONResponse:
        with self.farm.reader() as engine:
            self._known(engine, job)
            engine.control.set_priority(job, value)
        self.farm.refresh()
        return JSONResponse({"job": job, "priority": value})

    async def max_workers(self, request: Request) -> JSONResponse:
        body = await json_object(request)
        value = body.get("max_workers", ...)
        if value is not None and (type(value) is not int or not 1 <= value < 2**31):
            raise ApiError(400, "max_workers must be an integer of 1 or more, or null to lift "
                                "the cap, e.g. {\"max_workers\": 2}")
        return await run_in_threadpool(self._set_max_workers, request.path_params["job"], value)

    def _set_max_workers(self, job: str, value: int | None) -> JSONResponse:
        with self.farm.reader() as engine:
            self._known(engine, job)
        self.farm.engine.control.set_max_workers(job, value)  # wakes the engine's workers
        self.farm.refresh()
        return JSONResponse({"job": job, "max_workers": value})

    async def rerender_frames(self, request: Request) -> JSONResponse:
        spec = (await json_object(request)).get("frames")
        if spec is not None and not isinstance(spec, str):
            raise ApiError(400, "frames must be a string such as \"5-7\"")
        frames = set(parse_frames(spec, flag="frames")) if spec else None
        return await run_in_threadpool(self._rerender, request.path_params["job"], frames)

    def _rerender(self, job: str, frames: set[int] | None) -> JSONResponse:
        with self.farm.reader() as engine:
            self._known(engine, job)
            count = rerender(engine, job, frames)
        self.farm.poke()
        self.farm.refresh()
        return JSONResponse({"job": job, "datums": count})


async def json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > 1 << 20:
        raise ApiError(413, "a JSON body is at most 1 MiB")
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "the request body is not JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return value


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


def error_response(request: Request, exc: Exception) -> JSONResponse:
    """Every error as one line of JSON."""
    if isinstance(exc, ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    if isinstance(exc, TilefarmError):
        return JSONResponse({"error": one_line(str(exc))}, status_code=400)
    assert isinstance(exc, HTTPException)
    path = request.url.path
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # every method of every route on the path, not the first's
        allowed = {m for r in request.app.routes if isinstance(r, Route) and r.methods
                   and r.path_regex.fullmatch(path) for m in r.methods}
        headers["Allow"] = ", ".join(sorted(allowed))
    message = {404: f"no such endpoint: {request.method} {path}",
               405: f"{request.method} is not allowed on {path}"}.get(
                   exc.status_code, one_line(str(exc.detail)))
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=headers)


def build_app(farm: Farm, token: str | None) -> TokenGate:
    api = Api(farm)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        api.changes = Changes(farm.version, farm.snapshot_json)
        farm.listeners.append(api.changes.changed)
        yield
        farm.listeners.remove(api.changes.changed)

    job = "/api/jobs/{job}"
    routes = [
        Route("/", api.page),
        Mount("/static", app=StaticFiles(packages=[("tilefarm.server", "static")])),
        Route("/api/openapi.json", api.openapi),
        Route("/api/jobs", api.jobs),
        Route("/api/jobs", api.submit, methods=["POST"]),
        Route("/api/upload", api.upload, methods=["POST"]),
        Route("/api/events", api.events),
        Route("/api/templates", api.templates),
        Route("/api/templates/{job}/variants", api.add_variant, methods=["POST"]),
        Route(job, api.job),
        Route(job + "/frames/{frame:int}", api.frame),
        Route(job + "/video", api.video),
        Route(job + "/outputs", api.listing),
        Route(job + "/outputs/{path:path}", api.output),
        Route(job + "/outputs.zip", api.outputs_zip),
        Route(job + "/estimate", api.estimate),
        *[Route(f"{job}/{verb}", api.control, methods=["POST"])
          for verb in ("pause", "resume", "cancel")],
        Route(job + "/priority", api.priority, methods=["POST"]),
        Route(job + "/max_workers", api.max_workers, methods=["POST"]),
        Route(job + "/rerender", api.rerender_frames, methods=["POST"]),
    ]
    handlers: dict[Any, Any] = {ApiError: error_response, TilefarmError: error_response,
                                HTTPException: error_response}
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.token = token
    return TokenGate(app, token)
