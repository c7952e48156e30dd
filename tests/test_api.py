"""The server's HTTP contract without Blender: its OpenAPI description against its routes
and the README, schemathesis against the live server, errors, uploads cut short, and
writes seen by the very next read."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema

from tests.conftest import ROOT, assert_one_line_error, run_cli
from tests.serverkit import api, running_server, wait_for
from tilefarm.engine.engine import Engine
from tilefarm.server.openapi import document

TOKEN = "s3cret"


def readme_endpoints() -> set[tuple[str, str]]:
    """(method, path) of every row of the README's API table; ``/resume`` after
    ``.../pause`` and ``.../outputs/{path}`` after ``.../outputs`` name siblings."""
    found = set()
    for row in (ROOT / "README.md").read_text().splitlines():
        match = re.match(r"\| `(GET|POST) ([^`? ]+)[^`]*`(.*?) \|", row)
        if not match:
            continue
        method, path, rest = match.groups()
        found.add((method, path))
        for sibling in re.findall(r"`([./][^`]*)`", rest):
            if sibling.startswith("..."):  # from the base's segment it names on
                tail = sibling[len("..."):]
                found.add((method, path[:path.rindex("/" + tail.split("/")[1])] + tail))
            else:
                found.add((method, path.rsplit("/", 1)[0] + sibling))
    return found


def schema_of(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}", "components": document()["components"]}


def conforms(value: Any, name: str) -> None:
    """``value`` is what the OpenAPI description says a ``name`` is."""
    jsonschema.validate(value, schema_of(name))


def test_the_openapi_description_matches_the_routes_and_the_readme(tmp_path: Path) -> None:
    from starlette.routing import Route

    from tilefarm.server.app import build_app
    from tilefarm.server.farm import Farm

    farm = Farm(tmp_path / "store")
    try:
        app = build_app(farm, None).app
        served = {(m, r.path.replace(":int", "").replace(":path", ""))
                  for r in app.routes if isinstance(r, Route) and r.path.startswith("/api/")
                  for m in r.methods or () if m != "HEAD"}
    finally:
        farm.engine.close()
    described = {(m.upper(), path) for path, ops in document()["paths"].items() for m in ops}
    assert served == described
    assert readme_endpoints() == described
    jsonschema.Draft202012Validator.check_schema(schema_of("JobDetail"))


def test_the_live_server_conforms_to_its_openapi_description(tmp_path: Path) -> None:
    """schemathesis fuzzes every operation (the event stream aside: it never ends): no 5xx,
    every status, content type, header and body as described. Once on random job names
    (404s), once on a job the store has (a broken one: it fails without Blender)."""
    root = tmp_path / "store"
    engine = Engine(root)
    engine.store.create_repo("blends")
    blend = tmp_path / "demo.blend"
    blend.write_bytes(b"BLENDER-v405 not a blend at all")
    engine.store.put_files("blends", "master", [("/demo.blend", blend)])
    engine.close()
    config = tmp_path / "schemathesis.toml"
    config.write_text('[parameters]\n"path.job" = "demo"\n')
    with running_server(root, "--token", TOKEN) as url:
        failed = wait_for(lambda: (j := api(url, "GET", "/api/jobs", token=TOKEN)[1]) and
                          j[0]["state"] == "failed" and j[0], 60, "the broken job to fail")
        # The datum's own error, as the job knows it: no store path.
        assert failed["error"].startswith("blends/demo.blend: the file is truncated")
        assert str(root) not in failed["error"] and "/pfs/" not in failed["error"]
        runs = []
        for extra in ([], ["--config-file", str(config)]):  # side by side
            argv = [str(Path(sys.executable).parent / "schemathesis"), *extra, "run",
                    f"{url}/api/openapi.json", "-H", f"Authorization: Bearer {TOKEN}",
                    "--exclude-path", "/api/events", "--max-examples", "15", "--seed", "7",
                    "--checks", "not_a_server_error,status_code_conformance,"
                    "content_type_conformance,response_headers_conformance,"
                    "response_schema_conformance,negative_data_rejection",
                    "--suppress-health-check", "all"]
            runs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         text=True, cwd=tmp_path))
        for run in runs:
            output, _ = run.communicate(timeout=600)
            assert run.returncode == 0, output[-8000:]


def test_errors_are_one_line_of_json(tmp_path: Path) -> None:
    with running_server(tmp_path / "store") as url:
        assert api(url, "GET", "/api/nope") == (404, {"error": "no such endpoint: GET /api/nope"})
        assert api(url, "GET", "/static/nope.js")[0] == 404
        assert api(url, "POST", "/api/jobs/x/priority", [1]) == (
            400, {"error": "the request body must be a JSON object"})
        request = urllib.request.Request(url + "/api/jobs", method="DELETE")
        try:
            urllib.request.urlopen(request, timeout=30)
            raise AssertionError("DELETE was taken")
        except urllib.error.HTTPError as exc:
            assert exc.code == 405 and exc.headers["Allow"] == "GET, HEAD, POST"
            assert json.loads(exc.read()) == {"error": "DELETE is not allowed on /api/jobs"}
        status, answer = raw_post(url, "/api/upload?name=big.blend", 9 << 30, b"")
        assert status == 413 and "at most 8589934592" in answer


def raw_post(url: str, path: str, length: int, body: bytes, *, cut: bool = False
             ) -> tuple[int, str]:
    """POST ``body`` declared as ``length`` bytes; ``cut``: then close the connection, an
    upload cut short. The answer, if the server sent one."""
    where = urllib.parse.urlparse(url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as conn:
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + body)
        if cut:
            return 0, ""
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, text = answer.decode(errors="replace").partition("\r\n\r\n")
    return int(head.split()[1]), text


def test_an_upload_cut_short_leaves_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with running_server(root) as url:
        raw_post(url, "/api/upload?name=cut.blend", 64 << 20, b"BLENDER" + bytes(4 << 20),
                 cut=True)
        raw_post(url, "/api/jobs", 64 << 20, bytes(4 << 20), cut=True)
        wait_for(lambda: not any((root / "uploads").iterdir()), 30,
                 "the cut uploads to be removed")
        assert api(url, "GET", "/api/jobs") == (200, [])


def test_a_write_shows_in_the_very_next_read(tmp_path: Path) -> None:
    root = tmp_path / "store"
    engine = Engine(root)
    engine.store.create_repo("blends")
    engine.control.pause("demo")  # nothing of it runs: its state is the writes' alone
    blend = tmp_path / "demo.blend"
    blend.write_bytes(b"BLENDER-v405 never read")
    engine.store.put_files("blends", "master", [("/demo.blend", blend)])
    engine.close()
    with running_server(root) as url:
        for value in (5, -3, 40):
            assert api(url, "POST", "/api/jobs/demo/priority", {"priority": value})[0] == 200
            assert api(url, "GET", "/api/jobs")[1][0]["priority"] == value
        assert api(url, "GET", "/api/jobs")[1][0]["state"] == "paused"
        for cap in (2, None, 1):
            assert api(url, "POST", "/api/jobs/demo/max_workers", {"max_workers": cap}) == (
                200, {"job": "demo", "max_workers": cap})
            assert api(url, "GET", "/api/jobs")[1][0]["max_workers"] == cap
        for bad in (0, -1, 1.5, "2", True):
            assert api(url, "POST", "/api/jobs/demo/max_workers", {"max_workers": bad}) == (
                400, {"error": "max_workers must be an integer of 1 or more, or null to lift "
                               "the cap, e.g. {\"max_workers\": 2}"})
        assert api(url, "GET", "/api/jobs")[1][0]["max_workers"] == 1  # nothing changed
        proc = run_cli("set", "max-workers", "demo", "3", "--server", url)
        assert proc.returncode == 0 and proc.stdout.strip() == "tilefarm: demo: at most 3 datum(s) at once"
        assert api(url, "GET", "/api/jobs")[1][0]["max_workers"] == 3
        assert_one_line_error(run_cli("set", "max-workers", "demo", "0", "--server", url),
                              "N: '0' is not a worker count; use 1 or more, or none")
        assert api(url, "POST", "/api/jobs/demo/cancel")[0] == 200
        (view,) = api(url, "GET", "/api/jobs")[1]
        assert view["state"] == "cancelled"
        conforms(view, "Job")


def test_fetch_zip_needs_a_server() -> None:
    assert_one_line_error(run_cli("fetch", "shot", "--pachd", "localhost:1", "--zip", "x.zip"),
                          "--zip needs --server")


def test_max_workers_below_one_is_refused_in_one_line(tmp_path: Path) -> None:
    blend = tmp_path / "shot.blend"
    blend.write_bytes(b"BLENDER-v405 never opened: the flag is checked first")
    for command in ("render", "submit"):
        extra = ["--server", "http://127.0.0.1:9"] if command == "submit" else [
            "--out", str(tmp_path / "out")]
        assert_one_line_error(run_cli(command, str(blend), "--max-workers", "0", *extra),
                              "--max-workers: 0 workers is not allowed; use 1 or more")
    settings = tmp_path / "job"
    settings.mkdir()
    (settings / "shot.blend").write_bytes(blend.read_bytes())
    (settings / "tilefarm.json").write_text('{"max_workers": 0}')
    assert_one_line_error(run_cli("plan", str(settings)), "max_workers")


def test_tags_are_checked_and_need_a_ray_cluster(tmp_path: Path) -> None:
    from tilefarm.plan.tags import may_run, parse_tags, waiting_for

    assert parse_tags(" spot, gpu,spot ", "--tags") == ["gpu", "spot"]
    assert may_run(["spot"], ["spot", "gpu"]) and not may_run(["spot", "gpu"], ["spot"])
    assert may_run([], []) and not may_run([], ["spot"])  # untagged jobs: untagged nodes
    assert waiting_for(["spot"]) == "waiting for a node tagged spot"
    blend = tmp_path / "shot.blend"
    blend.write_bytes(b"BLENDER-v405 never opened: the flag is checked first")
    assert_one_line_error(run_cli("render", str(blend), "--out", str(tmp_path / "o"), "--tags",
                                  "Spot!"), "--tags: tag 'Spot!' is not allowed")
    assert_one_line_error(run_cli("join", "127.0.0.1:1", "--tags", ","),
                          "--tags: ',' names no tag")
    # A farm of one machine has no tagged node: the server refuses the job at intake.
    job = tmp_path / "card"
    job.mkdir()
    (job / "shot.blend").write_bytes(b"BLENDER-v405ENDB" + bytes(20))  # the least .blend
    (job / "tilefarm.json").write_text('{"tags": ["spot"]}')
    archive = tmp_path / "card.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(job, arcname="card")
    with running_server(tmp_path / "store") as url:
        status, answer = raw_post(url, "/api/jobs", archive.stat().st_size,
                                  archive.read_bytes())
        assert status == 400 and "only a Ray cluster has tagged nodes" in answer, answer
        assert api(url, "GET", "/api/jobs") == (200, [])


def test_the_server_socket_lets_asyncio_send_answers_at_once() -> None:
    """asyncio turns Nagle off (TCP_NODELAY) only on sockets that name IPPROTO_TCP; on one
    that did not, every answer on a keep-alive connection waited for a delayed ACK."""
    import asyncio

    from tilefarm.server.serve import listening

    sock = listening("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP

        async def accepted_nodelay() -> int:
            seen: list[int] = []

            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                raw = writer.get_extra_info("socket")
                seen.append(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                writer.close()

            server = await asyncio.start_server(handle, sock=sock)
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            while not seen:
                await asyncio.sleep(0.01)
            writer.close()
            server.close()
            return seen[0]

        assert asyncio.run(accepted_nodelay()) != 0
    finally:
        sock.close()
