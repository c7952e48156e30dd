"""``tilefarm serve``'s scheduler: every shot's jobs run as soon as their inputs exist.

Each render job (shot: a top-level ``/SHOT.blend`` or ``/SHOT/`` of ``blends``) is its own
commit set. A shot job of a pipeline runs on that shot's datums only, over the blends
commit where the shot's content first appeared as the head holds it now (``origins``)
and the upstream commits made for the same shot from it. Its output commit replaces the
shot's files in the pipeline's head and keeps every other shot's
(``Store.write_shot_commit``), so a merger never sees tiles of two versions of a shot,
and a job never runs on inputs of mixed provenance.

This differs from Pachyderm, where a pipeline runs one job at a time over whole commits
(``tilefarm run`` keeps that): there, a job put during a long render waits for all of it.

Each pending shot job (``ShotIndex.pending``) starts at once in a thread of its own, so
a job submitted while another renders is split at once, and its merge and encode never
wait for an unrelated shot's renders. The jobs of one pipeline share its worker slots
(``pools.SharedPool``): a free slot takes the next datum by priority, then by the shot's
submission, over every running job. One job per pipeline and shot runs at a time, so no
datum runs twice for the same inputs (a shot's new version waits for its old one's job).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from tilefarm.engine.engine import Engine, Progress
from tilefarm.engine.provenance import Inputs, origins as origin_repos
from tilefarm.engine.store import records, shot_of
from tilefarm.pipelines.specs import PipelineSpec

Contents = dict[str, dict[str, str]]  # shot -> its files: path -> hash


class ShotIndex:
    """Which shot jobs are pending, read from the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        # (blends head, each shot's files, each shot's origin): the last answer of origins
        self._known: tuple[str, Contents, dict[str, tuple[str, int]]] | None = None
        # (the store's stamp, the answer of pending then): with nothing written since, the
        # same answer, at no read (an idle farm of a thousand shots reads nothing)
        self._pending: tuple[tuple[int, int], list[tuple[PipelineSpec, int, Inputs, int]]] \
            | None = None

    def origins(self) -> dict[str, tuple[str, int]]:
        """Each shot in the blends head -> the blends commit where its content, as the head
        holds it, first appeared (from the head back), and that commit's place in the
        history: the shot's submission. A commit that leaves a shot alone leaves its
        origin alone, so its jobs stay done. Only commits new since the last answer are
        read, each as what it changed from its parent (``Store.changes``)."""
        with self.store.lock:
            head = self.store.head("blends")
            if head is None:
                return {}
            known = self._known
            chain: list[tuple[str, int]] = []
            commit_id: str | None = head.id
            while commit_id is not None and (known is None or commit_id != known[0]):
                parent, seq = records.commit_place(self.store, commit_id)
                chain.append((commit_id, seq))
                commit_id = parent
            if commit_id is not None and known:
                contents = {shot: dict(files) for shot, files in known[1].items()}
                origins = dict(known[2])
            else:
                contents, origins = {}, {}
            parent = commit_id  # the last answer's head, or None: the history from its root
            for commit_id, seq in reversed(chain):
                put, gone = self.store.changes(commit_id, parent)
                touched = set()
                for path in gone:
                    if (shot := shot_of(path)) is not None:
                        contents.setdefault(shot, {}).pop(path, None)
                        touched.add(shot)
                for path, digest in put.items():
                    if (shot := shot_of(path)) is not None:
                        contents.setdefault(shot, {})[path] = digest
                        touched.add(shot)
                for shot in touched:
                    if contents[shot]:
                        origins[shot] = (commit_id, seq)
                    else:
                        del contents[shot]
                        origins.pop(shot, None)
                parent = commit_id
            self._known = (head.id, contents, origins)
            return dict(origins)

    def resolve(self, spec: PipelineSpec, shot: str, origin: str) -> Inputs | None:
        """The inputs of ``spec``'s job for ``shot`` made from blends commit ``origin``:
        that commit, and each upstream pipeline's output commit for the same shot and
        origin. None while an upstream has not made one yet."""
        provenance: dict[str, str | None] = {"blends": origin}
        commits: dict[str, str | None] = {}
        failed = []
        for repo in spec.input_repos():
            if repo == "blends":
                commits[repo] = origin
                continue
            row = records.shot_commit(self.store, repo, shot, provenance)
            if row is None:
                return None
            if row["state"] != "finished":
                failed.append(repo)
            commits[repo] = row["id"]
        return Inputs(commits, provenance, tuple(sorted(failed)), shot)

    def pending(self) -> list[tuple[PipelineSpec, int, Inputs, int]]:
        """Every shot job to run now: (spec, version, inputs, the shot's submission seq).
        Only pipelines whose one origin repo is ``blends`` run by shot."""
        found: list[tuple[PipelineSpec, int, Inputs, int]] = []
        with self.store.lock:
            stamp = self.store.stamp()
            if self._pending is not None and self._pending[0] == stamp:
                return list(self._pending[1])
            origins = self.origins()
            pipelines = self.engine.pipelines()
            specs = {s.name: s for s, _ in pipelines}
            for spec, version in pipelines:
                if origin_repos(spec.name, specs) != {"blends"}:
                    continue
                for shot, (origin, seq) in sorted(origins.items(), key=lambda i: i[1][1]):
                    inputs = self.resolve(spec, shot, origin)
                    if inputs is not None and self.engine.wanted(spec, version, inputs):
                        found.append((spec, version, inputs, seq))
            self._pending = (stamp, found)
        return list(found)


