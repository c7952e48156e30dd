"""Where the local engine must do what Pachyderm does, each expectation with its source.

Sources: pachyderm/pachyderm at e237475e99 (2.12), protobuf-go's encoding/protojson
(decode.go), github.com/pachyderm/ohmyglob at d5b47775fc36. Glob and template tables
are in tests/test_engine_datums.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_one_line_error, run_cli
from tests.test_engine import output, put
from tilefarm.engine.datums import Datum, datums
from tilefarm.engine.engine import Engine, JobReport
from tilefarm.engine.store import FileInfo
from tilefarm.errors import UsageError
from tilefarm.pipelines.specs import SpecMessage, parse_spec, read_spec, request_message

ROOT = Path(__file__).resolve().parent.parent
SHARED_SCHEMA = ROOT.parent / "shared" / "pachyderm" / "CreatePipelineRequest.schema.json"


def repo(*paths: str) -> list[FileInfo]:
    return [FileInfo(p, f"h{p}", 1) for p in paths]


# Pachyderm's joins example data (examples/joins/Makefile, "setup"): stores and returns.
REPOS = {
    "stores": repo(*(f"/STOREID{n}.txt" for n in range(1, 6))),
    "returns": repo("/ORDERW080520_STOREID1.txt", "/ORDERW080231_STOREID5.txt",
                    "/ORDERW080528_STOREID5.txt", "/ORDERW261452_STOREID0.txt"),
}


def source(pfs: Mapping[str, Any]) -> tuple[list[FileInfo], str | None]:
    return REPOS[pfs["repo"]], "c-" + pfs["repo"]


def names(found: list[Datum]) -> list[list[str]]:
    return [sorted(f"{p.name}{p.path}" for p in d.parts) for d in found]


def write(tmp_path: Path, text: str, name: str = "spec.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- A. specs are read as pachd reads them ----------------------------------------------------

def joins_example(stores_outer: bool, returns_outer: bool, snake: bool) -> dict[str, Any]:
    """examples/joins/README.md "Case 1/2/3", as the README writes it (``join_on``,
    ``outer_join``) or as its .pipeline.json files do (``joinOn``, ``outerJoin``)."""
    join_on, outer = ("join_on", "outer_join") if snake else ("joinOn", "outerJoin")
    return {"pipeline": {"name": "outer_join"},
            "input": {"join": [
                {"pfs": {"repo": "stores", "branch": "master", "glob": "/STOREID(*).txt",
                         join_on: "$1", outer: stores_outer}},
                {"pfs": {"repo": "returns", "branch": "master", "glob": "/*_STOREID(*).txt",
                         join_on: "$1", outer: returns_outer}}]},
            "transform": {"cmd": ["python", "outer/main.py"], "image": "x"}}


@pytest.mark.parametrize("stores_outer, returns_outer, expected", [
    (False, True, 4),  # Case 1: every return, the one of store 0 alone
    (True, False, 6),  # Case 2: every store, 2, 3 and 4 alone; no datum for store 0
    (True, True, 7),   # Case 3: both
])
def test_the_docs_snake_case_join_is_the_camel_case_join(
        stores_outer: bool, returns_outer: bool, expected: int) -> None:
    """protojson accepts a field's JSON name or its proto name (protobuf-go
    encoding/protojson/decode.go:189-193), and pachd reads specs with protojson.Unmarshal
    (src/internal/ppsutil/decoder.go validateRequest, api_server.go makeEffectiveSpec)."""
    snake = parse_spec(joins_example(stores_outer, returns_outer, snake=True), "docs")
    camel = parse_spec(joins_example(stores_outer, returns_outer, snake=False), "docs")
    assert snake.raw == camel.raw
    got = datums(snake.input, source)
    assert [d.id for d in got] == [d.id for d in datums(camel.input, source)]
    assert len(got) == expected
    # Read raw, with join_on unseen, every datum had the key "": a 5 x 4 cross.
    raw = joins_example(stores_outer, returns_outer, snake=True)["input"]
    assert len(datums(raw, source)) == 20


def test_case_1_pairs_returns_with_their_store() -> None:
    spec = parse_spec(joins_example(False, True, snake=True), "docs")
    assert sorted(names(datums(spec.input, source))) == [
        ["returns/ORDERW080231_STOREID5.txt", "stores/STOREID5.txt"],
        ["returns/ORDERW080520_STOREID1.txt", "stores/STOREID1.txt"],
        ["returns/ORDERW080528_STOREID5.txt", "stores/STOREID5.txt"],
        ["returns/ORDERW261452_STOREID0.txt"]]  # the return of a store that does not exist


def test_proto_names_are_normalised_everywhere_and_values_kept_as_written() -> None:
    """decode.go:189-193 for every message, nested and repeated; map keys (transform.env)
    are data, not field names, and are left alone."""
    spec = parse_spec({
        "pipeline": {"name": "p"},
        "transform": {"cmd": ["x"], "datum_batching": True, "env": {"datum_tries": "1"}},
        "input": {"cross": [{"pfs": {"repo": "a", "glob": "/*", "outer_join": False}},
                            {"union": [{"pfs": {"repo": "b", "glob": "/*", "group_by": "$1"}}]}]},
        "parallelism_spec": {"constant": 2}, "resource_requests": {"cpu": 2, "memory": "1Gi"},
        "datum_tries": 5, "datum_timeout": "60s", "reprocess_spec": "until_success",
        "scheduling_spec": {"node_selector": {"disk_type": "ssd"}},
    }, "t")
    assert spec.raw == {
        "pipeline": {"name": "p"},
        "transform": {"cmd": ["x"], "datumBatching": True, "env": {"datum_tries": "1"}},
        "input": {"cross": [{"pfs": {"repo": "a", "glob": "/*", "outerJoin": False}},
                            {"union": [{"pfs": {"repo": "b", "glob": "/*", "groupBy": "$1"}}]}]},
        "parallelismSpec": {"constant": 2}, "resourceRequests": {"cpu": 2, "memory": "1Gi"},
        "datumTries": 5, "datumTimeout": "60s", "reprocessSpec": "until_success",
        "schedulingSpec": {"nodeSelector": {"disk_type": "ssd"}}}
    assert (spec.tries, spec.parallelism, spec.batching, spec.timeout) == (5, 2, True, 60.0)
    assert spec.env == {"datum_tries": "1"}


def test_the_packaged_specs_are_unchanged() -> None:
    for stage in ("splitter", "renderer", "merger", "encoder"):
        path = ROOT / "specs" / f"{stage}.json"
        assert read_spec(path).raw == json.loads(path.read_text())


def test_an_unknown_key_is_refused_naming_key_place_and_file(tmp_path: Path) -> None:
    """protojson.Unmarshal's default DiscardUnknown=false: "unknown field" (decode.go:209)."""
    spec = joins_example(False, True, snake=False)
    spec["input"]["join"][1]["pfs"]["joinon"] = "$1"
    path = write(tmp_path, json.dumps(spec), "typo.json")
    with pytest.raises(UsageError) as caught:
        read_spec(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and "\n" not in text
    assert "'joinon'" in text and "input.join[1].pfs" in text and "did you mean 'joinOn'" in text
    proc = run_cli("create", "pipeline", "-f", str(path), "--root", str(tmp_path / "store"))
    assert_one_line_error(proc, "typo.json", "'joinon'", "input.join[1].pfs")


@pytest.mark.parametrize("text, needle", [
    # Both spellings of one field: "duplicate field" (decode.go:214).
    ('{"pipeline": {"name": "p"}, "datumTries": 2, "datum_tries": 3}',
     "'datumTries' is given twice at the top level (as 'datumTries' and 'datum_tries')"),
    # One spelling twice in the text (json.loads alone would keep the last): the same error.
    ('{"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "a", "glob": "/*", "glob": "/"}}}',
     "'glob' is given twice in one object at input.pfs"),
    # A map key twice: protojson "duplicate map key".
    ('{"pipeline": {"name": "p"}, "transform": {"env": {"A": "1", "A": "2"}}}',
     "'A' is given twice in one object at transform.env"),
    # Egress's oneof target: "oneof ... is already set".
    ('{"pipeline": {"name": "p"}, "egress": {"objectStorage": {}, "sqlDatabase": {}}}',
     "only one of oneof target"),
])
def test_a_field_given_twice_is_refused(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError, match="given twice|oneof") as caught:
        read_spec(path)
    assert needle in str(caught.value) and str(caught.value).startswith(str(path))


def test_fields_of_pachd_2_12_are_accepted_and_a_removed_one_refused() -> None:
    """python-pachyderm 7.6 lacks three fields pachd 2.12 has; 2.12's pps.proto has
    ``reserved "details_json"``, which python-pachyderm still has."""
    spec = joins_example(False, True, snake=False)
    spec["maximum_expected_uptime"] = "600s"
    spec["input"]["join"][0]["pfs"].update(reference=False, propagation_spec={"never": True})
    pfs = parse_spec(spec, "t").raw["input"]["join"][0]["pfs"]
    assert pfs["propagationSpec"] == {"never": True}
    with pytest.raises(UsageError, match="unknown field 'detailsJson'"):
        parse_spec({**spec, "detailsJson": "{}"}, "t")


def schema_messages(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], SpecMessage]]:
    """Every message of Pachyderm's schema beside the message the engine accepts for it."""
    defs = schema["definitions"]
    todo, seen = [("CreatePipelineRequest", request_message())], set()
    while todo:
        name, message = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        yield name, defs[name], message
        for prop, body in defs[name].get("properties", {}).items():
            ref = body.get("$ref") or body.get("items", {}).get("$ref")
            child = message.fields[prop].message if prop in message.fields else None
            if ref and child is not None:
                todo.append((ref.split("/")[-1], child))
        for f in message.fields.values():  # specCommit: ignored, but its types are defined
            if f.message is not None and f.message.name in defs:
                todo.append((f.message.name, f.message))


