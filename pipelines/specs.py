"""Pipeline specs as the engine reads them: the same JSON files ``pachctl create pipeline -f`` takes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

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


def parse_spec(document: Any, source: str) -> PipelineSpec:
    """Check what the engine relies on; raise a clear error naming ``source`` otherwise."""
    if not isinstance(document, dict):
        raise UsageError("a pipeline spec must be a JSON object", flag=source)
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
    return spec


def read_spec(path: Path) -> PipelineSpec:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
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
