"""The running farm behind ``tilefarm serve``: the engine's scheduler, the live view, webhooks.

One engine owns the store (its lock) and runs every shot's jobs at once
(``engine.shots``): a scheduler thread starts the pending ones when a job arrives, is
resumed or re-rendered (``poke``), when a job ends, and every 2 s so that ``tilefarm put
file`` on the same store is seen too. A watcher brings the jobs view up to date
(``state.Views``: by what changed, not from the store's history) on every datum outcome
and twice a second; subscribers of ``/api/events`` get it only when it changed. Request
threads read through connections of their own (``reader``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tilefarm.blender import runtimes
from tilefarm.blender.runtimes import WarmRunner
from tilefarm.engine.engine import Engine
from tilefarm.engine.pools import SharedPool
from tilefarm.engine.shots import ShotScheduler
from tilefarm.pipelines.specs import packaged_specs
from tilefarm.plan.tags import may_run, waiting_for
from tilefarm.runtime.memory import available
from tilefarm.server import estimates, state, templates
from tilefarm.server.gate import scrub
from tilefarm.server.intake import take
from tilefarm.splitter.split import FACTS_CACHE_ENV
from tilefarm.splitter.variants import VARIANT_CACHE_ENV

SERVER_FILE = "server.json"  # in the store: which server owns it, for the CLI


class Farm:
    def __init__(self, root: Path, *, workers: int = 1, notify: str | None = None,
                 memory: int | None = None, remote: SharedPool | None = None) -> None:
        self.root = root.resolve()
        self.engine = Engine(self.root, lock=True, warm=remote is None, remote=remote,
                             memory=memory if memory is not None else available())
        # Intake and the splitter inspect a file once (split.inspect); variants' copies are
        # cached by what made them, as tilefarm render keeps them.
        os.environ.setdefault(FACTS_CACHE_ENV, str(self.root / "facts"))
        os.environ.setdefault(VARIANT_CACHE_ENV, str(self.root / "variants"))
        self.workers = workers
        self.notify = notify
        self.wake = threading.Event()
        self.poked = threading.Event()  # someone acted: jobs that failed may run again
        self.stopping = threading.Event()
        self.scheduler = ShotScheduler(self.engine, workers,
                                       progress=lambda job, counts: self._dirty.set(),
                                       on_end=self._job_ended)
        self.version = 0
        self.snapshot_json = b"[]"  # the jobs view as GET /api/jobs sends it
        # Told (on the watcher) of each new version of the view: (version, its JSON).
        self.listeners: list[Callable[[int, bytes], None]] = []
        self._views_lock = threading.Lock()  # one recomputation of the view at a time
        self._views: state.Views | None = None  # on a reader of its own, made on first use
        # job -> (the view Views made, as shown: scrubbed and with ``waiting``, its JSON)
        self._shown: dict[str, tuple[state.JobView, state.JobView, bytes]] = {}
        self._offered: list[frozenset[str]] | None = None
        # Blender Asset Tracer is not thread-safe (splitter/pack.py): one intake at a time.
        self._take_lock = threading.Lock()
        self._estimate_lock = threading.Lock()
        self._last_states: dict[str, str] = {}
        self._dirty = threading.Event()
        self._intake: dict[str, WarmRunner] = {}
        self._intake_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._schedule, daemon=True, name="scheduler"),
                         threading.Thread(target=self._watch, daemon=True, name="watcher")]

    def start(self) -> None:
        """Create (or update to this release's specs) the four pipelines, then run."""
        self.engine.store.create_repo("blends", exist_ok=True)
        for spec in packaged_specs():
            self.engine.create_pipeline(spec, update=True)
        for thread in self._threads:
            thread.start()

    @property
    def busy(self) -> bool:
        return self.scheduler.busy()

    def poke(self) -> None:
        """A job arrived, or was resumed or re-rendered: schedule now."""
        self.poked.set()
        self.wake.set()

    def _job_ended(self) -> None:
        self._dirty.set()
        self.wake.set()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self._dirty.set()
        self.engine.closing.set()  # jobs cut short now fail instead of committing part
        self.engine.control.kill_all()  # no Blender outlives the server
        if self.engine.warm is not None:
            self.engine.warm.close()
        self.scheduler.join(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)
        (self.root / SERVER_FILE).unlink(missing_ok=True)
        for runner in self._intake.values():
            runner.close()
        with self._views_lock:
            if self._views is not None:
                self._views.engine.close()
                self._views = None  # a late refresh (an estimate ending) makes nothing
        self.engine.close()

    def intake_runner(self, series: str) -> WarmRunner:
        """The warm Blender of ``series`` that inspects uploaded jobs (one per runtime)."""
        with self._intake_lock:
            runner = self._intake.get(series)
            if runner is None:
                runner = self._intake[series] = WarmRunner(runtimes.find(series).runner(
                    timeout=600))
            return runner

    def take(self, entry: Path) -> list[str]:
        """Intake of one uploaded job (``server.intake.take``), one at a time; a template
        is kept, for its page to make more variants. A new version of a shot that rendered
        here is estimated from that history at once (no probe): its view shows it queued."""
        with self._take_lock:
            jobs = self._take(entry)
            templates.keep(self.root, entry)
        with self.reader() as engine:
            known = [job for job in jobs if estimates.rendered_before(engine.store, job)]
        for job in known:
            threading.Thread(target=self._estimate_quietly, args=(job,), daemon=True,
                             name=f"estimate-{job}").start()
        return jobs

    def estimate(self, job: str) -> dict[str, Any]:
        """The job's estimate (``server.estimates``), one at a time: probes render here."""
        with self._estimate_lock:
            with self.reader() as engine:
                made = estimates.make(self.root, engine.store, job)
        with self._views_lock:
            if self._views is not None:
                self._views.made.pop(job, None)  # shown again, with its estimate
        self.refresh()
        return made

    def _estimate_quietly(self, job: str) -> None:
        try:
            self.estimate(job)
        except Exception as exc:  # an estimate is advice: the job renders without one
            print(f"tilefarm serve: {job}: no estimate: {exc}", file=sys.stderr, flush=True)

    def _take(self, entry: Path) -> list[str]:
        with self.reader() as engine:
            return take(engine.store, entry, self.intake_runner,
                        tagged=self.engine.remote is not None)

    def add_variant(self, job: str, name: str, form: dict[str, str],
                    images: dict[str, tuple[str, Path]], into: Path) -> str:
        """A new variant of the kept template ``job``, from the page's form: taken as any
        upload, then recorded in the template. Returns its job's name."""
        with self._take_lock:
            made = templates.variant_folder(self.root, job, name, form, images, into)
            (taken,) = self._take(made)
            templates.record(self.root, job, name, made)
            return taken

    @contextmanager
    def reader(self) -> Iterator[Engine]:
        """An engine on the same store with its own database connection, for one request."""
        engine = Engine(self.root, lock=False)
        try:
            yield engine
        finally:
            engine.close()

    # -- scheduling --------------------------------------------------------------------------

    def _schedule(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(timeout=2.0)
            self.wake.clear()
            if self.stopping.is_set():
                return
            if self.poked.is_set():
                self.poked.clear()
                self.scheduler.retry()
            try:
                if self.scheduler.launch():
                    self._dirty.set()
            except Exception as exc:  # a broken store read must not stop the farm
                print(f"tilefarm serve: the scheduler failed: {exc.__class__.__name__}: {exc}",
                      file=sys.stderr, flush=True)

    # -- the live view -----------------------------------------------------------------------

    def _watch(self) -> None:
        while not self.stopping.is_set():
            self._dirty.wait(timeout=0.5)
            self._dirty.clear()
            if self.stopping.is_set():
                return
            try:
                self.refresh()
            except Exception as exc:  # e.g. a store mid-write; try again next tick
                print(f"tilefarm serve: view: {exc}", file=sys.stderr, flush=True)

    def refresh(self) -> None:
        """Bring the view up to date now: a write through the API shows in the very next
        read."""
        with self._views_lock:
            if self.stopping.is_set() and self._views is None:
                return
            if self._views is None:
                self._views = state.Views(Engine(self.root, lock=False))
            views = self._views.update(self.busy)
            offered = self._node_tags()
            machines = len(offered or ()) or 1
            moved = offered != self._offered or len(views) != len(self._shown)
            shown = []
            for view in views:
                last = self._shown.get(view.job)
                if last is None or last[0] is not view or offered != self._offered:
                    last = self._shown[view.job] = self._show(view, offered, machines)
                    moved = True
                shown.append(last)
            self._offered = offered
            if not moved and self.version:
                return  # no view was made again: nothing changed
            self._shown = {view.job: last for view, last in zip(views, shown)}
            snapshot = b"[" + b", ".join(document for _, _, document in shown) + b"]"
            if snapshot == self.snapshot_json and self.version:
                return  # unchanged (the first view counts as a change: it is the first)
            self.snapshot_json = snapshot
            self.version += 1
            self._notify(self._views.engine, [view for _, view, _ in shown])
            for listener in list(self.listeners):  # in order: under the lock (they only queue)
                listener(self.version, self.snapshot_json)

    def _show(self, view: state.JobView, offered: list[frozenset[str]] | None, machines: int,
              ) -> tuple[state.JobView, state.JobView, bytes]:
        """A view as the API shows it: job-relative names in its error, and why it waits
        when no node has its tags."""
        shown = dataclasses.replace(view, error=scrub(view.error, self.root),
                                    estimate_s=self.estimate_of(view.job, machines))
        if offered is not None and view.state in ("queued", "running") and not any(
                may_run(view.tags, tags) for tags in offered):
            shown.waiting = waiting_for(view.tags)
        return view, shown, json.dumps(shown.document()).encode()

    def estimate_of(self, job: str, machines: int | None = None) -> float | None:
        """The makespan its kept estimate gives on this farm's machines: one here (its
        workers share this machine's cores), or each Ray node."""
        if self._views is None:
            self.refresh()
        if self._views is None:  # stopped
            return None
        if machines is None:
            machines = len(self._node_tags() or ()) or 1
        return estimates.makespan(estimates.saved(self.root, self._views.engine.store, job),
                                  machines)

    def _node_tags(self) -> list[frozenset[str]] | None:
        """Each node's tags on a Ray cluster (``nodes.pool``); None on one machine."""
        tags = getattr(self.engine.remote, "node_tags", None)
        return tags() if tags is not None else None

    def current_view(self) -> bytes:
        """The jobs view as ``GET /api/jobs`` sends it (JSON), computed now if the watcher
        has not yet."""
        if not self.version:
            self.refresh()
        return self.snapshot_json

    # -- webhooks ----------------------------------------------------------------------------

    def _notify(self, engine: Engine, views: list[state.JobView]) -> None:
        for view in views:
            before = self._last_states.get(view.job)
            self._last_states[view.job] = view.state
            if view.state not in ("done", "failed") or before in (None, view.state):
                continue
            targets = [u for u in (self.notify, job_notify(engine, view.job)) if u]
            body = json.dumps({"job": view.job, "state": view.state,
                               "frames_done": view.frames_done,
                               "frames_total": view.frames_total, "error": view.error,
                               "video": view.video}).encode()
            for url in dict.fromkeys(targets):
                threading.Thread(target=post_webhook, args=(url, body), daemon=True).start()


def job_notify(engine: Engine, job: str) -> str | None:
    """The ``notify`` URL of the job's own settings (``/<job>/tilefarm.json``), if any."""
    head = engine.store.head("blends")
    for info in engine.store.files(head.id if head else None, f"/{job}/tilefarm.json"):
        try:
            value = json.loads(engine.store.object_path(info.hash).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        url = value.get("notify") if isinstance(value, dict) else None
        return url if isinstance(url, str) else None
    return None


def post_webhook(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "tilefarm"})
    for attempt in range(3):
        try:
            with urllib.request.urlopen(request, timeout=10):
                return
        except OSError as exc:
            if attempt == 2:
                print(f"tilefarm serve: webhook {url} failed: {exc}", file=sys.stderr,
                      flush=True)
            time.sleep(1 + attempt)
