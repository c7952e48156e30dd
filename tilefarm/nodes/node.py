"""What runs on a Ray node: its file cache, and the worker actor that runs datums there.

Nothing is shared with the head but the network. A datum's request names its input files
by content hash, each with a Ray object reference the head put once; the node fetches a
file through Ray only when its cache lacks that hash (as Flamenco's Shaman keeps files by
checksum), so a texture set crosses the network once per node, not once per tile. The
cache lives in ``$TILEFARM_NODE_CACHE`` (``tilefarm join --cache``; default
``~/.cache/tilefarm/node``) and outlives the node's Ray session.

A ``NodeWorker`` actor holds one CPU of its node and, for each pipeline, one warm stage
process fed through the same ``NextDatum`` protocol as a local batching worker
(``pipelines.worker``): the stage code, and the warm Blender it keeps, run unchanged. Its
outputs go back to the head in the actor call's result.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tilefarm.engine.spawn import exec_error, local_argv
from tilefarm.pipelines.worker import WORKER_PORT_ENV, WorkerServer
from tilefarm.runtime import memory
from tilefarm.runtime.files import cache_dir
from tilefarm.runtime.procs import kill_tree, log_tail
from tilefarm.splitter.split import FACTS_CACHE_ENV, learn_facts
from tilefarm.splitter.variants import VARIANT_CACHE_ENV

CACHE_ENV = "TILEFARM_NODE_CACHE"
FETCHED_LOG = "fetched.log"  # one line per file fetched from the head: "<sha256> <bytes>"
LOG_LIMIT = 64 * 1024  # the most of a datum's log sent back to the head


def cache_root() -> Path:
    return cache_dir(CACHE_ENV, "node")


class FileCache:
    """Files by sha256 on this node; each is fetched at most once, even by two workers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "objects").mkdir(parents=True, exist_ok=True)
        (root / "locks").mkdir(exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2] / digest

    def ensure(self, digest: str, fetch: Callable[[], bytes]) -> int:
        """Have ``digest`` in the cache; return the bytes fetched for it (0: it was here)."""
        target = self.path(digest)
        if target.exists():
            return 0
        with (self.root / "locks" / digest).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be fetching it now
            if target.exists():
                return 0
            data = fetch()
            if hashlib.sha256(data).hexdigest() != digest:
                raise OSError(f"the head sent bytes whose sha256 is not {digest}")
            target.parent.mkdir(exist_ok=True)
            staged = target.with_name(f".incoming-{os.getpid()}-{threading.get_ident()}")
            staged.write_bytes(data)
            os.chmod(staged, 0o444)
            os.replace(staged, target)
            with (self.root / FETCHED_LOG).open("a") as log:
                log.write(f"{digest} {len(data)}\n")
            return len(data)

    def link(self, digest: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self.path(digest), dest)
        except OSError:
            shutil.copyfile(self.path(digest), dest)


def fetched(root: Path) -> list[tuple[str, int]]:
    """Every file a node's cache fetched from the head, in order: (sha256, bytes)."""
    try:
        lines = (root / FETCHED_LOG).read_text().split("\n")
    except OSError:
        return []
    return [(d, int(n)) for d, n in (line.split() for line in lines if line.strip())]


def cpu_probe() -> float:
    """Seconds this CPU takes for a fixed piece of work (sha256 of 64 MiB: about 0.06 s on
    a free core of today; a machine throttled to 1/8 of a CPU takes 8 times as long)."""
    data = bytes(64 << 20)
    began = time.monotonic()
    hashlib.sha256(data).digest()
    return time.monotonic() - began


class _Stage:
    """One pipeline's warm stage process on this worker, fed datum after datum."""

    def __init__(self, key: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.key, self.argv, self.env, self.log = key, argv, env, log
        self.handout: queue.Queue[list[str] | None] = queue.Queue()
        self.reports: queue.Queue[str] = queue.Queue()
        self.handed = False  # a datum was handed out and not yet reported
        self.server = WorkerServer(self._next_datum)
        self.proc: subprocess.Popen[bytes] | None = None

    def _next_datum(self, previous_error: str) -> list[str] | None:
        # The queues of the process that called: a call a dead process left behind ends
        # with the None that ``start`` gives it, and never takes its successor's datum.
        handout, reports = self.handout, self.reports
        if self.handed:  # the call after a datum reports how it went
            self.handed = False
            reports.put(previous_error)
        env = handout.get()
        self.handed = env is not None
        return env

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.handout.put(None)  # frees a call the previous process left waiting
        self.handout, self.reports, self.handed = queue.Queue(), queue.Queue(), False
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                self.argv, env={**self.env, WORKER_PORT_ENV: str(self.server.port)},
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True)

    def close(self) -> None:
        if self.alive():
            self.handout.put(None)  # no datum is left: the stage process ends its batch
            assert self.proc is not None
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kill_tree(self.proc)
        self.server.stop()


