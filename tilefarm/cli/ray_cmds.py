"""Ray: ``tilefarm join HEAD`` makes this machine a node of a farm, and ``--ray ADDRESS``
(``serve``, ``render``) runs the farm's datums on the cluster's nodes (``tilefarm.nodes``)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tilefarm.blender import runtimes
from tilefarm.engine.pools import SharedPool
from tilefarm.errors import UsageError
from tilefarm.plan.settings import parse_size
from tilefarm.plan.tags import RESOURCE_PREFIX as TAG_PREFIX
from tilefarm.plan.tags import parse_tags
from tilefarm.plan.versions import install_hint, series_key
from tilefarm.sizes import format_size

RAY_HELP = ("run every stage's datums on the Ray cluster at ADDRESS (HOST:PORT, or auto for "
            "the one this machine belongs to); its nodes join with tilefarm join")


def add_ray_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray", metavar="ADDRESS", help=RAY_HELP)
    parser.add_argument("--no-backups", action="store_true",
                        help="with --ray: never back up a straggling datum on a free node "
                             "(by default a datum running over twice its kind's median gets a "
                             "copy once its job has nothing queued; the first to finish wins)")


def ray_pool(args: argparse.Namespace) -> SharedPool | None:
    """The engine's slots on the Ray cluster ``--ray`` names, or None without the flag."""
    if not args.ray:
        if args.no_backups:
            raise UsageError("--no-backups applies only with --ray ADDRESS: a local farm's "
                             "workers share one machine and never back up a datum",
                             flag="--no-backups")
        return None
    if args.memory is not None:
        raise UsageError("with --ray, each node's budget is the memory it joined with "
                         "(tilefarm join --memory SIZE); leave --memory out", flag="--memory")
    from tilefarm.nodes.pool import RayPool  # Ray itself is imported only here

    return RayPool(args.ray, budgets=True, backups=not args.no_backups)


def ray_program() -> str:
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.exists() else shutil.which("ray")
    if found is None:
        raise UsageError("Ray is not installed; install it with: pip install 'tilefarm[ray]'",
                         flag="join")
    return found


def node_runtimes(wanted: str | None) -> list[str]:
    """The runtimes this node advertises: ``--blender``'s, each installed here, or all."""
    have = runtimes.available_series_here()
    if wanted is None:
        if not have:
            raise UsageError(f"this machine has no Blender runtime; install one with: "
                             f"{install_hint('4.5')}", flag="--blender")
        return have
    chosen = []
    for raw in wanted.split(","):
        series = raw.strip()
        try:
            series = "%d.%d" % series_key(series)
        except (ValueError, TypeError):
            raise UsageError(f"{raw!r} is not a Blender version; give major.minor, e.g. "
                             "4.5,5.0", flag="--blender") from None
        if series not in have:
            raise UsageError(f"this machine has no Blender {series} runtime (installed: "
                             f"{', '.join(have) or 'none'}); install it with: "
                             f"{install_hint(series)}", flag="--blender")
        chosen.append(series)
    return sorted(set(chosen), key=series_key)


def cmd_join(args: argparse.Namespace) -> int:
    series = node_runtimes(args.blender)
    tags = parse_tags(args.tags, "--tags") if args.tags is not None else []
    resources = {**{f"blender-{s}": 1 for s in series},
                 **{f"{TAG_PREFIX}{tag}": 1 for tag in tags}}
    argv = [ray_program(), "start", "--address", args.head, "--resources",
            json.dumps(resources), "--disable-usage-stats"]
    if args.gpus is not None:
        if args.gpus < 0:
            raise UsageError(f"{args.gpus} is not a GPU count; use 0 or more", flag="--gpus")
        argv += ["--num-gpus", str(args.gpus)]
    if args.cpus is not None:
        if args.cpus < 0:
            raise UsageError(f"{args.cpus} is not a CPU count; use 0 or more", flag="--cpus")
        argv += ["--num-cpus", str(args.cpus)]
    memory = parse_size(args.memory, "--memory") if args.memory is not None else None
    if memory is not None:
        argv += ["--memory", str(memory)]
    for flag, value in (("--node-ip-address", args.node_ip_address),
                        ("--temp-dir", args.temp_dir)):
        if value:
            argv += [flag, value]
    from tilefarm.nodes.node import CACHE_ENV, cache_root

    cache = Path(args.cache).resolve() if args.cache else cache_root()
    env = {**os.environ, CACHE_ENV: str(cache)}
    what = (f"Blender {', '.join(series)}; cache {cache}"
            + (f"; {format_size(memory)}" if memory is not None else "")
            + (f"; {args.gpus} GPUs" if args.gpus else "")
            + (f"; tagged {','.join(tags)}" if tags else ""))
    if args.block:
        print(f"tilefarm: joining {args.head} ({what}); Ctrl-C leaves", flush=True)
        return subprocess.call(argv + ["--block"], env=env)
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines()
                 if line.strip()]
        why = [line for line in lines if "Error" in line or "Exception" in line or
               "failed" in line.lower()]
        raise UsageError(f"ray start failed: {(why or lines or [str(done.returncode)])[-1]}",
                         flag="join")
    print(f"tilefarm: joined {args.head} ({what}); `ray stop` leaves")
    return 0


def _join_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("join", help="make this machine a render node of a Ray cluster",
                       description="Start a Ray worker node that joins the cluster at "
                                   "HEAD_ADDRESS and advertises this machine's Blender runtimes, "
                                   "GPUs and memory, so that tilefarm serve/render --ray sends it "
                                   "work. Returns once the node has joined (like ray start).")
    p.add_argument("head", metavar="HEAD_ADDRESS", help="the head's HOST:PORT (ray start --head)")
    p.add_argument("--blender", metavar="X.Y[,X.Y]",
                   help="the runtimes to offer (default: every one tilefarm blender list shows)")
    p.add_argument("--gpus", type=int, metavar="N", help="GPUs to offer (default: Ray's count)")
    p.add_argument("--cpus", type=int, metavar="N",
                   help="CPUs to offer: one datum runs per CPU (default: Ray's count)")
    p.add_argument("--memory", metavar="SIZE",
                   help="memory the node's datums may use together, e.g. 16GiB (default: Ray's)")
    p.add_argument("--tags", metavar="TAG[,TAG]",
                   help="tags of this node, e.g. spot,gpu: it runs only jobs asking for tags it "
                   "has (render/submit --tags); untagged jobs run only on untagged nodes")
    p.add_argument("--cache", metavar="DIR",
                   help="where the node keeps job files by hash (default ~/.cache/tilefarm/node)")
    p.add_argument("--node-ip-address", metavar="IP", help="this node's address, as ray start")
    p.add_argument("--temp-dir", metavar="DIR", help="Ray's session folder, as ray start")
    p.add_argument("--block", action="store_true", help="stay in the foreground")
    p.set_defaults(handler=cmd_join)


RAY_COMMANDS = [_join_parser]
