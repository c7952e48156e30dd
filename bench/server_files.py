"""Benchmark: the server's memory while it serves big files.

A store holds a job (paused: it renders nothing) whose outputs, a frame and a video in
the output repos, are SIZE bytes in all. A ``tilefarm serve`` on it serves, one after another:

- ``outputs.zip``: the whole job as one ZIP (zipstream-ng, members stored);
- ``outputs/PATH``: the frame alone.

For each it prints the server's peak resident memory above its idle resident memory
(``VmHWM`` after ``clear_refs``, against ``VmRSS`` before), the bytes received, and the
growth as a share of the bytes served: the baseline is holding the file, 1.0.

    .venv/bin/python bench/server_files.py [--size-gib 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import common
from common import stop
from tilefarm.engine.engine import Engine
from tilefarm.pipelines.specs import packaged_specs


def status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"no {field} for {pid}")


def serve(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The server, once its job shows paused (its pipelines' jobs have run)."""
    proc, url = common.serve(root)
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(url + "/api/jobs", timeout=30) as answer:
            jobs = json.loads(answer.read())
        if jobs and jobs[0]["state"] == "paused":
            return proc, url
        if time.monotonic() > deadline:
            raise SystemExit(f"the job did not settle: {jobs}")
        time.sleep(0.2)


def measure(pid: int, url: str, headers: dict[str, str] | None = None) -> tuple[int, int]:
    """(peak growth over idle, bytes received) for one GET read to its end."""
    idle = status(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    received = 0
    request = urllib.request.Request(url, headers=headers or {})
    try:
        answer = urllib.request.urlopen(request, timeout=600)
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{url}: {exc.code} {exc.read().decode()}") from None
    with answer:
        while chunk := answer.read(1 << 20):
            received += len(chunk)
    return status(pid, "VmHWM") - idle, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    args = parser.parse_args()
    size = int(args.size_gib * (1 << 30))
    with tempfile.TemporaryDirectory(prefix="tilefarm-bench-") as tmp:
        work = Path(tmp)
        root = work / "store"
        blend = work / "big.blend"
        blend.write_bytes(b"BLENDER-v405 never read: the job is paused")
        engine = Engine(root)
        engine.store.create_repo("blends")
        engine.control.pause("big")
        engine.store.put_files("blends", "master", [("/big.blend", blend)])
        engine.close()
        proc, _ = serve(root)  # its pipelines' jobs run once, on the paused job: nothing
        stop(proc)
        frame = work / "000001.exr"
        block = bytes(range(256)) * 4096  # 1 MiB, not all zeros
        with frame.open("wb") as sink:
            for _ in range(size // 2 // len(block)):  # a frame and a video: SIZE in all
                sink.write(block)
        base = "/api/jobs/big"
        cases = [("outputs.zip", f"{base}/outputs.zip", None),
                 ("one output", f"{base}/outputs/big/frames/000001.exr", None)]
        print(f"serving {size / (1 << 30):.2f} GiB outputs; growth = peak RSS above idle")
        print(f"{'case':<14}{'received':>14}{'growth':>12}{'growth/bytes':>14}")
        for name, where, headers in cases:
            # The outputs are put afresh for each case: a server owns its pipelines' output
            # repos, and its next scheduling pass (within 2 s) sets them back to what its
            # jobs made. A response under way is unaffected: it reads the store's objects.
            engine = Engine(root)
            for spec in packaged_specs():
                engine.create_pipeline(spec, update=True)
            engine.store.put_files("merger", "master", [("/big/frames/000001.exr", frame)])
            engine.store.put_files("encoder", "master", [("/big/big.mp4", frame)])
            engine.close()
            proc, url = serve(root)
            try:
                grown, received = measure(proc.pid, url + where, headers)
            finally:
                stop(proc)
            print(f"{name:<14}{received / (1 << 20):>11.0f} MiB{grown / (1 << 20):>8.1f} MiB"
                  f"{grown / max(1, received):>14.4f}")


if __name__ == "__main__":
    main()
