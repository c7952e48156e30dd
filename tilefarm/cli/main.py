"""The ``tilefarm`` command line. Subcommands register themselves in ``COMMANDS``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tilefarm import __version__
from tilefarm.blender.runtimes import runner_for
from tilefarm.blender.side.protocol import DemoRequest
from tilefarm.cli.blender_cmds import BLENDER_COMMANDS
from tilefarm.cli.cluster_cmds import DEPLOY_COMMANDS
from tilefarm.cli.engine_cmds import ENGINE_COMMANDS
from tilefarm.cli.estimate_cmd import ESTIMATE_COMMANDS
from tilefarm.cli.flags import add_plan_flags, flag_settings
from tilefarm.cli.ray_cmds import RAY_COMMANDS
from tilefarm.cli.render_cmd import RENDER_COMMANDS
from tilefarm.cli.server_cmds import SERVER_COMMANDS
from tilefarm.errors import UsageError
from tilefarm.runtime.exitcodes import run_main
from tilefarm.splitter.contents import packed_dir, stage_job
from tilefarm.splitter.intake import open_job
from tilefarm.splitter.split import plan_contents, plan_document, plan_job

Handler = Callable[[argparse.Namespace], int]


def cmd_plan(args: argparse.Namespace) -> int:
    flags = flag_settings(args)
    source = open_job(Path(args.source))
    plan = plan_job(source, flags)
    json.dump(plan_document(plan), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _plan_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("plan", help="print the job plan of a .blend or job directory as JSON",
                       description="Inspect the scene and print the job plan (frames, tiles, tasks) "
                                   "as one JSON object, without rendering.")
    p.add_argument("source", metavar="SCENE.blend|JOB_DIR")
    add_plan_flags(p)
    p.set_defaults(handler=cmd_plan)


def cmd_pack(args: argparse.Namespace) -> int:
    """Write the self-contained job ``render`` and ``submit`` would put into ``blends``."""
    flags = flag_settings(args)
    source = open_job(Path(args.source))
    out = Path(args.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty directory; name a new one",
                         flag="-o")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tilefarm-pack-") as tmp:
        # The checks render makes: which missing files matter.
        plan, contents = plan_contents(source, flags, runner_for,
                                       packed_dir(source, Path(tmp)))
        entries = stage_job(source, source.settings.merged(flags), Path(tmp), plan.facts,
                            contents)
        staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            for path, file in entries:  # "/<job>/<inside>", or "/<job>.blend" for a lone file
                inside = path.split("/", 2)[2] if path.startswith(f"/{source.job}/") else path[1:]
                target = staged / inside
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, target)
            if out.exists():
                out.rmdir()
            staged.rename(out)  # the packed job appears whole
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"tilefarm: packed {source.job}: {len(entries)} files, {total} bytes, into {out}")
    return 0


def _pack_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("pack", help="write a job with every file it uses, ready to put",
                       description="Trace every file the job's .blend uses (textures, libraries, "
                                   "caches...), and write one self-contained job directory: the "
                                   "main .blend and its dependencies at relative paths inside it, "
                                   "and tilefarm.json. `pachctl put file -r blends@master:/JOB -f "
                                   "DIR` renders it on a cluster as `tilefarm render` does here.")
    p.add_argument("source", metavar="SCENE.blend|JOB_DIR")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="a new or empty directory")
    add_plan_flags(p)
    p.set_defaults(handler=cmd_pack)


def parse_resolution(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or not (16 <= int(width) <= 8192
                                                          and 16 <= int(height) <= 8192):
        raise UsageError(f"{text!r} is not a resolution; use WIDTHxHEIGHT between 16 and 8192, "
                         "e.g. 640x360", flag="--resolution")
    return int(width), int(height)


def cmd_demo(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if target.suffix != ".blend":
        raise UsageError(f"{target} does not end in .blend; name the demo scene file "
                         "to write, e.g. demo.blend", flag="TARGET")
    target.parent.mkdir(parents=True, exist_ok=True)
    if args.frames < 1 or args.samples < 1:
        raise UsageError("frames and samples must be 1 or more", flag="--frames/--samples")
    width, height = parse_resolution(args.resolution)
    runner_for(args.blender).run(DemoRequest(target=str(target.resolve()), frames=args.frames, width=width,
                                    height=height, samples=args.samples,
                                    denoise=not args.no_denoise), label="demo")
    print(f"tilefarm: wrote the demo scene {target} ({args.frames} frames, {width}x{height}, "
          f"{args.samples} samples, Cycles)")
    return 0


def _demo_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="write a small demo scene to render",
                       description="Write a small animated Cycles scene (denoised, with a "
                                   "compositor glow) to try tilefarm on.")
    p.add_argument("target", metavar="TARGET.blend")
    p.add_argument("--frames", type=int, default=24, help="animation length (default 24)")
    p.add_argument("--resolution", default="320x180", metavar="WxH", help="default 320x180")
    p.add_argument("--samples", type=int, default=24, help="Cycles samples (default 24)")
    p.add_argument("--no-denoise", action="store_true", help="leave render denoising off")
    p.add_argument("--blender", metavar="X.Y",
                   help="write it with this Blender runtime (default: tilefarm's own)")
    p.set_defaults(handler=cmd_demo)


# Each entry adds one subcommand; later modules (render, deploy, ...) append theirs.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [  # type: ignore[type-arg]
    _plan_parser, _pack_parser, _demo_parser, *RENDER_COMMANDS, *ENGINE_COMMANDS, *DEPLOY_COMMANDS,
    *BLENDER_COMMANDS, *SERVER_COMMANDS, *RAY_COMMANDS, *ESTIMATE_COMMANDS]



class _Parser(argparse.ArgumentParser):
    """argparse with errors as one line naming the flag, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tilefarm", description="Render Blender scenes as Pachyderm pipelines: "
                     "split into tasks, render tiles, merge bit-exact, encode a video.")
    parser.add_argument("--version", action="version", version=f"tilefarm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return run_main("tilefarm", lambda: handler(args))


if __name__ == "__main__":
    sys.exit(main())
