"""Pipeline specs as the engine reads them: the same JSON files ``pachctl create pipeline -f`` takes.

Keys are read as pachd reads them (protojson): each field by its JSON name (``joinOn``) or
its proto name (``join_on``), normalised here to the JSON name, which is all the engine
reads; an unknown or repeated field is refused, naming the file and where the key is.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from tilefarm.pipelines.glob import GlobError, compile_glob, expand
from tilefarm.errors import UsageError

STAGES = ("splitter", "renderer", "merger", "encoder")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)$")


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    raw: dict[str, Any]

    @property
    def input(self) -> dict[str, Any]:
        return self.raw["input"]

    @property
    def cmd(self) -> list[str]:
        return list(self.raw["transform"]["cmd"])

    @property
    def env(self) -> dict[str, str]:
        return dict(self.raw["transform"].get("env") or {})

    @property
    def batching(self) -> bool:
        return bool(self.raw["transform"].get("datumBatching"))

    @property
    def tries(self) -> int:
        return int(self.raw.get("datumTries") or 3)

    @property
    def timeout(self) -> float | None:
        value = self.raw.get("datumTimeout")
        return parse_duration(value, "datumTimeout") if value else None

    @property
    def parallelism(self) -> int:
        return int((self.raw.get("parallelismSpec") or {}).get("constant") or 1)

    def slots(self, workers: int) -> int:
        """The worker processes a job of this pipeline runs when ``workers`` are asked for:
        at most its parallelism, at least one."""
        return max(1, min(workers, self.parallelism))

    def input_repos(self) -> list[str]:
        return sorted({pfs["repo"] for pfs in pfs_inputs(self.input)})

    def text(self) -> str:
        return json.dumps(self.raw, sort_keys=True)


def parse_duration(value: str, flag: str) -> float:
    match = _DURATION.match(str(value))
    if match is None:
        raise UsageError(f"duration {value!r} is not allowed; use seconds like \"600s\"", flag=flag)
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def pfs_inputs(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    if spec.get("pfs"):
        yield spec["pfs"]
    for kind in ("cross", "union", "join", "group"):
        for child in spec.get(kind) or []:
            yield from pfs_inputs(child)


@dataclass
class SpecField:
    """One field of a spec message as pachd's protojson accepts it."""

    json_name: str  # lowerCamel, what the engine reads
    proto_name: str  # snake_case, accepted as well
    repeated: bool = False
    message: SpecMessage | None = None  # None: scalar, map or well-known type, kept as written
    oneof: str | None = None


@dataclass
class SpecMessage:
    """A spec message's fields, found by JSON name or proto name (protojson decode.go:189-193)."""

    name: str
    fields: dict[str, SpecField] = field(default_factory=dict)

    def add(self, f: SpecField) -> None:
        self.fields[f.json_name] = f

    def find(self, key: str) -> SpecField | None:
        return self.fields.get(key) or next(
            (f for f in self.fields.values() if f.proto_name == key), None)


# Fields pachd 2.12 has that python-pachyderm 7.6's descriptor lacks, from Pachyderm's
# CreatePipelineRequest.schema.json (checked against it by tests/test_pachyderm_semantics.py),
# and a field 2.12 removed (src/pps/pps.proto: reserved "details_json").
_ADDED_IN_2_12: dict[str, dict[str, SpecMessage | None]] = {
    "pps_v2.CreatePipelineRequest": {"maximumExpectedUptime": None},  # a Duration
    "pps_v2.PFSInput": {"reference": None, "propagationSpec": SpecMessage(
        "pfs_v2.PropagationSpec", {"never": SpecField("never", "never")})},
}
_REMOVED_IN_2_12 = {"pps_v2.CreatePipelineRequest": {"details_json"}}


def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name)