@pytest.mark.skipif(not SHARED_SCHEMA.exists(), reason="../shared is not beside this checkout")
def test_accepted_fields_are_pachyderms_schema_plus_its_ignored_fields() -> None:
    """The schema (camelCase only) lists every field of 2.12 but those pps.proto marks
    ``(protoc.gen.jsonschema.field_options).ignore``: update, reprocess, spec_commit, dry_run."""
    ignored = {"CreatePipelineRequest": {"update", "reprocess", "specCommit", "dryRun"}}
    schema = json.loads(SHARED_SCHEMA.read_text())
    checked = 0
    for name, definition, message in schema_messages(schema):
        expected = set(definition.get("properties", {})) | ignored.get(name, set())
        assert set(message.fields) == expected, name
        # protoc's json_name: underscores dropped, the letter after each one upper-cased.
        assert all(re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), f.proto_name) == f.json_name
                   for f in message.fields.values()), name
        checked += 1
    assert checked == len(schema["definitions"])


@pytest.mark.parametrize("pfs, needle", [
    ({"repo": "a", "glob": "/[a"}, "input.pfs.glob '/[a' is not a valid glob"),
    ({"repo": "a", "glob": "/(*)", "joinOn": "$01"}, "input.pfs.joinOn '$01'"),
])
def test_globs_and_templates_are_checked_on_intake(pfs: dict[str, Any], needle: str) -> None:
    """ohmyglob lexer.go refuses an unclosed '['; glob.go Replace panics on "$01"
    (extract gives -1, then match[-1]). Pachyderm finds both only when a job runs."""
    with pytest.raises(UsageError, match="spec.json") as caught:
        parse_spec({"pipeline": {"name": "p"}, "input": {"pfs": pfs},
                    "transform": {"cmd": ["x"]}}, "spec.json")
    assert needle in str(caught.value)


