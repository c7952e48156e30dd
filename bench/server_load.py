"""Benchmark: a bounded load on ``tilefarm serve`` while a job renders, on loopback.

CLIENTS threads poll ``GET /api/jobs`` back to back and SUBSCRIBERS threads listen to
``GET /api/events`` for SECONDS (at least until the job ends). It reports:

- requests served, failed (anything but a 200, or an error), and their latency (median,
  p95, max), against the same polls on the idle server before the job (the baseline);
- per subscriber: whether it saw every state the server published (every distinct
  (state, frames_done) any poller saw) and ended on the last one;
- whether the frames are Blender's own, byte for byte in their pixels (``blender -a``).

    .venv/bin/python bench/server_load.py [--clients 50] [--subscribers 20] [--seconds 60]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from common import TILEFARM, demo, serve, stop
from tests.pipeline import assert_identical, reference
from tilefarm.blender.runner import BlenderRunner

JOB = "loaded"


class Poller(threading.Thread):
    def __init__(self, url: str, until: threading.Event) -> None:
        super().__init__(daemon=True)
        where = urlparse(url)
        self.host, self.port = where.hostname or "127.0.0.1", where.port or 80
        self.until = until
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.seen: list[tuple[str, int]] = []  # the job's (state, frames_done), as it changed

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        while not self.until.is_set():
            start = time.perf_counter()
            try:
                conn.request("GET", "/api/jobs")
                answer = conn.getresponse()
                body = answer.read()
                self.latencies.append(time.perf_counter() - start)
                if answer.status != 200:
                    self.failures.append(f"{answer.status}: {body[:200]!r}")
                    continue
                for job in json.loads(body):
                    if job["job"] == JOB:
                        now = (job["state"], job["frames_done"])
                        if not self.seen or self.seen[-1] != now:
                            self.seen.append(now)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.failures.append(f"{exc.__class__.__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.close()


class Subscriber(threading.Thread):
    def __init__(self, url: str, until: threading.Event) -> None:
        super().__init__(daemon=True)
        where = urlparse(url)
        self.host, self.port = where.hostname or "127.0.0.1", where.port or 80
        self.until = until
        self.seen: list[tuple[str, int]] = []
        self.failures: list[str] = []

    def run(self) -> None:
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            conn.request("GET", "/api/events")
            answer = conn.getresponse()
            if answer.status != 200:
                self.failures.append(f"{answer.status}")
                return
            event = ""
            while not self.until.is_set():
                line = answer.fp.readline().decode().rstrip("\r\n")
                if not line and answer.isclosed():
                    self.failures.append("the stream ended")
                    return
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "jobs":
                    for job in json.loads(line[6:]):
                        if job["job"] == JOB:
                            now = (job["state"], job["frames_done"])
                            if not self.seen or self.seen[-1] != now:
                                self.seen.append(now)
            conn.close()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if not self.until.is_set():
                self.failures.append(f"{exc.__class__.__name__}: {exc}")


def polls(url: str, clients: int, seconds: float) -> list[Poller]:
    until = threading.Event()
    pollers = [Poller(url, until) for _ in range(clients)]
    for poller in pollers:
        poller.start()
    time.sleep(seconds)
    until.set()
    for poller in pollers:
        poller.join(timeout=60)
    return pollers


def latency(pollers: list[Poller]) -> str:
    values = sorted(v for p in pollers for v in p.latencies)
    p95 = values[int(0.95 * (len(values) - 1))]
    return (f"{len(values)} requests, median {statistics.median(values) * 1000:.1f} ms, "
            f"p95 {p95 * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--frames", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tilefarm-load-") as tmp:
        work = Path(tmp)
        blend = work / f"{JOB}.blend"
        demo(blend, args.frames, "160x90", 32, denoise=False)
        own = reference(blend, work / "own", BlenderRunner(timeout=3600))
        root = work / "store"
        server, url = serve(root)
        try:
            idle = polls(url, args.clients, 5)
            until = threading.Event()
            subscribers = [Subscriber(url, until) for _ in range(args.subscribers)]
            pollers = [Poller(url, until) for _ in range(args.clients)]
            for thread in [*subscribers, *pollers]:
                thread.start()
            time.sleep(1)
            start = time.monotonic()
            subprocess.run([str(TILEFARM), "submit", str(blend), "--server", url, "--tiles",
                            "2x2"], check=True, stdout=subprocess.DEVNULL)
            while True:
                states = {s for p in pollers for s, _ in p.seen[-1:]}
                if (states and states <= {"done", "failed"}
                        and time.monotonic() - start >= args.seconds):
                    break
                time.sleep(0.5)
            time.sleep(2)  # the last change reaches the subscribers
            until.set()
            for thread in [*subscribers, *pollers]:
                thread.join(timeout=60)
            elapsed = time.monotonic() - start
            subprocess.run([str(TILEFARM), "fetch", JOB, "--server", url, "--out",
                            str(work / "out")], check=True, stdout=subprocess.DEVNULL)
        finally:
            stop(server)
        published: list[tuple[str, int]] = []
        for poller in pollers:  # every change any poller saw, in order
            for seen in poller.seen:
                if seen not in published:
                    published.append(seen)
        failures = [f for t in [*pollers, *subscribers] for f in t.failures]
        final = next((p.seen[-1] for p in pollers if p.seen), None)
        missed = [s for s in subscribers
                  if not set(published) <= set(s.seen) or not s.seen or s.seen[-1] != final]
        exact = 0
        for frame, path in sorted(own.items()):
            assert_identical(work / "out" / JOB / "frames" / f"{frame:06d}.png", path)
            exact += 1
        print(f"{args.clients} pollers and {args.subscribers} subscribers for {elapsed:.0f} s "
              f"while a {args.frames}-frame 2x2 job rendered:")
        print(f"  idle server (baseline): {latency(idle)}")
        print(f"  under load:             {latency(pollers)}")
        print(f"  failed requests: {len(failures)}" + (f" (first: {failures[0]})" if failures
                                                        else ""))
        print(f"  state changes published: {len(published)}; subscribers that missed one: "
              f"{len(missed)} of {len(subscribers)}")
        if missed:
            print(f"    published: {published}\n    one subscriber saw: {missed[0].seen}")
        print(f"  frames equal to Blender's own: {exact} of {args.frames}")
        return 0 if not failures and not missed and exact == args.frames else 1


if __name__ == "__main__":
    sys.exit(main())
