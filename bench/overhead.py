"""Benchmark: tilefarm's overhead over Blender's own render of the same animation.

Renders the demo scene at 640x360, 4 samples, denoised, with a compositor glow
(about 2-4 s a frame on 2 cores) three ways, alternated
in one run: Blender's own animation render (``blender -b demo.blend -a``, through
the same bpy module), ``tilefarm render`` untiled, and ``tilefarm render --tiles 2x2``
(each into a fresh output, so nothing is skipped). Prints each case's median of the
runs' own ratios against Blender's run beside them (goals, issue 25: untiled <= 0.95x,
2x2 <= 1.05x), and where the last runs' wall time went, from their stores' datum records.

    .venv/bin/python bench/overhead.py [--frames 12] [--repeat 3] [--textures N]

``--textures N`` adds N image textures (4096 px noise PNGs) to the scene: Blender's own
animation render loads and decodes them again on every frame (persistent data off, its
default), as it does a production shot's, where tilefarm's warm renderer keeps them.

``--case fixed`` measures the fixed cost of a lone short job over Blender's own render of it
(start included): ``tilefarm render`` and a running ``tilefarm serve`` (each job submitted
alone, after a warm-up job), in alternated pairs (goal: <= 0.5 s each). Then the merger's
compose and publish of each frame of a 2x2 job of a 64x36 scene, not denoised and denoised
(goal: <= 50 ms plus the file's I/O).

    .venv/bin/python bench/overhead.py --case fixed --frames 1 --resolution 320x180 --repeat 3

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

``--case ray-fixed`` measures a lone short job's fixed cost on Ray: a 2x2 job on a one-node
cluster, the CLI (the head's side) pinned to core 0 and the node to core 1, as two machines
would be, against ``tilefarm render`` of it on this machine, alternated. Each pair renders a
new write of the demo (a new version of the shot: no side has seen the file). It prints each
time, the difference, and where the last Ray run's time went.

    .venv/bin/python bench/overhead.py --case ray-fixed --frames 3 --resolution 64x36 --samples 1 --no-denoise

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
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cluster_cases
from common import datum_runs, demo, own, phases, serve, stop, tilefarm

from tilefarm.blender.runner import BlenderRunner

# The demo with image textures (--textures): bench/side/textures.py, in a Blender child.
TEXTURES = Path(__file__).resolve().parent / "side" / "textures.py"


def server_case(args: argparse.Namespace, work: Path) -> int:
    """Several short jobs through a running server, against Blender's own renders."""
    from tilefarm.server.client import Client

    blends = [demo(work / f"short{i}.blend", args.frames, args.resolution, args.samples, False)
              for i in range(args.jobs)]
    own_total = sum(own(blend, work / f"own-{blend.stem}") for blend in blends)
    server, url = serve(work / "store")
    try:
        client = Client(url)
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
        stop(server)
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
    from tilefarm.server.client import Client

    files = {}
    for name in ("long", "urgent"):
        folder = work / "jobs" / name
        folder.mkdir(parents=True)
        demo(folder / f"{name}.blend", args.frames, args.resolution, args.samples, False)
        (folder / "tilefarm.json").write_text(json.dumps({"tiles": "4x4" if name == "long"
                                                          else "1x1"}))
        files[name] = [(f"/{name}/{p.name}", p) for p in sorted(folder.iterdir())]
    root = work / "store"
    server, url = serve(root, "--workers", "1")
    try:
        client = Client(url)
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
        stop(server)
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


def render_case(args: argparse.Namespace, work: Path) -> int:
    """Blender's own render, untiled and 2x2 in alternated runs: ratios of each run's pair."""
    blend = demo(work / "demo.blend", args.frames, args.resolution, args.samples,
                 not args.no_denoise)
    detail = ""
    if args.textures:
        added = BlenderRunner(timeout=600).run_script(TEXTURES, {
            "blend": str(blend), "textures": args.textures, "size": args.texture_size})
        detail = (f", with {args.textures} image texture(s) of {args.texture_size} px "
                  f"({added['bytes'] / 2**20:.0f} MiB)")
    times: dict[str, list[float]] = {"blender": [], "untiled": [], "2x2": []}
    split: dict[str, list[tuple[str, float]]] = {}
    for i in range(args.repeat):
        times["blender"].append(own(blend, work / f"own{i}"))
        for name, flags in (("untiled", ()), ("2x2", ("--tiles", "2x2"))):
            out, start = work / f"{name}{i}", time.time()
            times[name].append(tilefarm(blend, out, *flags))
            split[name] = phases(out / ".tilefarm", start, time.time())
        print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()),
              flush=True)
    base = statistics.median(times["blender"])
    print(f"{args.frames} frames of the demo scene at {args.resolution}, {args.samples} samples, "
          f"{'not ' if args.no_denoise else ''}denoised{detail}, {args.repeat} alternated runs; "
          "each ratio is the median of the runs' own ratios:")
    print(f"  Blender's own render:     {base:7.1f} s  ({base / args.frames:.2f} s a frame)")
    for name, goal in (("untiled", 0.95), ("2x2", 1.05)):
        ratios = [t / b for t, b in zip(times[name], times["blender"])]
        print(f"  tilefarm render {name:<8} {statistics.median(times[name]):7.1f} s  ratio "
              f"{statistics.median(ratios):.3f}x (runs {', '.join(f'{r:.3f}' for r in ratios)}; "
              f"goal <= {goal}x)")
    for name, found in split.items():
        print(f"  where the last {name} run's time went:")
        for phase, seconds in found:
            print(f"    {phase:<52} {seconds:6.2f} s")
    return 0