@lru_cache(maxsize=1)
def request_message() -> SpecMessage:
    """CreatePipelineRequest's fields: python-pachyderm's descriptor, adjusted to pachd 2.12."""
    from google.protobuf.descriptor import Descriptor, FieldDescriptor
    from python_pachyderm.proto.v2.pps import pps_pb2

    built: dict[str, SpecMessage] = {}

    def message(desc: Descriptor) -> SpecMessage:
        if desc.full_name in built:  # Input is recursive (cross, join, ...)
            return built[desc.full_name]
        msg = built[desc.full_name] = SpecMessage(desc.full_name)
        for fd in desc.fields:
            if fd.name in _REMOVED_IN_2_12.get(desc.full_name, ()):
                continue
            child = fd.message_type
            nested = (child is not None and not child.GetOptions().map_entry
                      and not child.full_name.startswith("google.protobuf."))
            msg.add(SpecField(fd.json_name, fd.name, fd.label == FieldDescriptor.LABEL_REPEATED,
                              message(child) if nested else None,
                              fd.containing_oneof.name if fd.containing_oneof else None))
        for json_name, sub in _ADDED_IN_2_12.get(desc.full_name, {}).items():
            msg.add(SpecField(json_name, _snake(json_name), message=sub))
        return msg

    return message(pps_pb2.CreatePipelineRequest.DESCRIPTOR)


class _Pairs(dict[str, Any]):
    """A JSON object that remembers keys it was given twice (json.loads keeps the last)."""

    repeated: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> _Pairs:
    obj = _Pairs(pairs)
    keys = [k for k, _ in pairs]
    obj.repeated = [k for i, k in enumerate(keys) if k in keys[:i]]
    return obj


def _at(where: str) -> str:
    return f"at {where}" if where else "at the top level"


def _normalise(node: Any, message: SpecMessage, where: str, source: str) -> dict[str, Any]:
    """``node`` with every key spelt by its JSON name, refused as protojson.Unmarshal refuses it.

    protojson (DiscardUnknown=false, as pachd's ppsutil/decoder.go validateRequest and
    api_server.go makeEffectiveSpec call it) takes a key's JSON name or proto name
    (decode.go:189-193), fails on an unknown key ("unknown field", decode.go:209), on one
    field given twice, under either name ("duplicate field", decode.go:214), and on two
    members of a oneof. Values stay as written: no round trip that turns ints into strings.
    """
    if not isinstance(node, dict):
        raise UsageError(f"{where or 'the spec'} must be a JSON object", flag=source)
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    oneofs: dict[str, str] = {}
    for key, value in node.items():
        f = message.find(key)
        if f is None:
            names = {n: known.json_name for known in message.fields.values()
                     for n in (known.json_name, known.proto_name)}
            close = difflib.get_close_matches(key, list(names), 1)
            hint = f"; did you mean {names[close[0]]!r}?" if close else ""
            raise UsageError(f"unknown field {key!r} {_at(where)}: pachd refuses it "
                             f"(protojson: unknown field){hint}", flag=source)
        if f.json_name in given:
            raise UsageError(f"field {f.json_name!r} is given twice {_at(where)} (as "
                             f"{given[f.json_name]!r} and {key!r}); pachd refuses it "
                             "(protojson: duplicate field)", flag=source)
        given[f.json_name] = key
        if f.oneof and value is not None:
            if f.oneof in oneofs:
                raise UsageError(f"{oneofs[f.oneof]!r} and {key!r} {_at(where)} are both set, "
                                 f"but only one of oneof {f.oneof} may be", flag=source)
            oneofs[f.oneof] = key
        path = f"{where}.{key}" if where else key
        if f.message is not None and value is not None:
            if not f.repeated:
                value = _normalise(value, f.message, path, source)
            elif isinstance(value, list):
                value = [_normalise(v, f.message, f"{path}[{i}]", source)
                         for i, v in enumerate(value)]
            else:
                raise UsageError(f"{path} must be a JSON array", flag=source)
        out[f.json_name] = value
    return out


