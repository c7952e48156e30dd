"""Benchmark: tilefarm's overhead over Blender's own render of the same animation.

Renders the demo scene at 640x360, 4 samples, denoised, with a compositor glow
(about 2 s a frame on 2 cores) three ways, alternated
in one run: Blender's own animation render (``blender -b demo.blend -a``, through
the same bpy module), ``tilefarm render`` untiled, and ``tilefarm render --tiles 2x2``
(each into a fresh output, so nothing is skipped). Prints median wall times and
ratios against Blender's own.

    .venv/bin/python bench/overhead.py [--frames 12] [--repeat 3]

``--case server`` measures ``tilefarm serve`` instead: ``--jobs`` short jobs (``--frames``
frames each, about 1 s a frame) submitted at once to a running server, against Blender
rendering each file itself; it prints the fixed cost per job, (server - own) / jobs.

    .venv/bin/python bench/overhead.py --case server --jobs 4 --frames 3

``--case urgent`` measures scheduling across jobs: with ``tilefarm serve --workers 1``
rendering a long job (``--frames`` frames at 4x4 tiles), an urgent one (``--frames``
frames, untiled) is submitted and given priority 10. It prints the time from that submit
to the urgent job's first render datum's start, against what the render datum running at
the submit had left (goal: within that plus 1 s), and to the urgent job's end.

    .venv/bin/python bench/overhead.py --case urgent --frames 12

``--case ray`` measures the farm on a real Ray cluster on this machine (tests/raycluster.py:
a head with no CPU, nodes in network namespaces of their own, each with 1 CPU and pinned
to a core of its own with taskset, so that Blender's denoiser and compositor, which use
every core they see, use one; Blender renders with one thread on a node). It renders the same ``--frames`` job on one node and on two,
alternated (the second node joins before and is killed after each two-node run), and
prints the makespan ratio (goal: at least 1.8x faster on two). Then the per-datum cost of
the Ray path: a job of many near-empty tiles (64x36, 1 sample, 4x4) on one node against
``tilefarm render --workers 1`` pinned to one core (``taskset``), (ray - local) / datums
(goal: at most 0.2 s).

    .venv/bin/python bench/overhead.py --case ray --frames 12 --repeat 3

``--case straggler`` measures backup copies (tilefarm.engine.backups) on the same cluster:
a fast node on core 0, and a node on core 1 slowed 8x by a CPU quota (cgroup v1, after it
joins), rendering a ``--frames`` job untiled. Alternated: the fast node alone, both nodes
with ``--no-backups``, both with backups (the slow node joins before and is killed after
each pair of runs with it). It prints each makespan against the fast node alone (goal:
with backups at most 1.05x).

    .venv/bin/python bench/overhead.py --case straggler --frames 6 --resolution 320x180 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tilefarm.blender.runner import BlenderRunner  # noqa: E402

# Blender's own animation render of a file: the reference the tests compare frames with.
OWN_RENDER = ROOT / "tests" / "scenes" / "build_scenes.py"
TILEFARM = Path(sys.executable).parent / "tilefarm"


def own(blend: Path, out: Path) -> float:
    start = time.perf_counter()
    BlenderRunner(timeout=3600).run_script(OWN_RENDER, {"reference": str(blend), "out": str(out)}, label="bench-own")
    return time.perf_counter() - start


def tilefarm(blend: Path, out: Path, *flags: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(TILEFARM), "render", str(blend), "--out", str(out), *flags],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def server_case(args: argparse.Namespace, work: Path) -> int:
    """Several short jobs through a running server, against Blender's own renders."""
    import json
    import signal

    from tilefarm.server.client import Client

    blends = []
    for i in range(args.jobs):
        blend = work / f"short{i}.blend"
        subprocess.run([str(TILEFARM), "demo", str(blend), "--frames", str(args.frames),
                        "--resolution", args.resolution, "--samples", str(args.samples),
                        "--no-denoise"], check=True, stdout=subprocess.DEVNULL)
        blends.append(blend)
    own_total = sum(own(blend, work / f"own-{blend.stem}") for blend in blends)
    root = work / "store"
    server = subprocess.Popen([str(TILEFARM), "serve", "--root", str(root), "--port", "0"],
                              stdout=subprocess.DEVNULL)
    try:
        while not (root / "server.json").exists():
            time.sleep(0.1)
        client = Client(json.loads((root / "server.json").read_text())["url"])
        time.sleep(1)
        start = time.perf_counter()
        for count, blend in enumerate(blends, 1):  # what `submit` sends after its own intake
            client.submit([(f"/{blend.name}", blend)])
            while args.one_by_one or count == len(blends):
                jobs = client.json("GET", "/api/jobs")
                if len(jobs) == count and all(j["state"] in ("done", "failed") for j in jobs):
                    break
                time.sleep(0.1)
        served = time.perf_counter() - start
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert all(j["state"] == "done" for j in jobs), jobs
    print(f"{args.jobs} jobs of {args.frames} frames ({args.resolution}, {args.samples} samples), "
          f"{'each submitted when the last was done' if args.one_by_one else 'submitted at once'}:")
    print(f"  Blender's own renders:   {own_total:7.1f} s  ({own_total / args.jobs / args.frames:.2f}"
          " s a frame)")
    print(f"  tilefarm serve:          {served:7.1f} s  ratio {served / own_total:.3f}x")
    print(f"  fixed cost per job:      {(served - own_total) / args.jobs:7.2f} s  (goal <= 1 s)")
    return 0


