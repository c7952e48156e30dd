"""Benchmark cases on a real Ray cluster on this machine, run by ``bench/overhead.py --case
ray``, ``--case ray-fixed`` and ``--case straggler`` (see its docstring)."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

from common import TILEFARM, demo, phases, tilefarm


def ray_case(args: argparse.Namespace, work: Path) -> int:
    from tests.raycluster import Cluster

    blend = demo(work / "demo.blend", args.frames, args.resolution, args.samples)
    tiny = demo(work / "tiny.blend", 4, "64x36", 1, denoise=False)
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


def ray_fixed_case(args: argparse.Namespace, work: Path) -> int:
    """A lone short job on a one-node cluster, the head's side (the CLI) on core 0 and the node
    on core 1, as on two machines; against the same job rendered locally on both cores."""
    from tests.raycluster import Cluster

    tiles = ("--tiles", "2x2")
    cluster = Cluster(work / "cluster").start()
    times: dict[str, list[float]] = {"local": [], "ray": []}
    split: list[tuple[str, float]] = []
    try:
        cluster.join("a", core=1)
        for i in range(args.repeat):
            # A new version of the shot each run, as an artist's next render (each write of
            # the demo differs): neither side has seen the file.
            (work / f"lone{i}").mkdir()
            blend = demo(work / f"lone{i}" / "lone.blend", args.frames, args.resolution,
                         args.samples, not args.no_denoise)
            times["local"].append(tilefarm(blend, work / f"local{i}", *tiles))
            out, start = work / f"ray{i}", time.time()
            subprocess.run(["taskset", "-c", "0", str(TILEFARM), "render", str(blend), "--out",
                            str(out), *tiles, "--ray", cluster.address],
                           check=True, stdout=subprocess.DEVNULL)
            times["ray"].append(time.time() - start)
            split = phases(out / ".tilefarm", start, time.time())
            print(f"run {i + 1}: local {times['local'][-1]:.2f} s, one Ray node "
                  f"{times['ray'][-1]:.2f} s", flush=True)
    finally:
        cluster.stop()
    extra = [r - loc for r, loc in zip(times["ray"], times["local"])]
    print(f"a lone job of {args.frames} frame(s) at {args.resolution}, 2x2, {args.samples} "
          f"samples, medians of {args.repeat} alternated runs:")
    print(f"  local render:         {statistics.median(times['local']):6.2f} s")
    print(f"  one Ray node:         {statistics.median(times['ray']):6.2f} s  "
          f"({statistics.median(extra):+.2f} s; runs {', '.join(f'{e:+.2f}' for e in extra)})")
    print("  where the last Ray run's time went:")
    for phase, seconds in split:
        print(f"    {phase:<52} {seconds:6.2f} s")
    return 0


def straggler_case(args: argparse.Namespace, work: Path) -> int:
    from tests.raycluster import Cluster

    blend = demo(work / "demo.blend", args.frames, args.resolution, args.samples)
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