def upstream_pipelines(engine: Engine) -> dict[str, set[str]]:
    """Each pipeline -> every pipeline whose output it reads, directly or not."""
    specs = {s.name: s for s, _ in engine.pipelines()}

    def above(name: str) -> set[str]:
        direct = {r for r in specs[name].input_repos() if r in specs}
        return direct.union(*(above(r) for r in direct))
    return {name: above(name) for name in specs}


class ShotScheduler:
    def __init__(self, engine: Engine, workers: int, progress: Progress | None,
                 on_end: Callable[[], None]) -> None:
        self.engine = engine
        self.index = ShotIndex(engine)
        self.workers = workers
        self.progress = progress
        self.on_end = on_end  # a job ended: its downstream may be pending now
        self.lock = threading.Lock()
        self.running: dict[tuple[str, str], threading.Thread] = {}
        # Jobs that ran on these exact inputs and did not succeed: not started again until
        # someone acts (resume, rerender, a new upload: ``retry``).
        self.attempted: set[tuple[str, str, str]] = set()

    def busy(self) -> bool:
        with self.lock:
            return bool(self.running)

    def retry(self) -> None:
        with self.lock:
            self.attempted.clear()

    def launch(self) -> int:
        """Start every pending shot job that is not running and has no upstream job of its
        shot running (that job's output is the input this one waits for); return how many
        started."""
        started = 0
        upstream = upstream_pipelines(self.engine)
        for spec, version, inputs, rank in self.index.pending():
            assert inputs.shot is not None
            slot = (spec.name, inputs.shot)
            tried = (spec.name, inputs.shot, inputs.key())
            with self.lock:
                if slot in self.running or tried in self.attempted or any(
                        (up, inputs.shot) in self.running for up in upstream[spec.name]):
                    continue
                self.attempted.add(tried)
                thread = threading.Thread(target=self._run, args=(spec, version, inputs, rank),
                                          daemon=True, name=f"job-{spec.name}-{inputs.shot}")
                self.running[slot] = thread
            thread.start()
            started += 1
        return started

    def _run(self, spec: PipelineSpec, version: int, inputs: Inputs, rank: int) -> None:
        assert inputs.shot is not None
        try:
            if inputs.failed:
                self.engine.unrunnable(spec, version, inputs)
            else:
                self.engine.run_job(spec, version, inputs, workers=self.workers,
                                    progress=self.progress, rank=rank)
        except Exception as exc:  # a broken job must not stop the farm
            print(f"tilefarm serve: {spec.name} job of {inputs.shot} failed: "
                  f"{exc.__class__.__name__}: {exc}", file=sys.stderr, flush=True)
        finally:
            with self.lock:
                self.running.pop((spec.name, inputs.shot), None)
            self.on_end()

    def join(self, timeout: float) -> None:
        with self.lock:
            threads = list(self.running.values())
        for thread in threads:
            thread.join(timeout=timeout)
