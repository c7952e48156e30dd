"""Benchmark: how tilefarm's cost grows with the job: seconds per datum, and memory.

Renders a tiny demo scene (64x36, 1 sample, no denoising: the frames cost almost nothing, so
what is measured is tilefarm's own cost) with ``tilefarm render --workers 1`` at 25, 100 and
400 frames, untiled and 2x2, each into a fresh output. For each it prints the datums run
(split, render tasks, merges, encode), the wall time, seconds per datum and its ratio to the
25-frame job's (the baseline: flat is 1.00x), and the largest process's peak resident
memory (the engine or any Blender or ffmpeg it ran: ``RUSAGE_CHILDREN``'s ``ru_maxrss``,
measured in a process of its own per run).

    .venv/bin/python bench/scaling.py [--frames 25,100,400] [--tiles 1x1,2x2]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

TILEFARM = Path(sys.executable).parent / "tilefarm"
# Runs one command and reports its wall time and its largest descendant's peak RSS (KiB).
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": done.returncode, "wall": time.perf_counter() - start,
                  "rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "out": done.stdout[-2000:], "err": done.stderr[-2000:]}))
"""


def run(*argv: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", MEASURE, *argv], capture_output=True,
                          text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result['err']}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default="25,100,400")
    parser.add_argument("--tiles", default="1x1,2x2")
    args = parser.parse_args()
    lengths = [int(n) for n in args.frames.split(",")]
    grids = args.tiles.split(",")
    with tempfile.TemporaryDirectory(prefix="tilefarm-bench-") as tmp:
        work = Path(tmp)
        print(f"{'frames':>6} {'tiles':>5} {'datums':>7} {'wall':>8} {'s/datum':>8} "
              f"{'ratio':>6} {'peak RSS':>9}")
        for grid in grids:
            base = None
            for frames in lengths:
                blend = work / f"tiny{frames}.blend"
                run(str(TILEFARM), "demo", str(blend), "--frames", str(frames),
                    "--resolution", "64x36", "--samples", "1", "--no-denoise")
                out = work / f"out-{frames}-{grid}"
                result = run(str(TILEFARM), "render", str(blend), "--out", str(out),
                             "--workers", "1", "--tiles", grid)
                found = re.search(r"(\d+) processed", str(result["out"]))
                if found is None:
                    raise SystemExit(f"no datum count in: {result['out']}")
                datums = int(found.group(1))
                wall = float(result["wall"])  # type: ignore[arg-type]
                per = wall / datums
                base = base or per
                rss = int(result["rss_kib"]) / 1024  # type: ignore[call-overload]
                print(f"{frames:>6} {grid:>5} {datums:>7} {wall:>7.1f}s {per:>8.3f} "
                      f"{per / base:>5.2f}x {rss:>6.0f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
