"""What the benchmarks share: Blender's own render of a file, ``tilefarm render``, a demo
scene, a ``tilefarm serve`` started on a store, and where a render's wall time went."""

from __future__ import annotations

import json
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tilefarm.blender.runner import BlenderRunner  # noqa: E402

# Blender's own animation render of a file: the reference the tests compare frames with.
OWN_RENDER = ROOT / "tests" / "scenes" / "build_scenes.py"
TILEFARM = Path(sys.executable).parent / "tilefarm"
STAGES = ("splitter", "renderer", "merger", "encoder")


def own(blend: Path, out: Path) -> float:
    """Seconds Blender takes to render ``blend``'s animation by itself, start included."""
    start = time.perf_counter()
    BlenderRunner(timeout=3600).run_script(OWN_RENDER, {"reference": str(blend), "out": str(out)},
                                           label="bench-own")
    return time.perf_counter() - start


def tilefarm(blend: Path, out: Path, *flags: str) -> float:
    """Seconds ``tilefarm render blend --out out [flags]`` takes."""
    start = time.perf_counter()
    subprocess.run([str(TILEFARM), "render", str(blend), "--out", str(out), *flags],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def demo(blend: Path, frames: int, resolution: str, samples: int, denoise: bool = True) -> Path:
    subprocess.run([str(TILEFARM), "demo", str(blend), "--frames", str(frames), "--resolution",
                    resolution, "--samples", str(samples), *([] if denoise else ["--no-denoise"])],
                   check=True, stdout=subprocess.DEVNULL)
    return blend


def serve(root: Path, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    """A ``tilefarm serve`` on ``root`` and its URL, once it answers."""
    (root / "server.json").unlink(missing_ok=True)
    proc = subprocess.Popen([str(TILEFARM), "serve", "--root", str(root), "--port", "0", *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (root / "server.json").exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"the server on {root} did not start")
        time.sleep(0.1)
    return proc, json.loads((root / "server.json").read_text())["url"]


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def datum_runs(store: Path, stage: str) -> list[tuple[float, float]]:
    """(started, finished) of every datum of ``stage`` the store recorded, in start order."""
    db = sqlite3.connect(f"file:{store / 'meta.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT started, finished FROM datums WHERE pipeline=? AND started "
                          "IS NOT NULL ORDER BY started", (stage,)).fetchall()
    finally:
        db.close()


def phases(store: Path, start: float, end: float) -> list[tuple[str, float]]:
    """Where the wall time of a render from ``start`` to ``end`` (epoch seconds) went, from
    the datums its store recorded: the intake before the first datum, each stage's span
    (first start to last end), the hand-offs between stages, the tail after the last datum,
    and how much longer the renderer's first datum (its Blender starting and loading the
    file) took than its median one."""
    spans, first_extra = [], 0.0
    for stage in STAGES:
        runs = datum_runs(store, stage)
        if runs:
            spans.append((stage, runs[0][0], max(f for _, f in runs)))
        if stage == "renderer" and len(runs) > 1:
            first_extra = (runs[0][1] - runs[0][0]) - statistics.median(f - s for s, f in runs)
    found = [("intake, before the first datum", spans[0][1] - start)]
    handoffs, last = 0.0, spans[0][1]
    for stage, first, final in spans:
        handoffs += max(0.0, first - last)
        found.append((stage, final - first))
        last = final
    found += [("hand-offs between stages", handoffs), ("after the last datum", end - last),
              ("  of the renderer: its first datum over its median", first_extra)]
    return found
