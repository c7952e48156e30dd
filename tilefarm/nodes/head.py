"""What the head of a Ray cluster knows of it: the connection, each node and its worker
slots (``pool.RayPool`` schedules on them), and what a node needs to start a stage."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from tilefarm.engine.budget import MemoryBudget
from tilefarm.engine.workers import JobWorkers
from tilefarm.errors import UsageError
from tilefarm.pipelines.specs import PipelineSpec


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("Ray is not installed; install it with: pip install "
                         "'tilefarm[ray]'", flag="--ray") from None
    return ray


def stage_request(spec: PipelineSpec) -> dict[str, Any]:
    """What a node needs to start ``spec``'s stage process (``NodeWorker``)."""
    env = dict(spec.env)
    env["TILEFARM_THREADS"] = "1"  # one actor per CPU of its node
    return {"pipeline": spec.name, "key": spec.text(), "cmd": spec.cmd, "env": env}


def connect(address: str) -> Any:
    """Join the Ray cluster at ``address`` (``HOST:PORT`` or ``auto``) as its driver."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR,
                 configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"no Ray cluster answers at {address!r} ({first}); start one with "
                         "`ray start --head` and `tilefarm join`", flag="--ray") from None
    return ray


@dataclass(eq=False)
class Node:
    id: str
    address: str
    cpus: int
    runtimes: frozenset[str]
    budget: MemoryBudget | None
    tags: frozenset[str] = frozenset()  # tilefarm join --tags (plan.tags)
    slots: list["Slot"] = field(default_factory=list)
    alive: bool = True
    retry_at: float = 0.0  # no new slot before then: its last actor did not start
    probe: float | None = None  # its CPU's seconds for a fixed piece of work (node.cpu_probe)
    said_slow: bool = False
    facts_sent: set[str] = field(default_factory=set)  # .blend digests (RayPool._facts)


@dataclass(eq=False)
class Slot:
    index: int
    node: Node
    actor: Any
    work: str = ""
    busy: JobWorkers | None = None
    alive: bool = True
    ready: bool = False  # its actor answered: it takes datums and stage starts (warm_up)


class NodeLost(Exception):
    """The node serving a datum left the cluster (or its actor died)."""
