"""The typed Blender request protocol: exact requests built by pure functions (no Blender),
checked by the child on arrival, and the warm-session key derived from the types."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.factories import make_facts
from tilefarm.blender.side import protocol
from tilefarm.blender.side.protocol import (
    ComposeRequest,
    DenoiseSettings,
    InspectRequest,
    Region,
    RenderRequest,
)
from tilefarm.merger.merge import compose_request
from tilefarm.plan.model import task_manifest
from tilefarm.plan.planner import make_plan
from tilefarm.plan.settings import JobSettings
from tilefarm.renderer.render import RenderOptions, render_request

OUT = Path("/pfs/out")
BLEND = Path("/pfs/blends/shot.blend")


def plan(**settings: object):  # type: ignore[no-untyped-def]
    return make_plan("shot", "shot.blend", make_facts(), JobSettings(**settings))  # type: ignore[arg-type]


def test_tile_task_request_is_exact() -> None:
    p = plan(tiles="2x2", chunk=2, frames="3-4")
    manifest = task_manifest(p, p.tasks[3])
    request = render_request(manifest, BLEND, OUT, RenderOptions(threads=2, device="CPU"))
    assert request == RenderRequest(
        blend="/pfs/blends/shot.blend", scene="Scene", mode="tiles", width=97, height=61,
        denoise=False, threads=2, device="CPU", file_format="PNG", frames=[3, 4],
        # The bottom-right tile (48..97 x 30..61) grown by the 1 px margin 16 adaptive samples need.
        region=Region(x0=47, y0=29, x1=97, y1=61, min_x=47.5 / 97, max_x=1.0, min_y=0.0,
                      max_y=32.5 / 61),
        targets=["/pfs/out/shot/tiles/000003/t0003.exr", "/pfs/out/shot/tiles/000004/t0003.exr"],
        previews=[None, None],
        file_outputs=["/pfs/out/shot/tiles/000003/file_output",
                      "/pfs/out/shot/tiles/000004/file_output"])


def test_whole_frame_task_request_renders_final_frames_with_previews() -> None:
    p = plan(output_format="OPEN_EXR", frames="7")
    request = render_request(task_manifest(p, p.tasks[0]), BLEND, OUT, RenderOptions())
    assert (request.mode, request.region, request.file_format) == ("final", None, "OPEN_EXR")
    assert request.targets == ["/pfs/out/shot/tiles/000007/frame.exr"]
    assert request.previews == ["/pfs/out/shot/tiles/000007/preview.png"]


def test_compose_request_is_exact() -> None:
    p = plan(tiles="2x2")
    request = compose_request(p, 5, BLEND, Path("/tmp/m.exr"), Path("/tmp/f.png"), None,
                              Path("/tmp/fo"))
    assert request == ComposeRequest(
        blend="/pfs/blends/shot.blend", scene="Scene", file_format="PNG",
        denoise=DenoiseSettings(enabled=False, prefilter="ACCURATE", quality="HIGH",
                                input_passes="RGB_ALBEDO_NORMAL"),
        stage="image_nodes", frame=5, merged="/tmp/m.exr", target="/tmp/f.png", preview=None,
        file_outputs="/tmp/fo")


def test_requests_round_trip_through_json() -> None:
    p = plan(tiles="3x2")
    for request in (render_request(task_manifest(p, p.tasks[0]), BLEND, OUT, RenderOptions()),
                    compose_request(p, 1, BLEND, Path("/m.exr"), Path("/f.png"), Path("/p.png")),
                    InspectRequest(blend="/x.blend", scene=None)):
        document = json.loads(json.dumps(protocol.encode(request)))
        assert document["action"] == request.action
        assert protocol.decode(document) == request


@pytest.mark.parametrize("change, needle", [
    ({"action": "paint"}, "unknown action 'paint'"),
    ({"threds": 2}, "unknown field(s) threds"),
    ({"threads": "2"}, "render.threads: expected int, got str"),
    ({"threads": True}, "render.threads: expected int, got bool"),
    ({"frames": [1, "2"]}, "render.frames[1]: expected int"),
    ({"region": {"x0": 0}}, "missing field(s) y0, x1, y1"),
])
def test_child_refuses_a_request_that_does_not_match_its_type(change: dict[str, object],
                                                             needle: str) -> None:
    p = plan(tiles="2x2")
    document = protocol.encode(render_request(task_manifest(p, p.tasks[0]), BLEND, OUT,
                                              RenderOptions()))
    document.update(change)
    with pytest.raises(protocol.RequestError) as err:
        protocol.decode(document)
    assert needle in str(err.value)


def test_missing_field_is_refused() -> None:
    with pytest.raises(protocol.RequestError, match="missing field.*scene"):
        protocol.decode({"action": "inspect", "blend": "/x.blend"})


def test_session_key_ignores_exactly_the_per_call_fields() -> None:
    p = plan(tiles="2x2")
    first, other = (render_request(task_manifest(p, t), BLEND, OUT, RenderOptions())
                    for t in p.tasks[:2])
    stat = (1, 2)
    assert first.frames == other.frames and first.region != other.region
    assert protocol.session_key(first, stat) == protocol.session_key(other, stat)
    per_call = {f.name for f in dataclasses.fields(RenderRequest) if f.metadata.get("per_call")}
    assert per_call == {"frames", "region", "targets", "previews", "file_outputs"}
    for name, value in (("threads", 3), ("device", "CUDA"), ("mode", "final"), ("denoise", True)):
        changed = dataclasses.replace(first, **{name: value})
        assert protocol.session_key(changed, stat) != protocol.session_key(first, stat), name
    assert protocol.session_key(first, (1, 3)) != protocol.session_key(first, stat)


def test_every_kind_is_registered_once() -> None:
    assert sorted(protocol.KINDS) == ["compose", "demo", "inspect", "mixdown", "render",
                                      "substitute"]
