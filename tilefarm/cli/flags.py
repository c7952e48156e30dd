"""The flags that override job settings, shared by ``plan``, ``render`` and ``submit``."""

from __future__ import annotations

import argparse

from tilefarm.plan.planner import check_settings
from tilefarm.plan.settings import JobSettings
from tilefarm.plan.tags import parse_tags


def add_plan_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that override job settings; shared by ``plan`` and ``render``."""
    parser.add_argument("--frames", metavar="SPEC",
                        help="frames to render, e.g. 1-10,20,30-40 (default: the scene's range and step)")
    parser.add_argument("--tiles", metavar="NXxNY", help="tile grid, e.g. 2x2 (default 1x1: whole frames)")
    parser.add_argument("--chunk", metavar="N", type=int, help="frames per render task (default 1)")
    parser.add_argument("--overscan", metavar="PX", type=int,
                        help="margin rendered around each tile and cropped on merge (default: what "
                        "the scene's adaptive sampling needs, 0-16)")
    parser.add_argument("--scene", metavar="NAME", help="scene to render (default: the file's active scene)")
    parser.add_argument("--blender", metavar="X.Y",
                        help="render with this Blender runtime (default: the one matching the "
                        "Blender that saved the file; see tilefarm blender list)")
    parser.add_argument("--memory-limit", metavar="SIZE",
                        help="the most memory one Blender may use, e.g. 4GiB or 512MiB; one that "
                        "uses more is stopped and its task retried alone once")
    parser.add_argument("--max-workers", metavar="N", type=int,
                        help="run at most N datums of this job at once (default: as many as "
                        "there are workers); the others take other jobs' datums meanwhile")
    parser.add_argument("--tags", metavar="TAG[,TAG]",
                        help="run only on Ray nodes joined with all these tags (tilefarm join "
                        "--tags); without, only on untagged nodes")
    parser.add_argument("--allow-missing", action="store_true",
                        help="render even though files the scene uses are missing (listed as a "
                        "warning); without it such a job is refused before rendering")


def add_variant_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that pick or make variants of a template job; shared by render and submit."""
    parser.add_argument("--variant", action="append", metavar="NAME",
                        help="render this variant of a template job (repeatable; default: all)")
    parser.add_argument("--set", action="append", metavar="KIND.NAME=VALUE",
                        help="add or change the one --variant: text.Title=\"AMY REED\", "
                        "images.Photo=amy.png (a file anywhere: it is packed), values.tint=0.35")


def flag_settings(args: argparse.Namespace) -> JobSettings:
    settings = JobSettings(frames=args.frames, tiles=args.tiles, chunk=args.chunk,
                           overscan=args.overscan, scene=args.scene,
                           allow_missing=True if args.allow_missing else None,
                           blender=args.blender, memory_limit=args.memory_limit,
                           max_workers=args.max_workers,
                           tags=parse_tags(args.tags, "--tags") if args.tags is not None
                           else None)
    check_settings(settings, {name: f"--{name.replace('_', '-')}" for name in
                              ("frames", "tiles", "chunk", "overscan", "memory_limit",
                               "max_workers")})
    return settings
