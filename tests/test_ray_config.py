"""Ray without a cluster: the example cloud config, and the errors of ``join`` and ``--ray``."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ray
import yaml

from tests.conftest import ROOT, assert_one_line_error, run_cli

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
