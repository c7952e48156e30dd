"""The head's side of a Ray cluster: one pool of worker slots over every node.

``tilefarm serve --ray ADDRESS`` and ``render --ray ADDRESS`` give the engine a ``RayPool``
in place of its local pools. The store, plans, provenance and job control stay on the
head; only datums travel. Each node gets one ``node.NodeWorker`` actor per CPU it offers
Ray (a head started with ``--num-cpus 0`` gets none). A slot's thread on the head takes
the next datum over every running job of every pipeline, exactly as a local slot does
(``engine.pools.SharedPool.pick``: priority, then submission, pause and cancel), among
the datums its node can run (``routing``: the node has the job's Blender runtime), within
the node's memory budget, and waits for the actor's answer.

Order between pipelines: datums of the stages other than the renderer (planning,
compositing, encoding; short, and each unblocks a job) go before render datums, as on
one machine, where each pipeline has slots of its own.

Files cross once per node: the head puts each input file in Ray's object store once, by
hash; a node fetches it only on a miss in its own cache (``node.FileCache``). A node that
leaves mid-datum (its raylet gone) costs that datum no try: it runs again elsewhere. A
node that joins is found within a second and takes work as soon as its actors are up.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from tilefarm.blender.runtimes import CLUSTER_ENV, WARM_ENV
from tilefarm.engine import backups
from tilefarm.engine.budget import MemoryBudget
from tilefarm.engine.control import Control
from tilefarm.engine.pools import SharedPool
from tilefarm.engine.store import Store, records
from tilefarm.engine.workers import DatumRun, JobWorkers
from tilefarm.nodes.head import Node, NodeLost, Slot, connect, stage_request
from tilefarm.nodes.node import NodeWorker
from tilefarm.nodes.routing import RESOURCE_PREFIX, runtime_needed
from tilefarm.pipelines.specs import PipelineSpec
from tilefarm.plan.tags import RESOURCE_PREFIX as TAG_PREFIX
from tilefarm.plan.tags import may_run, waiting_for
from tilefarm.runtime.files import write_bytes
from tilefarm.splitter.split import cached_facts

RENDER_STAGE = "renderer"  # its datums go after every other stage's (see above)
REF_IDLE = 600.0  # seconds an input file stays in the object store unasked
SLOW = 4.0  # a node this many times slower than the fastest (its CPU probe) is slow


class RayPool(SharedPool):
    """Worker slots on every node of a Ray cluster, shared by every pipeline's jobs."""

    def __init__(self, address: str, *, budgets: bool = False, refresh: float = 1.0,
                 backups: bool = True) -> None:
        super().__init__(1)
        self.backups = backups  # a free slot backs up a straggler on another node
        self.ray = connect(address)
        self.budgets = budgets
        self.nodes: dict[str, Node] = {}
        self.slots: list[Slot] = []
        self.threads: list[threading.Thread] = []
        self.made = 0
        self.refs: dict[str, tuple[Any, float]] = {}  # sha256 -> (object ref, last asked)
        self.refs_lock = threading.Lock()
        self.waiting_said = False
        self.waiting_for: set[str] = set()  # shots said to wait for a node with their tags
        self.store: Store | None = None  # the engine's, for routing (set by its first job)
        self.refresh_every = refresh
        self.stopped = threading.Event()  # set by close: the watcher ends at once
        self.early: list[dict[str, Any]] = []  # stage processes every slot starts (warm_up)
        self.actor_class = self.ray.remote(NodeWorker)
        self.refresh()
        self.watcher = threading.Thread(target=self._watch, daemon=True, name="ray-nodes")
        self.watcher.start()

    # -- nodes -------------------------------------------------------------------------------

    def runtimes(self) -> list[str]:
        """Every Blender runtime some node that runs datums has."""
        return sorted({r for n in list(self.nodes.values()) if n.alive and n.cpus
                       for r in n.runtimes})

    def refresh(self) -> None:
        """Find joined and departed nodes; start slots on the joined ones."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        seen = set()
        for info in self.ray.nodes():
            if not info.get("Alive"):
                continue
            node_id = info["NodeID"]
            seen.add(node_id)
            resources = info.get("Resources", {})
            node = self.nodes.get(node_id)
            if node is None:
                memory = int(resources.get("memory", 0))
                node = self.nodes[node_id] = Node(
                    node_id, info.get("NodeManagerAddress", "?"), int(resources.get("CPU", 0)),
                    frozenset(k[len(RESOURCE_PREFIX):] for k in resources
                              if k.startswith(RESOURCE_PREFIX)),
                    MemoryBudget(memory) if self.budgets and memory else None,
                    frozenset(k[len(TAG_PREFIX):] for k in resources
                              if k.startswith(TAG_PREFIX)))
        for node in self.nodes.values():
            if node.id not in seen and node.alive:
                node.alive = False
                for slot in node.slots:
                    slot.alive = False
        # Every node is known before a slot starts: a slot takes a datum at once, routed
        # among the runtimes of the whole cluster (routing), never of the nodes seen so far.
        os.environ[CLUSTER_ENV] = ",".join(self.runtimes())
        for node in [n for n in self.nodes.values() if n.id in seen]:
            wanted = node.cpus - sum(s.alive for s in node.slots)
            for _ in range(wanted if time.monotonic() >= node.retry_at else 0):
                self.made += 1
                actor = self.actor_class.options(
                    num_cpus=1, max_concurrency=4, max_restarts=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False),
                ).remote(f"{os.getpid()}-{self.made}")
                slot = Slot(self.made, node, actor)
                node.slots.append(slot)
                with self.cond:
                    self.slots.append(slot)
                thread = threading.Thread(target=self._slot, args=(slot,), daemon=True,
                                          name=f"ray-slot-{slot.index}")
                self.threads.append(thread)
                thread.start()
        with self.cond:
            self.cond.notify_all()

    def _watch(self) -> None:
        while not self.stopped.wait(self.refresh_every):
            try:
                self.refresh()
                self._forget_refs()
            except Exception as exc:  # the cluster is unreachable for a moment
                print(f"tilefarm: Ray: {exc.__class__.__name__}: {exc}", file=sys.stderr)

    # -- scheduling --------------------------------------------------------------------------

    def node_tags(self) -> list[frozenset[str]]:
        """The tags of each node that runs datums now."""
        return [n.tags for n in list(self.nodes.values()) if n.alive and n.cpus]

    def accepts(self, node: Node) -> Any:
        series = self.runtimes()
        controls = Control(self.store).all() if self.store else {}

        def accept(run: DatumRun) -> bool:
            steer = controls.get(run.shot or "")
            if not may_run(steer.tags if steer else (), node.tags):
                return False
            needed = runtime_needed(self.store, run.datum, series) if self.store else None
            return needed is None or needed in node.runtimes
        return accept

    def slow(self, node: Node) -> bool:
        """Whether ``node``'s CPU probe took over SLOW times the fastest node's. A slow node
        renders, and leaves the other stages' datums (each one unblocks a job, and no
        other datum of its kind runs beside it to back it up) to faster nodes."""
        probes = [n.probe for n in list(self.nodes.values())
                  if n.alive and n.cpus and n.probe is not None]
        if node.probe is None or not probes or node.probe <= SLOW * min(probes):
            return False  # not probed yet, or no node is alive (its slot is ending)
        if not node.said_slow:
            node.said_slow = True
            print(f"tilefarm: Ray node {node.address} is {node.probe / min(probes):.1f}x "
                  "slower than the fastest node (a CPU probe): it renders, and leaves "
                  "planning, merging and encoding to faster nodes", file=sys.stderr, flush=True)
        return True

    def _say_waiting(self, job: JobWorkers) -> None:
        """Say once per shot that its datums wait for a node with its tags."""
        if job.control is None:
            return
        offered = self.node_tags()
        for shot in {run.shot for run in list(job.queue) if run.shot}:
            tags = job.control.get(shot).tags
            if shot not in self.waiting_for and not any(may_run(tags, t) for t in offered):
                self.waiting_for.add(shot)
                print(f"tilefarm: {shot}: {waiting_for(tags)} (tilefarm join HEAD"
                      + (f" --tags {','.join(tags)})" if tags else ")"), file=sys.stderr,
                      flush=True)

    def warm_up(self, specs: list[PipelineSpec], series: str | None) -> None:
        """Start these pipelines' stage processes on every slot (and on every slot started
        later), as ``Engine.prestart`` does on one machine: the nodes start them while the
        head takes the job in, not when the first datum arrives. ``series``: the Blender the
        renderer's boot at once."""
        requests = [stage_request(spec) for spec in specs]
        if series is not None:
            for request in requests:
                request["env"][WARM_ENV] = series
        with self.cond:
            self.early += requests
            ready = [slot for slot in self.slots if slot.ready and slot.alive]
        for slot in ready:
            slot.actor.prestart.remote(requests)

    def drive(self, job: JobWorkers) -> None:
        self.store = job.store  # one engine's: every job's
        with self.cond:
            while not self.closing and (job.has_runnable()
                                        or any(s.busy is job for s in self.slots)):
                if not any(s.alive for s in self.slots) and not self.waiting_said:
                    self.waiting_said = True
                    print("tilefarm: waiting for a Ray node with CPUs to join the cluster "
                          "(tilefarm join HEAD)", file=sys.stderr, flush=True)
                elif any(s.alive for s in self.slots):
                    self._say_waiting(job)
                self.cond.wait(timeout=1.0)

    @staticmethod
    def _rendering(job: JobWorkers) -> bool:
        return job.spec.name == RENDER_STAGE

    def order(self, job: JobWorkers, key: tuple[int, ...]) -> tuple[int, ...]:
        return (int(job.spec.name == RENDER_STAGE), *key)

    def _slot(self, slot: Slot) -> None:
        try:
            info = self.ray.get(slot.actor.info.remote(), timeout=300)
            slot.work = info["work"]
            slot.node.probe = min(info["probe"], slot.node.probe or info["probe"])
            with self.cond:
                if self.early:
                    slot.actor.prestart.remote(self.early)
                slot.ready = True
        except Exception as exc:
            # A node that has just left is listed alive for a while: try it again later.
            slot.alive = False
            if slot.node.retry_at == 0.0:
                print(f"tilefarm: Ray: no worker started on node {slot.node.address} "
                      f"({exc.__class__.__name__}); trying it again every 30 s",
                      file=sys.stderr, flush=True)
            slot.node.retry_at = time.monotonic() + 30
            with self.cond:
                if slot in self.slots:
                    self.slots.remove(slot)
            return
        while True:
            with self.cond:
                picked = None
                while not self.closing and slot.alive and (picked := self.pick(
                        accept=self.accepts(slot.node), budget=slot.node.budget,
                        asker=id(slot), place=slot.node.address,
                        only=self._rendering if self.slow(slot.node) else None)) is None:
                    # Woken by a job or a datum's end; at the latest when the next running
                    # datum straggles (engine.backups), or in a second.
                    due = 1.0 if self.recheck is None else max(0.02, self.recheck)
                    self.cond.wait(timeout=min(1.0, due))
                if picked is None:
                    if not self.closing:  # its node left: close() ends the others
                        self._end_slot(slot)
                    return
                job, run = picked
                slot.busy = job
            try:
                self._serve(slot, job, run)
            except NodeLost:
                slot.alive = False
                job.requeue(run)
            except BaseException as exc:  # tilefarm's own failure: the job ends with it
                job.failed(exc)
            finally:
                if slot.node.budget is not None:
                    slot.node.budget.release(run)
                with self.cond:
                    slot.busy = None
                    self.cond.notify_all()

    def _end_slot(self, slot: Slot) -> None:
        with self.cond:
            if slot in self.slots:
                self.slots.remove(slot)
        try:
            self.ray.kill(slot.actor)
        except Exception:
            pass

    # -- one datum ---------------------------------------------------------------------------

    def _ref(self, job: JobWorkers, digest: str) -> Any:
        with self.refs_lock:
            found = self.refs.get(digest)
            if found is None:
                data = job.store.object_path(digest).read_bytes()
                found = (self.ray.put(data), 0.0)
            self.refs[digest] = (found[0], time.monotonic())
            return found[0]

    def _forget_refs(self) -> None:
        with self.refs_lock:
            now = time.monotonic()
            for digest in [d for d, (_, t) in self.refs.items() if now - t > REF_IDLE]:
                del self.refs[digest]

    @staticmethod
    def _facts(node: Node, run: DatumRun) -> list[tuple[str, list[tuple[str, bytes]]]]:
        """What intake here learnt of the datum's .blend files (``split.cached_facts``), each
        sent once to a node: its splitter need not start a Blender to inspect them again."""
        sent = []
        for digest in {info.hash for part in run.datum.parts for info in part.files
                       if info.path.endswith(".blend")}:  # tiles and manifests have none
            if digest not in node.facts_sent and (found := cached_facts(digest)):
                node.facts_sent.add(digest)
                sent.append((digest, found))
        return sent

    def _serve(self, slot: Slot, job: JobWorkers, run: DatumRun) -> None:
        from ray.exceptions import RayError, RayTaskError

        run.place = slot.node.address
        if run.primary is None:  # a backup copy's datum started with its first copy
            records.start_datum(job.store, job.job, run.datum.id)
        node_pfs = f"{slot.work}/{job.spec.name}/pfs"
        # The cluster's runtimes as they are now (nodes come and go): with each datum.
        datum_env = {**job.datum_env(run, node_pfs), CLUSTER_ENV: os.environ.get(CLUSTER_ENV, "")}
        request = {
            **stage_request(job.spec), "batching": job.spec.batching,
            "timeout": job.spec.timeout, "datum": run.datum.id, "datum_env": datum_env,
            # The references sit in a list: Ray hands them over unresolved, and the node
            # fetches only what its cache lacks.
            "files": [(f"{part.name}{info.path}", info.hash, [self._ref(job, info.hash)])
                      for part in run.datum.parts for info in part.files],
            "facts": self._facts(slot.node, run),
        }
        pending = slot.actor.serve.remote(request)
        job.remote[slot.index] = (lambda: slot.actor.cancel.remote(run.datum.id), run)
        try:
            if backups.moot(run) or job.held(run) and job.control is not None \
                    and job.control.get(run.shot or "").cancelled:
                slot.actor.cancel.remote(run.datum.id)  # cancelled between pick and start
            while not self.ray.wait([pending], timeout=1.0)[0]:
                if self.closing or not slot.node.alive:
                    slot.actor.cancel.remote(run.datum.id)
                    raise NodeLost()
            try:
                result = self.ray.get(pending)
            except RayTaskError:
                raise
            except RayError:
                raise NodeLost() from None
        finally:
            job.remote.pop(slot.index, None)
        pfs = job.work / f"ray-{slot.index}" / "pfs"
        (pfs / "out").mkdir(parents=True, exist_ok=True)
        for path, data in result["outputs"]:
            write_bytes(pfs / "out" / path, data)
        log = job.logs / f"{run.datum.id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as sink:  # which node, then what it printed
            copy = "backup copy " if run.primary is not None else ""
            sink.write(f"tilefarm: {copy}on Ray node {slot.node.address}\n{result['log']}")
        run.peak = result["peak"]
        job.finish(run, result["ok"], result["error"], pfs)

    def close(self) -> None:
        """End every slot (a datum in flight is cancelled), its actor and the connection."""
        super().close()
        self.stopped.set()
        self.watcher.join(timeout=10)
        for thread in self.threads:
            thread.join(timeout=30)
        closing = [slot.actor.close.remote() for slot in self.slots]  # all at once
        try:
            self.ray.wait(closing, num_returns=len(closing), timeout=15)
        except Exception:
            pass
        for slot in list(self.slots):
            self._end_slot(slot)
        self.ray.shutdown()