def fixed_case(args: argparse.Namespace, work: Path) -> int:
    """A lone short job: ``tilefarm render`` and a running ``tilefarm serve`` against
    Blender's own render of the same file, in alternated pairs; then the merger's compose
    and publish of each tiled frame of a 64x36 scene."""
    from tilefarm.server.client import Client

    render, served = [], []
    server, url = serve(work / "store")
    try:
        client = Client(url)
        for i in range(args.repeat + 1):  # the first job starts the server's warm workers
            blend = demo(work / f"lone{i}.blend", args.frames, args.resolution, args.samples,
                         not args.no_denoise)
            base = own(blend, work / f"own{i}")
            render.append(tilefarm(blend, work / f"render{i}") - base)
            start = time.perf_counter()
            client.submit([(f"/{blend.name}", blend)])  # what `submit` sends after its intake
            while not (jobs := [j for j in client.json("GET", "/api/jobs")
                                if j["job"] == blend.stem and j["state"] in ("done", "failed")]):
                time.sleep(0.05)
            assert jobs[0]["state"] == "done", jobs
            served.append(time.perf_counter() - start - base)
            print(f"run {i + 1}: Blender {base:.2f} s; over it: render {render[-1]:+.2f} s, "
                  f"serve {served[-1]:+.2f} s{' (warm-up)' if i == 0 else ''}", flush=True)
    finally:
        stop(server)
    print(f"a lone job of {args.frames} frame(s) at {args.resolution}, {args.samples} samples, "
          f"fixed cost over Blender's own render of it (start included), medians of "
          f"{args.repeat} alternated pairs:")
    print(f"  tilefarm render:  {statistics.median(render):+6.2f} s (goal <= 0.5 s)")
    print(f"  tilefarm serve:   {statistics.median(served[1:]):+6.2f} s (goal <= 0.5 s; the "
          f"warm-up job: {served[0]:+.2f} s)")
    for denoise in (False, True):
        tiny = demo(work / f"tiny{int(denoise)}.blend", 12, "64x36", 1, denoise)
        out = work / f"tiny{int(denoise)}"
        tilefarm(tiny, out, "--tiles", "2x2", "--no-video")
        merges = [f - s for s, f in datum_runs(out / ".tilefarm", "merger")]
        print(f"  a 2x2 frame of 64x36 composed and published ({'' if denoise else 'not '}"
              f"denoised): median {statistics.median(merges[1:]) * 1000:.0f} ms a frame, the "
              f"first {merges[0] * 1000:.0f} ms (its Blender starts; goal <= 50 ms plus I/O)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="render", choices=(
        "render", "fixed", "server", "urgent", "ray", "ray-fixed", "straggler"))
    parser.add_argument("--jobs", type=int, default=4, help="jobs for --case server")
    parser.add_argument("--one-by-one", action="store_true",
                        help="--case server: submit each job when the last is done")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--resolution", default="640x360")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--no-denoise", action="store_true",
                        help="the demo without render denoising (it keeps its compositor glow)")
    parser.add_argument("--textures", type=int, default=0, metavar="N",
                        help="--case render: add N image textures, which Blender's own render "
                        "loads anew on each frame")
    parser.add_argument("--texture-size", type=int, default=4096, metavar="PX",
                        help="--textures: each PX x PX (default 4096)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tilefarm-overhead-") as tmp:
        work = Path(tmp)
        if args.case == "server":
            return server_case(args, work)
        if args.case == "urgent":
            return urgent_case(args, work)
        if args.case == "fixed":
            return fixed_case(args, work)
        if args.case == "ray":
            return cluster_cases.ray_case(args, work)
        if args.case == "ray-fixed":
            return cluster_cases.ray_fixed_case(args, work)
        if args.case == "straggler":
            return cluster_cases.straggler_case(args, work)
        return render_case(args, work)


if __name__ == "__main__":
    sys.exit(main())