def urgent_case(args: argparse.Namespace, work: Path) -> int:
    """An urgent job submitted while a long one renders, on one worker."""
    import json
    import signal
    import sqlite3

    from tilefarm.server.client import Client

    files = {}
    for name in ("long", "urgent"):
        folder = work / "jobs" / name
        folder.mkdir(parents=True)
        subprocess.run([str(TILEFARM), "demo", str(folder / f"{name}.blend"), "--frames",
                        str(args.frames), "--resolution", args.resolution, "--samples",
                        str(args.samples), "--no-denoise"], check=True, stdout=subprocess.DEVNULL)
        (folder / "tilefarm.json").write_text(json.dumps({"tiles": "4x4" if name == "long"
                                                          else "1x1"}))
        files[name] = [(f"/{name}/{p.name}", p) for p in sorted(folder.iterdir())]
    root = work / "store"
    server = subprocess.Popen([str(TILEFARM), "serve", "--root", str(root), "--port", "0",
                               "--workers", "1"], stdout=subprocess.DEVNULL)
    try:
        while not (root / "server.json").exists():
            time.sleep(0.1)
        client = Client(json.loads((root / "server.json").read_text())["url"])
        db = sqlite3.connect(f"file:{root / 'meta.sqlite'}?mode=ro", uri=True)

        def renders(shot: str) -> list[tuple[float, float | None]]:
            return [(r[0], r[1]) for r in db.execute(
                "SELECT d.started, d.finished FROM datums d JOIN jobs j ON j.id=d.job WHERE "
                "j.pipeline='renderer' AND j.shot=? AND d.started IS NOT NULL "
                "ORDER BY d.started", (shot,))]

        def state(shot: str) -> str:
            return next((j["state"] for j in client.json("GET", "/api/jobs")
                         if j["job"] == shot), "")

        client.submit(files["long"])
        while sum(1 for _, end in renders("long") if end) < 3:
            time.sleep(0.1)
        submitted = time.time()
        client.submit(files["urgent"])
        client.json("POST", "/api/jobs/urgent/priority", {"priority": 10})
        while state("urgent") not in ("done", "failed"):
            time.sleep(0.1)
        urgent_done = time.time()
        while state("long") not in ("done", "failed"):
            time.sleep(0.2)
        long_done = time.time()
        running = [end for start, end in renders("long") if start <= submitted
                   and (end or long_done) > submitted]
        remaining = max(0.0, (running[0] or long_done) - submitted) if running else 0.0
        first = renders("urgent")[0][0] - submitted
        # Where the time to the first render went: intake, the split, the render job's start.
        phases = [("accepted (blends commit)", db.execute(
            "SELECT MAX(created) FROM commits WHERE repo='blends'").fetchone()[0])]
        for pipeline in ("splitter", "renderer"):
            phases += [(f"{pipeline} job created", db.execute(
                "SELECT created FROM jobs WHERE pipeline=? AND shot='urgent'",
                (pipeline,)).fetchone()[0])]
            phases += [(f"{pipeline} datum {what}", db.execute(
                f"SELECT MIN(d.{what}) FROM datums d JOIN jobs j ON j.id=d.job WHERE "
                "j.pipeline=? AND j.shot='urgent'", (pipeline,)).fetchone()[0])
                for what in ("started", "finished")]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    print(f"tilefarm serve --workers 1; a long job ({args.frames} frames at 4x4) renders; an "
          f"urgent one ({args.frames} frames, 1x1, priority 10) is submitted:")
    print(f"  the long job's datum running at the submit had {remaining:5.2f} s left")
    print(f"  the urgent job's first render started after {first:5.2f} s "
          f"(goal <= {remaining + 1:.2f} s: {'met' if first <= remaining + 1 else 'MISSED'})")
    for name, at in phases:
        print(f"    {name + ':':<28} {at - submitted:5.2f} s")
    print(f"  the urgent job was done after       {urgent_done - submitted:5.2f} s")
    print(f"  the long job was done after         {long_done - submitted:5.2f} s")
    return 0


