"""Ray without a cluster: the example cloud config, and the errors of ``join`` and ``--ray``."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from tests.conftest import ROOT, assert_one_line_error, run_cli
from tests.factories import make_facts

EXAMPLE = ROOT / "examples" / "ray" / "aws-spot.yaml"


def test_the_aws_example_is_a_valid_ray_cluster_config() -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json")
                        .read_text())
    jsonschema.validate(config, schema)
    assert config["head_node_type"] in config["available_node_types"]
    spot = config["available_node_types"]["render_spot"]["node_config"]
    assert spot["InstanceMarketOptions"]["MarketType"] == "spot"
    assert config["available_node_types"]["head"]["resources"]["CPU"] == 0
    setup = " ".join(config["setup_commands"])
    assert "[ray]" in setup and "tilefarm-" in setup  # tilefarm with Ray; bpy comes with it
    assert any("tilefarm serve --ray auto" in c for c in config["head_start_ray_commands"])
    assert any("tilefarm join $RAY_HEAD_IP:6379" in c
               for c in config["worker_start_ray_commands"])


def test_join_refuses_a_runtime_this_machine_lacks() -> None:
    proc = run_cli("join", "127.0.0.1:1", "--blender", "4.5,9.9")
    assert_one_line_error(proc, "--blender: this machine has no Blender 9.9 runtime "
                                "(installed:", "install it with:")
    assert_one_line_error(run_cli("join", "127.0.0.1:1", "--blender", "five"),
                          "--blender: 'five' is not a Blender version")
    assert_one_line_error(run_cli("join", "127.0.0.1:1", "--memory", "lots"), "--memory")


def test_ray_and_memory_are_not_given_together(tmp_path: Path) -> None:
    proc = run_cli("serve", "--root", str(tmp_path), "--ray", "127.0.0.1:1", "--memory", "1GiB")
    assert_one_line_error(proc, "--memory: with --ray, each node's budget is the memory it "
                                "joined with")


def test_a_job_source_is_routed_to_the_runtime_the_splitter_will_choose(tmp_path: Path) -> None:
    """The splitter's datum (a job's .blend and tilefarm.json, as the store holds them: files
    named by their hash) needs the runtime the splitter will choose among the cluster's."""
    from tilefarm.engine.engine import Engine
    from tilefarm.nodes.routing import _source_runtime

    blend = tmp_path / "fifty.blend"
    blend.write_bytes(b"BLENDER-v405ENDB" + bytes(20))  # saved by 4.5: a header and its end
    settings = tmp_path / "tilefarm.json"
    engine = Engine(tmp_path / "store")
    try:
        engine.store.create_repo("blends")
        for wanted, needed in ((None, "4.5"), ("5.0", "5.0")):
            settings.write_text(json.dumps({"blend": "fifty.blend", "blender": wanted}
                                           if wanted else {"blend": "fifty.blend"}))
            engine.store.put_files("blends", "master", [("/fifty/fifty.blend", blend),
                                                        ("/fifty/tilefarm.json", settings)])
            head = engine.store.head("blends")
            files = tuple(engine.store.files(head.id if head else None))
            assert _source_runtime(engine.store, files, ("4.5", "5.0")) == needed
    finally:
        engine.close()


def test_a_node_does_not_inspect_a_file_its_head_inspected(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray head sends what its intake learnt of a .blend with the file's first datum on a
    node (``split.cached_facts``, ``learn_facts``): the node's splitter starts no Blender for
    it where its Blender is the same version, wherever that Blender lives."""
    import hashlib

    from tilefarm.blender.runner import BlenderRunner
    from tilefarm.plan.schemas import to_document
    from tilefarm.splitter.intake import open_job
    from tilefarm.splitter.split import FACTS_CACHE_ENV, cached_facts, inspect, learn_facts

    class Counted(BlenderRunner):  # a Blender that reports the same facts as every inspection
        def run(self, request: object, **kwargs: object) -> object:
            self.calls = getattr(self, "calls", 0) + 1
            return to_document("scene_facts", make_facts())

    blend = tmp_path / "shot.blend"
    blend.write_bytes(b"BLENDER-v405ENDB" + bytes(20))
    source = open_job(blend)
    monkeypatch.setenv(FACTS_CACHE_ENV, str(tmp_path / "head"))
    head = Counted(executable="/opt/head/blender", version="4.5.15 LTS")
    assert inspect(source, None, head) == make_facts() and head.calls == 1
    digest = hashlib.sha256(blend.read_bytes()).hexdigest()
    sent = cached_facts(digest)
    assert len(sent) == 1
    assert cached_facts(hashlib.sha256(b"another file").hexdigest()) == []

    monkeypatch.setenv(FACTS_CACHE_ENV, str(tmp_path / "node"))
    learn_facts(tmp_path / "node", digest, sent)
    node = Counted(executable="/home/render/blender", version="4.5.15 LTS")
    assert inspect(source, None, node) == make_facts()
    assert getattr(node, "calls", 0) == 0  # found, not inspected
    other = Counted(executable="/opt/head/blender", version="4.5.16 LTS")
    inspect(source, None, other)
    assert other.calls == 1  # another Blender inspects for itself


def test_a_node_starts_a_stage_before_its_first_datum(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``render --ray`` has each worker slot start the first stages while the head takes the
    job in (``RayPool.warm_up``, ``NodeWorker.prestart``): the first datum finds the process
    waiting for it; asked again, the slot keeps it; a changed spec ends it for a new one, and
    the slot's close ends the stage."""
    from tilefarm.nodes.head import stage_request
    from tilefarm.nodes.node import CACHE_ENV, NodeWorker
    from tilefarm.pipelines.specs import parse_spec

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "node"))
    document = json.loads((ROOT / "specs" / "splitter.json").read_text())
    worker = NodeWorker("slot")
    try:
        worker.prestart([stage_request(parse_spec(document, "splitter.json"))])
        first = worker.stages["splitter"].proc
        assert first is not None and first.poll() is None
        worker.prestart([stage_request(parse_spec(document, "splitter.json"))])
        assert worker.stages["splitter"].proc is first and first.poll() is None
        document["description"] = "changed"
        worker.prestart([stage_request(parse_spec(document, "splitter.json"))])
        assert first.wait(timeout=30) is not None
        second = worker.stages["splitter"].proc
        assert second is not None and second is not first and second.poll() is None
    finally:
        worker.close()
    assert second.wait(timeout=30) is not None