class NodeWorker:
    """One worker slot on a Ray node (``ray.remote`` makes it an actor on the head's side).

    ``serve`` runs one datum and returns its outcome and outputs; ``cancel`` (called while
    ``serve`` runs: the actor is threaded) ends the datum's processes, Blender included."""

    def __init__(self, name: str) -> None:
        self.cache = FileCache(cache_root())
        self.work = cache_root() / "work" / name
        shutil.rmtree(self.work, ignore_errors=True)
        self.stages: dict[str, _Stage] = {}
        self.current: tuple[str, subprocess.Popen[bytes]] | None = None
        self.lock = threading.Lock()  # guards current
        self.starting = threading.Lock()  # guards stages: prestart and serve may both start one

    def info(self) -> dict[str, Any]:
        return {"work": str(self.work), "pid": os.getpid(), "cache": str(self.cache.root),
                "probe": cpu_probe()}

    def serve(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one datum: its files from the cache (fetched on a miss), its pipeline's stage
        process, its outputs read back. ``request`` keys: pipeline, key, cmd, env, batching,
        timeout, datum, datum_env, files [(path under pfs, sha256, [ref])], facts [(sha256,
        the head's cached facts of that .blend: split.cached_facts)]."""
        import ray

        pipeline = request["pipeline"]
        pfs = self.work / pipeline / "pfs"
        shutil.rmtree(pfs, ignore_errors=True)
        (pfs / "out").mkdir(parents=True)
        fetched = 0
        for path, digest, ref in request["files"]:
            fetched += self.cache.ensure(digest, lambda: bytes(ray.get(ref[0])))
            self.cache.link(digest, pfs / path)
        env, argv, log = self._env(request), local_argv(request["cmd"]), self._log(pipeline)
        for digest, documents in request.get("facts", []):
            learn_facts(Path(env[FACTS_CACHE_ENV]), digest, documents)
        start = log.stat().st_size if log.exists() else 0
        began = time.monotonic()
        if request["batching"]:
            ok, error, peak = self._batched(request, argv, env, log)
        else:
            ok, error, peak = self._plain(request, argv, {**env, **request["datum_env"]}, log)
        outputs = []
        if ok:
            out = pfs / "out"
            outputs = [(str(p.relative_to(out)), p.read_bytes())
                       for p in sorted(out.rglob("*")) if p.is_file()]
        with log.open("rb") as reader:
            reader.seek(max(start, log.stat().st_size - LOG_LIMIT))
            text = reader.read().decode("utf-8", errors="replace")
        return {"ok": ok, "error": error, "peak": peak, "outputs": outputs, "log": text,
                "fetched": fetched, "seconds": time.monotonic() - began}

    def _env(self, request: dict[str, Any]) -> dict[str, str]:
        env = {**os.environ, **request["env"]}
        env.pop(WORKER_PORT_ENV, None)
        # What the splitter learnt of a file (by its content) is kept on the node, as the
        # head keeps it for its own intake: a file seen before is not inspected again.
        env.setdefault(FACTS_CACHE_ENV, str(self.cache.root / "facts"))
        env.setdefault(VARIANT_CACHE_ENV, str(self.cache.root / "variants"))
        return env

    def _log(self, pipeline: str) -> Path:
        return self.work / f"{pipeline}.log"

    def _stage(self, request: dict[str, Any], argv: list[str], env: dict[str, str],
               log: Path) -> _Stage:
        """The pipeline's stage process, started unless it runs (a changed spec ends the old)."""
        with self.starting:
            stage = self.stages.get(request["pipeline"])
            if stage is not None and stage.key != request["key"]:
                stage.close()  # the pipeline's spec changed
                stage = None
            if stage is None:
                stage = self.stages[request["pipeline"]] = _Stage(request["key"], argv, env, log)
            if not stage.alive():
                stage.start()
            return stage

    def prestart(self, requests: list[dict[str, Any]]) -> None:
        """Start these pipelines' stage processes before their first datum (``RayPool.
        warm_up``: a job's stages start on the nodes while the head takes the job in).
        ``requests`` keys: pipeline, key, cmd, env, as ``serve``'s. A start that fails is
        left to the first datum, which says why."""
        for request in requests:
            try:
                self._stage(request, local_argv(request["cmd"]), self._env(request),
                            self._log(request["pipeline"]))
            except OSError:
                pass

    def _batched(self, request: dict[str, Any], argv: list[str], env: dict[str, str],
                 log: Path) -> tuple[bool, str, int | None]:
        try:
            stage = self._stage(request, argv, env, log)
        except OSError as exc:
            return False, exec_error(argv[0], exc), None
        assert stage.proc is not None
        proc = stage.proc
        self._begin(request["datum"], proc)
        memory.reset_peaks(proc.pid)
        stage.handout.put([f"{k}={v}" for k, v in request["datum_env"].items()])
        deadline = request["timeout"]
        began = time.monotonic()
        try:
            while True:
                try:
                    error = stage.reports.get(timeout=0.05)
                    return not error, error, memory.peak(proc.pid)
                except queue.Empty:
                    pass
                if proc.poll() is not None:
                    why = f"worker exited with code {proc.returncode} mid-datum: {log_tail(log, 2)}"
                    return False, why, None
                if deadline is not None and time.monotonic() - began > deadline:
                    kill_tree(proc)
                    return False, f"timed out after {deadline:g} s (datumTimeout)", None
        finally:
            with self.lock:
                self.current = None

    def _plain(self, request: dict[str, Any], argv: list[str], env: dict[str, str],
               log: Path) -> tuple[bool, str, int | None]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as sink:
            try:
                proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                return False, exec_error(argv[0], exc), None
        self._begin(request["datum"], proc)
        try:
            code, peak = memory.wait(proc, request["timeout"])
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            return False, f"timed out after {request['timeout']:g} s (datumTimeout)", None
        finally:
            with self.lock:
                self.current = None
        return code == 0, "" if code == 0 else f"exited with code {code}: {log_tail(log, 2)}", peak

    def _begin(self, datum: str, proc: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self.current = (datum, proc)

    def cancel(self, datum: str) -> bool:
        """End ``datum``'s processes now, Blender included; True if it was running."""
        with self.lock:
            current = self.current
            if current is None or current[0] != datum:
                return False
        kill_tree(current[1])
        return True

    def close(self) -> None:
        """End every stage's process: told at once that no datum is left, then awaited."""
        for stage in self.stages.values():
            stage.handout.put(None)
        for stage in self.stages.values():
            stage.close()
        self.stages.clear()

