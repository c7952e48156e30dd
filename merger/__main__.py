"""``python -m tilefarm.merger``: assemble each frame of this datum into ``/pfs/out/<job>/frames/``.

A datum is one frame: its tiles (``/pfs/renderer/<job>/tiles/<frame>/``), the
job's plan (``/pfs/splitter/<job>/plan.json``) and its blend (``/pfs/blends/...``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from tilefarm.merger.merge import merge_frame
from tilefarm.pipelines.worker import serve_datums

from tilefarm.blender.runner import KEEP_HEAP
from tilefarm.blender.runtimes import Sessions
from tilefarm.errors import MergeError
from tilefarm.plan import layout
from tilefarm.plan.model import Plan, read_plan
from tilefarm.runtime.pfs import datum_entries, pfs_root
from tilefarm.runtime.stage import run_stage, stage_parser


def frames_of_datum(root: Path, tiles_input: str) -> list[tuple[str, int]]:
    """(job, frame) pairs present in this datum, in numeric frame order."""
    pairs: set[tuple[str, int]] = set()
    for entry in datum_entries(root, tiles_input):
        rel = entry.relative_to(root / tiles_input).parts if entry.is_relative_to(
            root / tiles_input) else entry.parts[-3:]
        if len(rel) >= 3 and rel[1] == "tiles":
            pairs.add((rel[0], int(rel[2])))
        elif len(rel) == 1 and (entry / "tiles").is_dir():
            pairs.update((rel[0], int(d.name)) for d in (entry / "tiles").iterdir() if d.is_dir())
    return sorted(pairs, key=lambda p: (p[0], p[1]))


_PLANS: dict[str, Plan] = {}  # sha256 of a plan.json -> the plan, for this worker's life


def plan_of(path: Path) -> Plan:
    """The job's plan, read and validated once per content. A warm merger serves every frame
    of a job, and a plan grows with the job: reading 400 frames of 2x2 took 1 s a frame
    (bench/scaling.py), which made a job's merges quadratic in its length."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest not in _PLANS:
        if len(_PLANS) >= 8:
            _PLANS.clear()
        _PLANS[digest] = read_plan(path)
    return _PLANS[digest]


def merge_datum(args: argparse.Namespace, sessions: Sessions) -> int:
    root = pfs_root(args.pfs_root)
    pairs = frames_of_datum(root, args.tiles_input)
    if not pairs:
        raise MergeError(f"no frame tiles in this datum (looked under {root / args.tiles_input})")
    for job, frame in pairs:
        plan = plan_of(layout.plan_path(root / args.plan_input, job))
        blend = root / args.blends_input / plan.blend
        session = sessions.get(plan.blender.rendered_by)
        target = merge_frame(plan, frame, root / args.tiles_input, blend, root / "out", session,
                             timeout=args.timeout)
        print(f"merger: {job} frame {frame} -> {target}", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    with Sessions("merger", extra_env=KEEP_HEAP) as sessions:
        return serve_datums("merger", lambda: merge_datum(args, sessions))


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("merger", "Assemble each frame's tiles into one multilayer EXR and run "
                          "the scene's compositing and output format once on the whole frame.")
    parser.add_argument("--tiles-input", default="renderer", help="input holding the tiles")
    parser.add_argument("--plan-input", default="splitter", help="input holding plan.json")
    parser.add_argument("--blends-input", default="blends", help="input holding the .blend files")
    parser.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                        help="give up on a frame after this long (default 3600)")
    return run_stage("merger", parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