def ray_case(args: argparse.Namespace, work: Path) -> int:
    from tests.raycluster import Cluster

    blend, tiny = work / "demo.blend", work / "tiny.blend"
    for path, flags in ((blend, ["--frames", str(args.frames), "--resolution", args.resolution,
                                 "--samples", str(args.samples)]),
                        (tiny, ["--frames", "4", "--resolution", "64x36", "--samples", "1",
                                "--no-denoise"])):
        subprocess.run([str(TILEFARM), "demo", str(path), *flags], check=True,
                       stdout=subprocess.DEVNULL)
    cluster = Cluster(work / "cluster").start()
    times: dict[str, list[float]] = {"one node": [], "two nodes": [], "local": [], "ray": []}
    try:
        cluster.join("a", core=0)
        ray = ("--ray", cluster.address)
        for i in range(args.repeat):
            cluster.join("b", core=1)
            times["two nodes"].append(tilefarm(blend, work / f"two{i}", *ray))
            cluster.kill("b")
            times["one node"].append(tilefarm(blend, work / f"one{i}", *ray))
            start = time.perf_counter()
            subprocess.run(["taskset", "-c", "0", str(TILEFARM), "render", str(tiny), "--out",
                            str(work / f"local{i}"), "--tiles", "4x4", "--workers", "1"],
                           check=True, stdout=subprocess.DEVNULL)
            times["local"].append(time.perf_counter() - start)
            times["ray"].append(tilefarm(tiny, work / f"ray{i}", "--tiles", "4x4", *ray))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()),
                  flush=True)
    finally:
        cluster.stop()
    one, two = statistics.median(times["one node"]), statistics.median(times["two nodes"])
    print(f"{args.frames} frames of the demo scene at {args.resolution}, {args.samples} samples, "
          f"untiled, medians of {args.repeat} alternated runs (nodes in "
          f"{'network namespaces' if cluster.netns else 'loopback processes'}):")
    pairs = [a / b for a, b in zip(times["one node"], times["two nodes"])]
    print(f"  one node:  {one:7.1f} s\n  two nodes: {two:7.1f} s  speed-up "
          f"{one / two:.2f}x; of each pair {', '.join(f'{p:.2f}' for p in pairs)}, median "
          f"{statistics.median(pairs):.2f}x (goal >= 1.8x)")
    datums = 1 + 4 * 16 + 4 + 1  # split, tiles, merges, encode
    local, remote = statistics.median(times["local"]), statistics.median(times["ray"])
    print(f"  {datums} datums of near-empty tiles: local --workers 1 {local:.1f} s, one Ray node "
          f"{remote:.1f} s: {(remote - local) / datums:+.3f} s a datum (goal <= 0.2 s)")
    return 0