# -- C. join and group merge ----------------------------------------------------------------

def test_join_keeps_only_outer_inputs_of_a_partial_match() -> None:
    """src/server/worker/datum/worker.go:235-265 (processMergeTask JOIN): per key, the cross
    of the inputs that have it; all present -> the whole tuple; otherwise only the outerJoin
    inputs among them, if any. Equal datums collapse into one."""
    REPOS.update(
        ja=repo("/a.x", "/ac.x", "/ab.x", "/abc.x", "/abb.x"),
        jb=repo("/b.x", "/bc.x", "/ab.x", "/abc.x", "/abb.1", "/abb.2"),
        jc=repo("/c.x", "/ac.x", "/bc.x", "/abc.x"))
    try:
        got = names(datums({"join": [
            {"pfs": {"repo": "ja", "glob": "/(*).*", "joinOn": "$1", "outerJoin": True}},
            {"pfs": {"repo": "jb", "glob": "/(*).*", "joinOn": "$1"}},
            {"pfs": {"repo": "jc", "glob": "/(*).*", "joinOn": "$1", "outerJoin": True}}]}, source))
    finally:
        for name in ("ja", "jb", "jc"):
            del REPOS[name]
    assert sorted(got) == sorted([
        ["ja/a.x"],                        # A only -> {A}
        ["ja/ac.x", "jc/ac.x"],            # A, C -> A x C
        ["ja/ab.x"],                       # A, B -> {A}
        ["ja/abb.x"],                      # A, B twice -> {A} once
        ["jc/bc.x"],                       # B, C -> {C}
        ["jc/c.x"],                        # C only -> {C}
        ["ja/abc.x", "jb/abc.x", "jc/abc.x"],  # all -> the full tuple
    ])                                     # B only ("b") -> nothing


