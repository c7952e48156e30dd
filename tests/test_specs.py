"""The four pipeline specs: Pachyderm's own schema, python-pachyderm's request type, the DAG."""

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from tilefarm.pipelines.cluster import pipeline_request
from tilefarm.pipelines.specs import STAGES, packaged_specs, pfs_inputs, provenance_order

ROOT = Path(__file__).resolve().parent.parent
SHARED_SCHEMA = ROOT.parent / "shared" / "pachyderm" / "CreatePipelineRequest.schema.json"


def specs() -> dict[str, dict[str, Any]]:
    return {s: json.loads((ROOT / "specs" / f"{s}.json").read_text()) for s in STAGES}


@pytest.mark.skipif(not SHARED_SCHEMA.exists(), reason="../shared is not beside this checkout")
@pytest.mark.parametrize("stage", STAGES)
def test_valid_against_pachyderms_schema(stage: str) -> None:
    schema = json.loads(SHARED_SCHEMA.read_text())
    errors = list(jsonschema.Draft4Validator(schema).iter_errors(specs()[stage]))
    assert errors == []


@pytest.mark.parametrize("stage", STAGES)
def test_parses_into_a_create_pipeline_request(stage: str) -> None:
    request = pipeline_request(specs()[stage])
    assert request.pipeline.name == stage
    assert request.transform.cmd == ["python3", "-m", f"tilefarm.{stage}"]


@pytest.mark.parametrize("stage", STAGES)
def test_sets_what_a_render_farm_needs(stage: str) -> None:
    spec = specs()[stage]
    assert spec["datumTries"] >= 2
    assert spec["datumTimeout"].endswith("s") and int(spec["datumTimeout"][:-1]) > 0
    assert spec["parallelismSpec"]["constant"] >= 1
    assert spec["resourceRequests"]["cpu"] and spec["resourceRequests"]["memory"]
    assert spec["resourceLimits"]["memory"]
    assert spec["autoscaling"] is True
    # Stages that start Python and Blender per datum keep them warm; ffmpeg starts anyway.
    assert spec["transform"]["datumBatching"] is (stage in ("splitter", "renderer", "merger"))


def test_dag_is_blends_splitter_renderer_merger_encoder() -> None:
    order = [s.name for s in provenance_order(packaged_specs())]
    assert order == list(STAGES)
    repos = {name: sorted({p["repo"] for p in pfs_inputs(spec["input"])})
             for name, spec in specs().items()}
    assert repos == {"splitter": ["blends"], "renderer": ["blends", "splitter"],
                     "merger": ["blends", "renderer", "splitter"],
                     "encoder": ["blends", "merger", "splitter"]}


def walk(node: Any) -> list[str]:
    keys = []
    if isinstance(node, dict):
        for k, v in node.items():
            keys.append(k)
            keys += walk(v)
    elif isinstance(node, list):
        for v in node:
            keys += walk(v)
    return keys


@pytest.mark.parametrize("stage", ["renderer", "merger", "encoder"])
def test_pairs_with_its_own_blend_by_join_never_cross(stage: str) -> None:
    spec = specs()[stage]
    assert "cross" not in walk(spec["input"])
    for branch in spec["input"]["union"]:
        joined = [p["pfs"] for p in branch["join"]]
        assert all(p["joinOn"] == "$1" for p in joined)
        assert any(p["repo"] == "blends" for p in joined)
    globs = sorted(p["pfs"]["glob"] for b in spec["input"]["union"] for p in b["join"]
                   if p["pfs"]["repo"] == "blends")
    assert globs == ["/(*)", "/(*).blend"]
