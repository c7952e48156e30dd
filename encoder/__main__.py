"""``python -m tilefarm.encoder``: encode each job of this datum into ``/pfs/out/<job>/<job>.mp4``.

A datum is one job: its final frames (``/pfs/merger/<job>/``), its plan
(``/pfs/splitter/<job>/plan.json``) and its blend (``/pfs/blends/...``, for the
scene's sound).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

from tilefarm.encoder.encode import encode, frame_rate

from tilefarm.blender.runner import BlenderRunner
from tilefarm.blender.runtimes import runner_for
from tilefarm.blender.side.protocol import MixdownRequest
from tilefarm.errors import EncodeError
from tilefarm.plan import layout
from tilefarm.plan.model import Plan, read_plan
from tilefarm.runtime.pfs import datum_entries, pfs_root
from tilefarm.runtime.stage import run_stage, stage_parser


def audio_for(plan: Plan, blends: Path, work: Path, runner: BlenderRunner) -> tuple[Path | None, float]:
    """The audio file and the offset into it where the first rendered frame plays.

    Both the scene's mixdown and a file named in job settings start at the scene's
    first frame; the video starts at the plan's first frame.
    """
    offset = max(0.0, float(Fraction(plan.frames[0] - plan.facts.frame_start)
                            / frame_rate(plan.fps, plan.fps_base)))
    if plan.video.audio:
        path = blends / plan.job / plan.video.audio
        if not path.is_file():
            raise EncodeError(f"the audio file named in job settings (video.audio = "
                              f"{plan.video.audio!r}) is not in the job directory", path=path)
        return path, offset
    if not any(not s.mute for s in plan.facts.sound_strips):
        return None, 0.0
    mix = runner.run(MixdownRequest(blend=str(blends / plan.blend), scene=plan.scene,
                                    target=str(work / "mixdown.wav")), label=f"mixdown-{plan.job}")
    return (Path(mix), offset) if mix is not None else (None, 0.0)


def encode_datum(args: argparse.Namespace) -> int:
    root = pfs_root(args.pfs_root)
    jobs = [entry.name for entry in datum_entries(root, args.frames_input) if entry.is_dir()]
    if not jobs:
        raise EncodeError(f"no job frames in this datum (looked under {root / args.frames_input})")
    for job in jobs:
        plan = read_plan(layout.plan_path(root / args.plan_input, job))
        if not plan.video.enabled:
            print(f"encoder: {job}: video disabled in job settings", flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix="tilefarm-audio-") as tmp:
            audio, start = audio_for(plan, root / args.blends_input, Path(tmp),
                                     runner_for(plan.blender.rendered_by))
            target = encode(plan, root / args.frames_input, root / "out", audio=audio,
                            audio_start=start)
        print(f"encoder: {job}: {len(plan.frames)} frames -> {target}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("encoder", "Encode each job's final frames into a video with ffmpeg "
                          "(H.264 MP4 by default) at the scene's frame rate, with its sound.")
    parser.add_argument("--frames-input", default="merger", help="input holding the final frames")
    parser.add_argument("--plan-input", default="splitter", help="input holding plan.json")
    parser.add_argument("--blends-input", default="blends", help="input holding the jobs")
    return run_stage("encoder", parser, encode_datum, argv)


if __name__ == "__main__":
    sys.exit(main())