def test_group_has_a_datum_for_each_key_of_any_input() -> None:
    """worker.go:266-273 (processMergeTask GROUP): every input with the key, in one datum."""
    got = names(datums({"group": [
        {"pfs": {"repo": "stores", "glob": "/STOREID(*).txt", "groupBy": "$1"}},
        {"pfs": {"repo": "returns", "glob": "/*_STOREID(*).txt", "groupBy": "$1"}}]}, source))
    assert got == [["returns/ORDERW261452_STOREID0.txt"],
                   ["returns/ORDERW080520_STOREID1.txt", "stores/STOREID1.txt"],
                   ["stores/STOREID2.txt"], ["stores/STOREID3.txt"], ["stores/STOREID4.txt"],
                   ["returns/ORDERW080231_STOREID5.txt", "returns/ORDERW080528_STOREID5.txt",
                    "stores/STOREID5.txt"]]


# -- D. a command that cannot start is a failed datum ----------------------------------------

@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path / "store")
    eng.store.create_repo("words")
    yield eng
    eng.close()


def run_cmd(engine: Engine, tmp_path: Path, cmd: list[str], *, batching: bool,
            tries: int) -> tuple[JobReport, list[tuple[str, int, str]]]:
    engine.create_pipeline(parse_spec({
        "pipeline": {"name": "p"}, "input": {"pfs": {"repo": "words", "glob": "/*"}},
        "transform": {"cmd": cmd, "datumBatching": batching}, "datumTries": tries}, "t"))
    put(engine, tmp_path, {"/a.txt": "a", "/b.txt": "b"})
    (report,) = engine.run_pending()
    rows = engine.store.db.execute("SELECT state, tries, error FROM datums WHERE job=?",
                                   (report.id,)).fetchall()
    return report, [(r["state"], r["tries"], r["error"]) for r in rows]


@pytest.mark.skipif(shutil.which("unknown") is not None, reason="a command named unknown exists")
@pytest.mark.parametrize("batching", [False, True])
def test_an_unknown_command_fails_each_datum_after_its_tries(
        engine: Engine, tmp_path: Path, batching: bool) -> None:
    """src/server/worker/driver/driver.go:370-388 RunUserCode returns cmd.Start()'s error;
    the datum is retried datumTries times (pipeline/transform/worker.go:428-430, datum.go
    WithDatum) and counted failed; the job fails (transform/registry.go "datum %v failed")."""
    report, rows = run_cmd(engine, tmp_path, ["unknown"], batching=batching, tries=3)
    assert (report.state, report.processed, report.failed) == ("failure", 0, 2)
    message = 'exec: "unknown": executable file not found in $PATH'
    assert rows == [("failed", 3, message)] * 2
    assert message in (report.error or "")
    assert engine.store.head("p") is None


def test_a_command_without_execute_permission_is_a_failed_datum(engine: Engine,
                                                                  tmp_path: Path) -> None:
    """Go's exec.LookPath on a path that is not executable: permission denied."""
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(script, 0o644)
    report, rows = run_cmd(engine, tmp_path, [str(script)], batching=False, tries=2)
    assert report.state == "failure" and report.failed == 2
    assert rows == [("failed", 2, f'exec: "{script}": permission denied')] * 2


def test_a_batching_worker_that_exits_before_asking_fails_datums(engine: Engine,
                                                                  tmp_path: Path) -> None:
    """transform/worker.go handleDatumSetBatching: user code that exits before taking a
    datum is "user code exited prematurely"; here it uses a try of the datum at hand
    instead of leaving it pending (and the job reporting success)."""
    report, rows = run_cmd(engine, tmp_path, ["python3", "-c", "raise SystemExit(4)"],
                           batching=True, tries=2)
    assert (report.state, report.processed, report.failed) == ("failure", 0, 2)
    assert all(state == "failed" and tries == 2 and "exited with code 4 before asking" in error
               for state, tries, error in rows)
    assert output(engine, "words") == {"/a.txt": "a", "/b.txt": "b"}
