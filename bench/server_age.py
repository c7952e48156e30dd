"""Benchmark: what a farm's age costs ``tilefarm serve``: 1 finished job against 1,000.

One job is rendered for real by a ``tilefarm serve`` (``submit --server``, a demo scene of
one frame). Rendering 999 more takes a quarter of an hour, so the aged store gets them as
copies of that job's records under other names, written as the server writes them: per
job one ``blends`` commit putting its files and one shot commit per pipeline (each
commit listing every file, as the store keeps them), its four pipeline jobs on those
commits, their datums, datum outputs and job control. The server reads them as finished
jobs: it renders nothing on start (checked).

For the store of 1 job (the baseline) and the aged one, in alternated pairs, a fresh
server is measured once its view is up:

- the CPU share it uses, idle, over ``--idle`` seconds (``/proc/PID/stat``, all threads);
- the latency of ``GET /api/jobs`` (median, p95) over ``--requests`` requests in a row;
- the latency of a write and the read after it (``POST .../priority`` then ``GET``).

Goals (issue 24): with 1,000 finished jobs, p95 of ``GET /api/jobs`` <= 50 ms and an idle
server <= 2 % of a CPU.

    .venv/bin/python bench/server_age.py [--jobs 1000] [--idle 20] [--requests 200]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

from common import TILEFARM, serve, stop

SOURCE = "j0000"


def request(conn: http.client.HTTPConnection, method: str, path: str,
            body: dict[str, object] | None = None) -> bytes:
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"} if body is not None else {})
    answer = conn.getresponse()
    data = answer.read()
    if answer.status not in (200, 201):
        raise SystemExit(f"{method} {path}: {answer.status} {data[:200]!r}")
    return data


def render_one(work: Path) -> Path:
    """A store holding one job (``SOURCE``) that a server rendered."""
    blend = work / f"{SOURCE}.blend"
    subprocess.run([str(TILEFARM), "demo", "--frames", "1", "--resolution", "32x18",
                    "--samples", "1", "--no-denoise", str(blend)], check=True,
                   stdout=subprocess.DEVNULL)
    root = work / "store"
    proc, url = serve(root)
    try:
        subprocess.run([str(TILEFARM), "submit", "--server", url, str(blend)], check=True,
                       stdout=subprocess.DEVNULL)
        conn = connect(url)
        deadline = time.monotonic() + 300
        while json.loads(request(conn, "GET", "/api/jobs"))[0]["state"] != "done":
            if time.monotonic() > deadline:
                raise SystemExit("the real job did not finish")
            time.sleep(0.5)
    finally:
        stop(proc)
    return root


def age(root: Path, jobs: int) -> None:
    """Add ``jobs - 1`` copies of the store's one job's records, as the server writes them."""
    db = sqlite3.connect(root / "meta.sqlite", isolation_level=None)
    db.row_factory = sqlite3.Row
    commits = db.execute("SELECT * FROM commits ORDER BY seq").fetchall()
    runs = db.execute("SELECT * FROM jobs ORDER BY created").fetchall()
    datums = db.execute("SELECT * FROM datums").fetchall()
    outputs = db.execute("SELECT * FROM datum_outputs").fetchall()
    control = db.execute("SELECT * FROM job_control WHERE job=?", (SOURCE,)).fetchone()
    own = {c["id"]: db.execute("SELECT path, hash, size FROM files WHERE commit_id=?",
                               (c["id"],)).fetchall() for c in commits}
    seq = commits[-1]["seq"]
    db.execute("BEGIN")
    for k in range(1, jobs):
        name = f"j{k:04d}"
        ids = {row["id"]: uuid.uuid4().hex for row in [*commits, *runs]}

        def renamed(text: str) -> str:
            for old, new in ids.items():
                text = text.replace(old, new)
            return text.replace(f"/{SOURCE}", f"/{name}")

        shift = k * 0.01
        for c in commits:
            head = db.execute("SELECT head FROM branches WHERE repo=? AND name=?",
                              (c["repo"], c["branch"])).fetchone()["head"]
            seq += 1
            db.execute("INSERT INTO commits (id, repo, branch, parent, created, state, job, seq,"
                       " provenance, shot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (ids[c["id"]], c["repo"], c["branch"], head, c["created"] + shift,
                        c["state"], ids.get(c["job"]), seq, renamed(c["provenance"]),
                        name if c["shot"] else None))
            db.execute("INSERT INTO files SELECT ?, path, hash, size FROM files WHERE commit_id=?",
                       (ids[c["id"]], head))
            db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                           [(ids[c["id"]], renamed(f["path"]), f["hash"], f["size"])
                            for f in own[c["id"]]])
            db.execute("UPDATE branches SET head=? WHERE repo=? AND name=?",
                       (ids[c["id"]], c["repo"], c["branch"]))
        for r in runs:
            db.execute("INSERT INTO jobs (id, pipeline, version, inputs, output, state, created, "
                       "started, finished, total, processed, skipped, failed, workers, error, "
                       "shot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (ids[r["id"]], r["pipeline"], r["version"], renamed(r["inputs"]),
                        ids[r["output"]], r["state"], r["created"] + shift,
                        r["started"] + shift, r["finished"] + shift, r["total"],
                        r["processed"], r["skipped"], r["failed"], r["workers"], r["error"],
                        name))
        datum_ids = {d["id"]: hashlib.sha256(f"{name}:{d['id']}".encode()).hexdigest()[:32]
                     for d in datums}
        for d in datums:
            db.execute("INSERT INTO datums (job, id, pipeline, version, inputs, state, tries, "
                       "started, finished, error, peak_memory) VALUES "
                       "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (ids[d["job"]], datum_ids[d["id"]], d["pipeline"], d["version"],
                        renamed(d["inputs"]), d["state"], d["tries"], d["started"] + shift,
                        d["finished"] + shift, d["error"], d["peak_memory"]))
        db.executemany("INSERT INTO datum_outputs VALUES (?, ?, ?, ?, ?, ?)",
                       [(o["pipeline"], o["version"], datum_ids[o["datum"]], renamed(o["path"]),
                         o["hash"], o["size"]) for o in outputs])
        db.execute("INSERT INTO job_control (job, priority, paused, cancelled, changed, "
                   "max_workers, tags) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (name, control["priority"], control["paused"], control["cancelled"],
                    control["changed"], control["max_workers"], control["tags"]))
    db.execute("COMMIT")
    db.close()


def connect(url: str) -> http.client.HTTPConnection:
    where = urlparse(url)
    return http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port or 80,
                                      timeout=120)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def datum_count(root: Path) -> int:
    db = sqlite3.connect(root / "meta.sqlite")
    try:
        return int(db.execute("SELECT count(*) FROM datums").fetchone()[0])
    finally:
        db.close()


def measure(root: Path, jobs: int, idle: float, requests: int) -> dict[str, float]:
    before = datum_count(root)
    proc, url = serve(root)
    try:
        conn = connect(url)
        start = time.monotonic()
        while True:  # until the view lists every job, done
            view = json.loads(request(conn, "GET", "/api/jobs"))
            if len(view) == jobs and all(v["state"] == "done" for v in view):
                break
            if time.monotonic() - start > 600:
                raise SystemExit(f"{root}: the view did not settle")
            time.sleep(0.5)
        up = time.monotonic() - start
        time.sleep(5)  # past the scheduler's first passes
        used, began = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(idle)
        share = (cpu_seconds(proc.pid) - used) / (time.monotonic() - began)
        conn = connect(url)  # uvicorn closes a connection idle for 5 s
        latencies = []
        for _ in range(requests):
            t = time.perf_counter()
            request(conn, "GET", "/api/jobs")
            latencies.append(time.perf_counter() - t)
        writes = []
        for priority in range(10):
            t = time.perf_counter()
            request(conn, "POST", f"/api/jobs/{SOURCE}/priority", {"priority": priority})
            mine = next(v for v in json.loads(request(conn, "GET", "/api/jobs"))
                        if v["job"] == SOURCE)
            writes.append(time.perf_counter() - t)
            if mine["priority"] != priority:
                raise SystemExit(f"a priority set did not show in the next GET: {mine}")
    finally:
        stop(proc)
    if datum_count(root) != before:
        raise SystemExit(f"{root}: the server rendered on start: the aged store is not "
                         "finished as it should be")
    latencies.sort()
    return {"up": up, "cpu": share, "p50": statistics.median(latencies),
            "p95": latencies[int(0.95 * (len(latencies) - 1))],
            "write": statistics.median(writes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tilefarm-bench-") as tmp:
        work = Path(tmp)
        young = render_one(work)
        old = work / "aged"
        shutil.copytree(young, old)
        t = time.perf_counter()
        age(old, args.jobs)
        print(f"aged a store to {args.jobs} finished jobs in {time.perf_counter() - t:.1f} s "
              f"({(old / 'meta.sqlite').stat().st_size / 1e6:.0f} MB of metadata)")
        results: dict[str, list[dict[str, float]]] = {"1 job": [], f"{args.jobs} jobs": []}
        for _ in range(args.repeat):
            results["1 job"].append(measure(young, 1, args.idle, args.requests))
            results[f"{args.jobs} jobs"].append(measure(old, args.jobs, args.idle,
                                                        args.requests))
        print(f"{'store':<11}{'view up':>9}{'idle CPU':>10}{'GET p50':>10}{'GET p95':>10}"
              f"{'write+GET':>11}{'p95 ratio':>11}")
        base = statistics.median(r["p95"] for r in results["1 job"])
        for label, runs in results.items():
            def med(key: str, runs: list[dict[str, float]] = runs) -> float:
                return statistics.median(r[key] for r in runs)
            print(f"{label:<11}{med('up'):>8.1f}s{med('cpu') * 100:>9.2f}%"
                  f"{med('p50') * 1000:>8.1f}ms{med('p95') * 1000:>8.1f}ms"
                  f"{med('write') * 1000:>9.1f}ms{med('p95') / base:>10.2f}x")


if __name__ == "__main__":
    main()
