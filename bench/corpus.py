"""Benchmark: tilefarm on real-world .blend files, each frame against Blender's own render.

    .venv/bin/python bench/corpus.py DIR [--frames 2] [--scale PCT] [--samples 16]
                                         [--jobs-out WORK] [--markdown] [--keep-copies]

Every ``*.blend`` under DIR (recursively; not ``*.blend1``, not this script's own copies, not
a file another .blend under DIR links as a library) is handled on its own, and one failing
never stops the run:

1. A small copy is saved beside it, ``<stem>.tilefarm-corpus.blend`` (same folder, so
   relative paths still resolve), by ``bench/side/corpus_prepare.py`` in a Blender child with
   scripts disabled: the first ``--frames`` frames, the longer side about 320 px
   (``--scale`` sets resolution_percentage instead), Cycles / EEVEE samples capped at
   ``--samples``, a movie output written as PNG frames. The copy is made, and both renders
   run, with the Blender runtime tilefarm picks for the original (the one that saved it,
   else the nearest newer one installed).
2. ``tilefarm plan ORIGINAL --tiles 2x2``: what tilefarm says of the file as it is (a
   refusal, such as a file newer than every runtime or a missing texture, ends here).
3. Blender's own animation render of the copy (``blender -b COPY -a``: the reference the
   tests use, ``tests/scenes/build_scenes.py``), then ``tilefarm render COPY --tiles 2x2
   --no-video``, and every frame compared as the tests compare them
   (``tests/pipeline.py``: every channel of every EXR part, or the decoded image array;
   byte for byte, less the volatile header fields, for formats the decoders do not read).

One line a file: ``<path relative to DIR>  <what the scene has>  <outcome>``; the outcome is
``exact``, ``rendered whole: <reason>; exact|differs ...``, ``refused: <tilefarm's error>``,
``differs: <n> values, max <d> (<frame> <channel>)``, ``blender fails: <reason>`` (Blender
itself cannot render it; what tilefarm did follows), ``failed: <message>`` (tilefarm
accepted the job and did not deliver it) or ``skipped: <why>``. ``--markdown`` prints the
same as a markdown table. Exit status 1 if any file differs or failed, else 0.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pipeline import DECODED, VOLATILE_BYTES, pixels  # noqa: E402
from tilefarm.blender.blendfile import check_blend  # noqa: E402
from tilefarm.blender.runner import BlenderRunner  # noqa: E402
from tilefarm.blender.runtimes import available_series, runner_for  # noqa: E402
from tilefarm.plan.versions import choose_runtime  # noqa: E402

PREPARE = Path(__file__).resolve().parent / "side" / "corpus_prepare.py"
# Blender's own animation render of a file: the reference the tests compare frames with.
OWN_RENDER = ROOT / "tests" / "scenes" / "build_scenes.py"
TILEFARM = Path(sys.executable).parent / "tilefarm"
COPY_SUFFIX = ".tilefarm-corpus.blend"
TIMEOUT = 3600.0


@dataclass
class Row:
    path: str
    scene: str
    outcome: str
    seconds: float = 0.0

    @property
    def kind(self) -> str:
        if self.outcome.startswith("rendered whole"):
            return "whole-exact" if self.outcome.endswith("; exact") else "differs"
        return self.outcome.split(":")[0]


def one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a tilefarm command in its own process group; on timeout, end that group only."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\ntilefarm: error: did not finish within {timeout:g} s"
        return subprocess.CompletedProcess(argv, -9, out, err)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def tilefarm_error(proc: subprocess.CompletedProcess[str]) -> str:
    errors = [line[len("tilefarm: error: "):] for line in proc.stderr.splitlines()
              if line.startswith("tilefarm: error: ")]
    if errors:
        return one_line(errors[-1])
    tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    return one_line(tail[-1] if tail else f"exit status {proc.returncode}")


# --- which files --------------------------------------------------------------------------


def discover(root: Path) -> tuple[list[Path], dict[Path, Path]]:
    """The .blend files under ``root`` and, for each one another of them links as a
    library, the first file that links it (read by Blender Asset Tracer, as intake does)."""
    from tilefarm.splitter.assets import trace

    blends = sorted(p for p in root.rglob("*.blend")
                    if p.is_file() and not p.name.endswith(COPY_SUFFIX))
    linked: dict[Path, Path] = {}
    for blend in blends:
        try:
            deps = trace(blend)
        except Exception:  # noqa: BLE001 - an unreadable file is reported when its turn comes
            continue
        for dep in deps:
            if dep.kind == "library" and dep.exists:
                linked.setdefault(Path(os.path.realpath(dep.resolved)), blend)
    return blends, linked


# --- comparing ----------------------------------------------------------------------------


def channels(name: str, array: np.ndarray) -> dict[str, np.ndarray]:
    """An image array split into named channels (OpenCV's B, G, R, A order)."""
    if name != "pixels" or array.ndim == 2:
        return {name: array}
    names = {1: "Y", 2: "YA", 3: "BGR", 4: "BGRA"}.get(array.shape[2])
    if names is None:
        return {f"c{i}": array[..., i] for i in range(array.shape[2])}
    return {c: array[..., i] for i, c in enumerate(names)}


@dataclass
class Diff:
    values: int = 0
    worst: float = 0.0
    where: str = ""
    problem: str = ""  # a difference that is not a pixel value (a frame, a channel, a shape)

    def add(self, values: int, worst: float, where: str) -> None:
        self.values += values
        if worst > self.worst or not self.where:
            self.worst, self.where = worst, where

    def __str__(self) -> str:
        if self.problem:
            return f"differs: {self.problem}"
        if not self.values:
            return "exact"
        return f"differs: {self.values} values, max {self.worst:g} ({self.where})"


def compare_frame(ours: Path, theirs: Path, frame: int, diff: Diff) -> None:
    if ours.suffix != theirs.suffix:
        diff.problem = f"frame {frame} is {ours.name}, Blender wrote {theirs.name}"
        return
    if ours.suffix not in DECODED:
        a, b = bytearray(ours.read_bytes()), bytearray(theirs.read_bytes())
        for start, end in VOLATILE_BYTES.get(ours.suffix, []):
            a[start:end] = b[start:end] = bytes(end - start)
        if a != b:
            count = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
            diff.add(count, 255.0, f"frame {frame}: {count} of {len(b)} bytes")
        return
    a, b = pixels(ours), pixels(theirs)
    if sorted(a) != sorted(b):
        diff.problem = (f"frame {frame} channels {sorted(set(a) ^ set(b))[:4]} are in one "
                        "render only")
        return
    for name in a:
        if a[name].dtype != b[name].dtype or a[name].shape != b[name].shape:
            diff.problem = (f"frame {frame} {name}: {a[name].dtype}{list(a[name].shape)}, "
                            f"Blender's {b[name].dtype}{list(b[name].shape)}")
            return
        mine, blenders = channels(name, a[name]), channels(name, b[name])
        for channel in mine:
            x = mine[channel].astype(np.float64)
            y = blenders[channel].astype(np.float64)
            same = (x == y) | (np.isnan(x) & np.isnan(y))
            if not same.all():
                delta = np.abs(x - y)
                delta[same] = 0
                worst = float(np.nanmax(delta)) if not np.isnan(delta).all() else float("nan")
                diff.add(int((~same).sum()), worst, f"frame {frame} {channel}")


def compare(frames_dir: Path, reference: dict[int, Path]) -> Diff:
    diff = Diff()
    ours = {int(p.stem): p for p in frames_dir.glob("*") if p.stem.isdigit()} \
        if frames_dir.is_dir() else {}
    if sorted(ours) != sorted(reference):
        diff.problem = (f"frames {sorted(ours)} written, Blender wrote {sorted(reference)}")
        return diff
    for frame, theirs in sorted(reference.items()):
        compare_frame(ours[frame], Path(theirs), frame, diff)
        if diff.problem:
            break
    return diff


# --- one file -----------------------------------------------------------------------------


def describe(facts: dict) -> str:
    before, after = facts["before"], facts["after"]
    w, h = after["size"]
    ow, oh = before["size"]
    size = f"{w}x{h}" + ("" if (w, h) == (ow, oh) else f" of {ow}x{oh}")
    if before["samples"] is None:
        samples = "- spp"
    elif after["samples"] == before["samples"]:
        samples = f"{after['samples']} spp"
    else:
        samples = f"{after['samples']}/{before['samples']} spp"
    fmt = before["format"] + ("" if after["format"] == before["format"]
                              else f"->{after['format']}")
    text = (f"{before['engine']}, {size}, {samples}, denoise {'y' if before['denoise'] else 'n'}, "
            f"comp {before['compositor']}, {fmt}, saved by {before['saved_by']}")
    return text + ("" if before["camera"] else ", no camera")


def copy_name(blend: Path) -> Path:
    """``<stem>.tilefarm-corpus.blend`` beside ``blend``, its stem made a valid job name."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", blend.stem).lstrip(".") or "blend"
    return blend.with_name(stem + COPY_SUFFIX)


def runner_for_file(blend: Path) -> tuple[BlenderRunner, bool]:
    """The runner tilefarm picks for ``blend``, and whether one exists (else the newest,
    which can still describe the file)."""
    saved_by = check_blend(blend).blender
    available = available_series()
    try:
        versions = choose_runtime(saved_by, available)
    except Exception:  # noqa: BLE001 - newer than every runtime: tilefarm's plan says so
        return runner_for(available[-1], timeout=TIMEOUT), False
    return runner_for(versions.rendered_by, timeout=TIMEOUT), True


def whole_reason(stdout: str, job: str) -> str | None:
    marker = f"{job}: rendering whole frames instead of "
    for line in stdout.splitlines():
        if line.startswith(marker):
            return one_line(line[len(marker):].split(": ", 1)[-1])
    return None


def handle(blend: Path, args: argparse.Namespace, work: Path) -> tuple[str, str]:
    """(scene, outcome) of one file."""
    scene = "?"
    try:
        runner, renderable = runner_for_file(blend)
    except Exception as exc:  # noqa: BLE001 - not a .blend tilefarm can read
        proc = run([str(TILEFARM), "plan", str(blend), "--tiles", "2x2"], TIMEOUT)
        return scene, (f"refused: {tilefarm_error(proc)}" if proc.returncode
                       else f"blender fails: {one_line(exc)}")
    copy = copy_name(blend)
    try:
        facts = runner.run_script(PREPARE, {
            "blend": str(blend), "copy": str(copy), "frames": args.frames, "scale": args.scale,
            "longest": 320, "samples": args.samples}, label="corpus-prepare")
        scene = describe(facts)
    except Exception as exc:  # noqa: BLE001 - Blender cannot open it
        proc = run([str(TILEFARM), "plan", str(blend), "--tiles", "2x2"], TIMEOUT)
        said = f"refused: {tilefarm_error(proc)}" if proc.returncode else "accepted it"
        return scene, f"blender fails: {one_line(exc)} (tilefarm: {said})"

    plan = run([str(TILEFARM), "plan", str(blend), "--tiles", "2x2"], TIMEOUT)
    if plan.returncode:
        return scene, f"refused: {tilefarm_error(plan)}"
    if not renderable:
        return scene, "failed: tilefarm planned a file no runtime can render"

    out = work / "tilefarm"
    try:
        result = runner.run_script(OWN_RENDER, {"reference": str(copy), "out": str(work / "ref")},
                                   label="corpus-reference")
        reference = {int(frame): Path(path) for frame, path in result.items()}
    except Exception as exc:  # noqa: BLE001 - Blender itself cannot render it
        proc = run([str(TILEFARM), "render", str(copy), "--tiles", "2x2", "--no-video",
                    "--out", str(out)], TIMEOUT)
        said = f"refused: {tilefarm_error(proc)}" if proc.returncode else "rendered it"
        return scene, f"blender fails: {one_line(exc)} (tilefarm: {said})"

    proc = run([str(TILEFARM), "render", str(copy), "--tiles", "2x2", "--no-video",
                "--out", str(out)], TIMEOUT)
    job = copy.stem
    if proc.returncode:
        failed = [line.split(": FAILED: ", 1)[1] for line in proc.stdout.splitlines()
                  if line.startswith(f"{job}: FAILED: ")]
        if failed:  # accepted, then not delivered
            return scene, f"failed: {one_line(failed[-1])}"
        return scene, f"refused: {tilefarm_error(proc)}"
    diff = compare(out / job / "frames", reference)
    reason = whole_reason(proc.stdout, job)
    return scene, f"rendered whole: {reason}; {diff}" if reason else str(diff)


# --- the run ------------------------------------------------------------------------------


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, metavar="DIR")
    parser.add_argument("--frames", type=int, default=2, help="first N frames (default 2)")
    parser.add_argument("--scale", type=int, help="resolution_percentage (default: the "
                                                  "longer side about 320 px)")
    parser.add_argument("--samples", type=int, default=16, help="cap Cycles/EEVEE samples")
    parser.add_argument("--jobs-out", type=Path, metavar="WORK",
                        help="keep renders here (default: a temporary directory)")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--keep-copies", action="store_true",
                        help=f"keep the *{COPY_SUFFIX} copies beside the originals")
    args = parser.parse_args()
    root = args.dir.resolve()
    if args.frames < 1 or args.samples < 1:
        parser.error("--frames and --samples take 1 or more")

    started = time.perf_counter()
    blends, linked = discover(root)
    temp = None
    if args.jobs_out is None:
        temp = tempfile.TemporaryDirectory(prefix="tilefarm-corpus-")
        work_root = Path(temp.name)
    else:
        work_root = args.jobs_out.resolve()
        work_root.mkdir(parents=True, exist_ok=True)
    if args.markdown:
        print("| file | scene | outcome |\n| --- | --- | --- |", flush=True)
    rows: list[Row] = []
    try:
        for index, blend in enumerate(blends, 1):
            rel = str(blend.relative_to(root))
            start = time.perf_counter()
            by = linked.get(Path(os.path.realpath(blend)))
            if by is not None:
                scene, outcome = "library", f"skipped: linked by {by.relative_to(root)}"
            else:
                work = work_root / f"{index:03d}-{copy_name(blend).stem}"
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir(parents=True)
                try:
                    scene, outcome = handle(blend, args, work)
                except Exception as exc:  # noqa: BLE001 - one file never stops the run
                    scene, outcome = "?", f"failed: {exc.__class__.__name__}: {one_line(exc)}"
                finally:
                    if not args.keep_copies:
                        copy_name(blend).unlink(missing_ok=True)
            row = Row(rel, scene, outcome, time.perf_counter() - start)
            rows.append(row)
            if args.markdown:
                print(f"| {cell(rel)} | {cell(scene)} | {cell(outcome)} |", flush=True)
            else:
                print(f"{rel}  {scene}  {outcome}", flush=True)
    finally:
        if temp is not None:
            temp.cleanup()
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row.kind] = kinds.get(row.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"\n{len(rows)} files in {time.perf_counter() - started:.0f} s: {summary}", flush=True)
    bad = [r for r in rows if r.kind in ("differs", "failed")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