def straggler_case(args: argparse.Namespace, work: Path) -> int:
    from tests.raycluster import Cluster

    blend = work / "demo.blend"
    subprocess.run([str(TILEFARM), "demo", str(blend), "--frames", str(args.frames),
                    "--resolution", args.resolution, "--samples", str(args.samples)],
                   check=True, stdout=subprocess.DEVNULL)
    cluster = Cluster(work / "cluster").start()
    times: dict[str, list[float]] = {"fast node alone": [], "with a slow node, no backups": [],
                                     "with a slow node, backups": []}
    try:
        cluster.join("fast", core=0)
        ray = ("--ray", cluster.address)
        for i in range(args.repeat):
            times["fast node alone"].append(tilefarm(blend, work / f"alone{i}", *ray))
            cluster.join("slow", core=1)
            cluster.slow("slow", 8)
            times["with a slow node, no backups"].append(
                tilefarm(blend, work / f"plain{i}", *ray, "--no-backups"))
            times["with a slow node, backups"].append(tilefarm(blend, work / f"backups{i}", *ray))
            cluster.kill("slow")
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()),
                  flush=True)
    finally:
        cluster.stop()
    print(f"{args.frames} frames of the demo scene at {args.resolution}, {args.samples} samples, "
          f"untiled, on a Ray cluster of a fast node and one slowed 8x, medians of "
          f"{args.repeat} alternated runs (ratios: median of each run's against the fast node "
          f"alone in the same run):")
    alone = times["fast node alone"]
    for name, runs in times.items():
        ratios = [a / b for a, b in zip(runs, alone)]
        print(f"  {name + ':':<32} {statistics.median(runs):6.1f} s  "
              f"{statistics.median(ratios):.2f}x  (runs {', '.join(f'{r:.2f}' for r in ratios)})")
    print("  goal: with backups <= 1.05x the fast node alone")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("render", "server", "urgent", "ray", "straggler"),
                        default="render")
    parser.add_argument("--jobs", type=int, default=4, help="jobs for --case server")
    parser.add_argument("--one-by-one", action="store_true",
                        help="--case server: submit each job when the last is done")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--resolution", default="640x360")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--no-denoise", action="store_true",
                        help="the demo without render denoising (it keeps its compositor glow)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tilefarm-overhead-") as tmp:
        work = Path(tmp)
        if args.case == "server":
            return server_case(args, work)
        if args.case == "urgent":
            return urgent_case(args, work)
        if args.case == "ray":
            return ray_case(args, work)
        if args.case == "straggler":
            return straggler_case(args, work)
        blend = work / "demo.blend"
        subprocess.run([str(TILEFARM), "demo", str(blend), "--frames", str(args.frames),
                        "--resolution", args.resolution, "--samples", str(args.samples),
                        *(["--no-denoise"] if args.no_denoise else [])],
                       check=True, stdout=subprocess.DEVNULL)
        times: dict[str, list[float]] = {"blender": [], "untiled": [], "2x2": []}
        for i in range(args.repeat):
            times["blender"].append(own(blend, work / f"own{i}"))
            times["untiled"].append(tilefarm(blend, work / f"untiled{i}"))
            times["2x2"].append(tilefarm(blend, work / f"tiled{i}", "--tiles", "2x2"))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()),
                  flush=True)
        base = statistics.median(times["blender"])
        print(f"{args.frames} frames of the demo scene at {args.resolution}, {args.samples} samples, "
              f"{'not ' if args.no_denoise else ''}denoised, medians of {args.repeat} alternated runs:")
        print(f"  Blender's own render:      {base:7.1f} s  ({base / args.frames:.2f} s a frame)")
        for name, goal in (("untiled", 1.10), ("2x2", 1.30)):
            med = statistics.median(times[name])
            print(f"  tilefarm render {name:<8}  {med:7.1f} s  ratio {med / base:.3f}x (goal <= {goal}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
