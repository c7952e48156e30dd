"""The API's OpenAPI 3.1 description, served at ``/api/openapi.json``.

Written out rather than generated: it is the contract (the README's API table says the
same in prose, and a test holds the two together), and schemathesis checks the live server
against it in CI.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from tilefarm.server.state import STATES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _obj(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required),
            "properties": {**required, **optional}}


INT = {"type": "integer"}
STR = {"type": "string"}
NUM = {"type": "number"}
SECONDS_OR_NULL = {"type": ["number", "null"]}
CAP = {"type": ["integer", "null"], "minimum": 1, "maximum": 2**31 - 1}
JOB_PARAM = {"name": "job", "in": "path", "required": True, "schema": STR,
             "description": "the job's name: its .blend's stem, or its folder's name"}

JOB = _obj({
    "job": STR, "state": {"enum": list(STATES)}, "frames_done": INT, "frames_total": INT,
    "eta_s": {"type": ["number", "null"]}, "priority": INT, "elapsed_s": NUM, "workers": INT,
    "tasks_done": INT, "tasks_total": INT, "progress": {"type": "number", "minimum": 0},
    "error": {"type": ["string", "null"]}, "video": {"type": "boolean"},
    "frames": {"type": "array", "items": INT},
    "frames_in_flight": {"type": "object", "additionalProperties": INT},
    "peak_memory_bytes": {"type": ["integer", "null"]},
    "max_workers": CAP, "datums_running": {"type": "integer", "minimum": 0},
    "tags": {"type": "array", "items": STR},
    "waiting": {"type": ["string", "null"]},
    "processing_s": NUM, "queuing_s": SECONDS_OR_NULL, "estimate_s": SECONDS_OR_NULL,
})
JOB_DETAIL = {"allOf": [_ref("Job"), _obj({
    "seconds_per_frame": {"type": "object", "additionalProperties": NUM},
    "peak_memory_per_frame": {"type": "object", "additionalProperties": INT},
    "tiles": {"type": "array", "items": _obj({
        "frame": INT, "tile": INT, "render_seconds": NUM,
        "peak_memory_bytes": {"type": ["integer", "null"]}})},
    "failures": {"type": "array", "items": _obj({
        "pipeline": STR, "datum": STR, "inputs": STR, "error": STR})},
    "log": {"type": "array", "items": STR},
})]}
TAKEN = _obj({"jobs": {"type": "array", "items": STR}})
ESTIMATE = _obj({  # tilefarm estimate --json
    "job": STR, "frames": INT,
    "seconds_per_frame": _obj({"min": NUM, "median": NUM, "max": NUM, "min_frame": INT,
                               "max_frame": INT}),
    "cpu_seconds": NUM, "peak_memory_bytes": {"type": ["integer", "null"]},
    "probe_seconds": NUM, "from_history": {"type": "boolean"},
    "workers": {"type": "array", "items": _obj({
        "workers": INT, "makespan_s": NUM, "makespan_low_s": NUM, "makespan_high_s": NUM,
        "cost": SECONDS_OR_NULL})},
})
TEMPLATE = _obj({
    "job": STR,
    "fields": {"type": "array", "items": _obj({
        "field": STR, "kind": {"enum": ["text", "images", "values"]}, "key": STR,
        "type": {"enum": ["string", "file", "boolean", "integer", "number"]}})},
    "variants": {"type": "array", "items": _obj({"name": STR, "job": STR})},
})


def _operation(summary: str, responses: dict[str, Any], *, job: bool = True,
               parameters: list[dict[str, Any]] | None = None,
               body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": ([JOB_PARAM] if job else []) + (parameters or []),
        "responses": {**responses, "401": _error("the server has a token and the request "
                                                 "did not carry it")},
    }
    if body is not None:
        operation["requestBody"] = body
    if job:
        operation["responses"].setdefault("404", _error("no such job (or no such output)"))
    return operation


def _json_body(schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _control(verb: str) -> dict[str, Any]:
    return {"post": _operation(f"{verb} the job", {
        "200": _json(_obj({"job": STR, "done": {"const": verb}}), f"the job is {verb}d")})}


def _paths() -> dict[str, Any]:
    binary = {"type": "string", "format": "binary"}
    return {
        "/api/jobs": {
            "get": _operation("every job, as the dashboard shows it", {
                "200": _json({"type": "array", "items": _ref("Job")}, "the jobs")}, job=False),
            "post": _operation("submit one packed job, as a tar (tilefarm submit --server)", {
                "201": _json(TAKEN, "the jobs it made (a template makes one per variant)"),
                "400": _error("not a job tilefarm render would take, and why"),
                "413": _error("over 8 GiB")}, job=False,
                body={"required": True,
                      "content": {"application/x-tar": {"schema": binary},
                                  "application/octet-stream": {"schema": binary}}}),
        },
        "/api/upload": {
            "post": _operation("upload one .blend (the page's upload)", {
                "201": _json(TAKEN, "the jobs it made"),
                "400": _error("not a .blend, a bad name, or a job render would refuse"),
                "413": _error("over 8 GiB")}, job=False,
                parameters=[{"name": "name", "in": "query", "required": True,
                             "schema": {"type": "string", "pattern": r"\.blend$"},
                             "description": "the file's name, e.g. shot.blend"}],
                body={"required": True,
                      "content": {"application/octet-stream": {"schema": binary}}}),
        },
        "/api/events": {
            "get": _operation("server-sent events: `event: jobs` with the jobs list whenever "
                              "it changes", {
                                  "200": {"description": "an endless event stream",
                                          "content": {"text/event-stream": {"schema": STR}}}},
                              job=False),
        },
        "/api/jobs/{job}": {
            "get": _operation("one job, with per-frame seconds and memory, tiles, failures "
                              "and log lines", {"200": _json(_ref("JobDetail"), "the job")}),
        },
        "/api/jobs/{job}/frames/{frame}": {
            "get": _operation("a PNG thumbnail of a frame: finished, or its tiles so far", {
                "200": {"description": "the thumbnail (X-Tilefarm-Tiles: k/n while the frame "
                                       "renders)",
                        "content": {"image/png": {"schema": binary}}}},
                parameters=[{"name": "frame", "in": "path", "required": True,
                             "schema": {"type": "integer", "minimum": 0}}]),
        },
        "/api/jobs/{job}/video": {
            "get": _operation("the encoded video; byte ranges are served", {
                "200": {"description": "the video", "content": {"video/mp4": {"schema": binary}}},
                "206": {"description": "the range asked for",
                        "content": {"video/mp4": {"schema": binary}}},
                "416": {"description": "a range outside the file"}}),
        },
        "/api/jobs/{job}/outputs": {
            "get": _operation("the job's frames and video in the output repos", {
                "200": _json({"type": "array", "items": _obj({"path": STR, "size": INT})},
                             "each output's repo path and size")}),
        },
        "/api/jobs/{job}/outputs/{path}": {
            "get": _operation("one output's bytes", {
                "200": {"description": "the file",
                        "content": {"application/octet-stream": {"schema": binary}}}},
                parameters=[{"name": "path", "in": "path", "required": True, "schema": STR,
                             "description": "as the listing gives it, without its leading /"}]),
        },
        "/api/jobs/{job}/outputs.zip": {
            "get": _operation("every output in one ZIP, members stored; mid-render, the "
                              "frames finished so far", {
                                  "200": {"description": "the archive",
                                          "headers": {
                                              "Content-Length": {"schema": INT},
                                              "Content-Disposition": {"schema": STR},
                                              "X-Tilefarm-Frames": {
                                                  "description": "frames done/total",
                                                  "schema": {"type": "string",
                                                             "pattern": r"^\d+/\d+$"}}},
                                          "content": {"application/zip": {"schema": binary}}}}),
        },
        "/api/jobs/{job}/estimate": {
            "get": _operation("how long the job takes, as tilefarm estimate --json: from this "
                              "server's renders of the shot, else by probe renders here "
                              "(made once per version of the job)", {
                                  "200": _json(_ref("Estimate"), "the estimate"),
                                  "422": _error("the job cannot be estimated, and why")}),
        },
        "/api/jobs/{job}/pause": _control("pause"),
        "/api/jobs/{job}/resume": _control("resume"),
        "/api/jobs/{job}/cancel": _control("cancel"),
        "/api/jobs/{job}/priority": {
            "post": _operation("set the job's priority (higher goes first)", {
                "200": _json(_obj({"job": STR, "priority": INT}), "the priority set"),
                "400": _error("not an integer"), "413": _error("a body over 1 MiB")},
                body=_json_body(_obj({"priority": {"type": "integer", "minimum": -2**31,
                                                   "maximum": 2**31 - 1}}), required=True)),
        },
        "/api/jobs/{job}/max_workers": {
            "post": _operation("cap the datums of the job that run at once (null lifts it)", {
                "200": _json(_obj({"job": STR, "max_workers": CAP}), "the cap set"),
                "400": _error("not an integer of 1 or more, nor null"),
                "413": _error("a body over 1 MiB")},
                body=_json_body(_obj({"max_workers": CAP}), required=True)),
        },
        "/api/jobs/{job}/rerender": {
            "post": _operation("render frames again (all when frames is omitted)", {
                "200": _json(_obj({"job": STR, "datums": INT}), "how many datums run again"),
                "400": _error("not a frame list"), "413": _error("a body over 1 MiB")},
                body=_json_body({"type": "object", "properties": {
                    "frames": {"type": "string", "description": "e.g. 5-7 or 1,3,10-12"}}})),
        },
        "/api/templates": {
            "get": _operation("each template job the server keeps: the fields its form "
                              "offers, and its variants that are jobs", {
                                  "200": _json({"type": "array", "items": TEMPLATE},
                                               "the templates")}, job=False),
        },
        "/api/templates/{job}/variants": {
            "post": _operation("make a variant of a template from a form: job <job>-<name>", {
                "201": _json(_obj({"job": STR}), "the variant's job"),
                "400": _error("a bad name or field: intake's one-line error"),
                "404": _error("no such template"), "413": _error("over 8 GiB")},
                body={"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": STR, "max_workers": {
                        "type": "string", "description": "the most datums of the variant's job "
                                                         "at once (empty: no cap)"}},
                    "additionalProperties": {"oneOf": [STR, binary]}}}}}),
        },
        "/api/openapi.json": {
            "get": _operation("this description", {
                "200": _json({"type": "object"}, "OpenAPI 3.1")}, job=False),
        },
    }


@cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "tilefarm", "version": "1",
                 "description": "The render farm's API: jobs, their frames and video, and "
                                "job control. With a token, send Authorization: Bearer TOKEN."},
        "paths": _paths(),
        "security": [{}, {"token": []}],  # a server started with --token needs it
        "components": {
            "schemas": {"Error": _obj({"error": STR}), "Job": JOB, "JobDetail": JOB_DETAIL,
                        "Estimate": ESTIMATE},
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
    }