def _repeated_key(node: Any, where: str) -> tuple[str, str] | None:
    """The first key given twice in one object of ``node`` and where: protojson refuses both
    a field given twice (decode.go:214) and a map key given twice."""
    items: list[tuple[str, Any]] = []
    if isinstance(node, _Pairs) and node.repeated:
        return node.repeated[0], where
    if isinstance(node, dict):
        items = [(f"{where}.{k}" if where else k, v) for k, v in node.items()]
    elif isinstance(node, list):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(node)]
    for path, value in items:
        found = _repeated_key(value, path)
        if found:
            return found
    return None


def _check_globs(spec: Mapping[str, Any], where: str, source: str) -> None:
    """Refuse on intake a glob or template Pachyderm would fail on (or panic on) at job time."""
    if isinstance(spec.get("pfs"), Mapping):
        pfs = spec["pfs"]
        for key in ("glob", "joinOn", "groupBy"):
            value = pfs.get(key)
            if value is None:
                continue
            try:
                compile_glob(str(value)) if key == "glob" else expand(str(value), [])
            except GlobError as exc:
                what = ("is not a valid glob" if key == "glob"
                        else "is not a template Pachyderm can use")
                raise UsageError(f"{where}.pfs.{key} {value!r} {what}: {exc}",
                                 flag=source) from None
    for kind in ("cross", "union", "join", "group"):
        for i, child in enumerate(spec.get(kind) or []):
            _check_globs(child, f"{where}.{kind}[{i}]", source)


def parse_spec(document: Any, source: str) -> PipelineSpec:
    """The spec as pachd reads it (keys normalised to their JSON names); a one-line
    UsageError naming ``source`` and the key otherwise."""
    if not isinstance(document, dict):
        raise UsageError("a pipeline spec must be a JSON object", flag=source)
    repeated = _repeated_key(document, "")
    if repeated:
        raise UsageError(f"key {repeated[0]!r} is given twice in one object {_at(repeated[1])}; "
                         "pachd refuses it (protojson: duplicate field)", flag=source)
    document = _normalise(document, request_message(), "", source)
    name = (document.get("pipeline") or {}).get("name")
    if not name or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise UsageError("pipeline.name is missing or not made of letters, digits, - and _",
                         flag=source)
    transform = document.get("transform") or {}
    if not transform.get("cmd"):
        raise UsageError("transform.cmd is missing", flag=source)
    if not document.get("input"):
        raise UsageError("input is missing", flag=source)
    spec = PipelineSpec(name, document)
    if spec.timeout is not None and spec.timeout <= 0:
        raise UsageError("datumTimeout must be positive", flag=source)
    list(pfs_inputs(spec.input))
    _check_globs(spec.input, "input", source)
    return spec


def read_spec(path: Path) -> PipelineSpec:
    """Read and parse a spec file as ``pachctl create pipeline -f`` does."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_pairs)
    except FileNotFoundError:
        raise UsageError("no such pipeline spec file", flag=str(path)) from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"not valid JSON (line {exc.lineno}: {exc.msg})", flag=str(path)) from None
    return parse_spec(document, str(path))


def packaged_specs() -> list[PipelineSpec]:
    """The four stage specs shipped in ``specs/``, in DAG order."""
    base = resources.files("tilefarm.specs")
    return [parse_spec(json.loads(base.joinpath(f"{stage}.json").read_text(encoding="utf-8")),
                       f"specs/{stage}.json") for stage in STAGES]


def provenance_order(specs: list[PipelineSpec]) -> list[PipelineSpec]:
    """Pipelines after the pipelines whose output repos they read."""
    by_name = {s.name: s for s in specs}
    ordered: list[PipelineSpec] = []
    seen: set[str] = set()

    def visit(spec: PipelineSpec, stack: tuple[str, ...]) -> None:
        if spec.name in seen:
            return
        if spec.name in stack:
            raise UsageError(f"pipelines form a cycle: {' -> '.join(stack + (spec.name,))}")
        for repo in spec.input_repos():
            if repo in by_name:
                visit(by_name[repo], stack + (spec.name,))
        seen.add(spec.name)
        ordered.append(spec)

    for spec in sorted(specs, key=lambda s: s.name):
        visit(spec, ())
    return ordered
