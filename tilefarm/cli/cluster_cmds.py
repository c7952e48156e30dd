"""``tilefarm deploy``, ``tilefarm submit`` and ``tilefarm fetch``: the cluster commands."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tilefarm.blender.runtimes import own_runtime
from tilefarm.cli.flags import add_plan_flags, add_variant_flags, flag_settings
from tilefarm.splitter.prepare import prepared
from tilefarm.errors import UsageError
from tilefarm.pipelines.deploy import deploy, deploy_requests, dry_run_text, fetch, submit
from tilefarm.pipelines.image import build, image_runtimes, push
from tilefarm.server.client import Client
from tilefarm.splitter.intake import check_job_name


def cmd_deploy(args: argparse.Namespace) -> int:
    if args.gpu < 0:
        raise UsageError(f"{args.gpu} GPUs is not allowed; use 0 or more", flag="--gpu")
    if args.push and not args.build:
        raise UsageError("--push needs --build (it pushes the image it builds)", flag="--push")
    image = args.image
    own = own_runtime()
    wanted = [s.strip() for s in args.blender.split(",") if s.strip()] if args.blender else []
    if wanted and not args.build:
        raise UsageError("--blender needs --build (it builds the runtimes into the image)",
                         flag="--blender")
    extra = image_runtimes(wanted, own.series if own else None)
    if args.build and not args.dry_run:
        image = build(args.image, runtimes=extra)
        held = ", ".join(([own.series] if own else []) + extra)
        print(f"built {image} (Blender runtimes: {held})")
        if args.push:
            push(image)
            print(f"pushed {image}")
    requests = deploy_requests(image, args.gpu)
    if args.dry_run:
        print(dry_run_text(requests))
        return 0
    created, applied = deploy(args.pachd, requests)
    print(f"repo blends: {'created' if created else 'exists'}")
    for item in applied:
        print(f"pipeline {item.pipeline}: {item.action} with image {image}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    flags = flag_settings(args)
    with tempfile.TemporaryDirectory(prefix="tilefarm-submit-") as tmp, \
            prepared(Path(args.source), flags, Path(tmp), variants=args.variant,
                     sets=args.set or [], tagged=bool(args.server)) as intake:
        # Render's checks, before anything is put (a server says whether it has tagged nodes).
        if args.server and intake.template.settings.variants:
            # The template goes whole: the server makes its variants and keeps it, so its
            # page can make more (GET /api/templates).
            entries = intake.template_entries(flags, Path(tmp))
            jobs = Client(args.server, args.token).submit(entries)
            print(f"submitted {', '.join(jobs)} to {args.server}: {len(entries)} file(s)")
            return 0
        for job in intake.jobs:  # a job with no variants is its own one
            if args.server:
                jobs = Client(args.server, args.token).submit(job.entries)
                print(f"submitted {', '.join(jobs)} to {args.server}: "
                      f"{len(job.entries)} file(s)")
                continue
            submit(args.pachd, job.job, job.entries)
            print(f"submitted {job.job}: {len(job.entries)} file(s) into blends@master, "
                  f"replacing /{job.job}.blend and /{job.job}/")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    job = check_job_name(args.job, "JOB")  # it names the directory written under --out
    if args.zip is not None:
        if not args.server:
            raise UsageError("--zip needs --server: a Pachyderm cluster offers no archive; "
                             "use --out DIR", flag="--zip")
        Client(args.server, args.token).fetch_zip(job, Path(args.zip))
        print(f"fetched the outputs of {job} from {args.server} into {args.zip}")
        return 0
    if args.server:
        written = Client(args.server, args.token).fetch(job, Path(args.out))
        print(f"fetched {len(written)} file(s) of {job} from {args.server} into "
              f"{Path(args.out) / job}")
        return 0 if written else 1
    fetched = fetch(args.pachd, job, Path(args.out))
    if fetched.note:
        print(f"note: {fetched.note}")
    print(f"fetched {len(fetched.files)} file(s) of commit set {fetched.commit} into "
          f"{Path(args.out) / job}")
    return 0


def _parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("deploy", help="create or update the four pipelines on a Pachyderm cluster")
    p.add_argument("--pachd", required=True, metavar="HOST:PORT", help="pachd's gRPC address")
    p.add_argument("--image", required=True, help="the pipeline image, e.g. registry/tilefarm:1")
    p.add_argument("--build", action="store_true", help="build the image (tagged by content) first")
    p.add_argument("--push", action="store_true", help="push the built image")
    p.add_argument("--dry-run", action="store_true", help="print the requests instead of sending")
    p.add_argument("--gpu", type=int, default=0, metavar="N", help="GPUs per renderer worker")
    p.add_argument("--blender", metavar="X.Y,...",
                   help="Blender runtimes the built image holds besides tilefarm's own, e.g. "
                   "4.5,5.0: each job renders with the one that saved its file")
    p.set_defaults(handler=cmd_deploy)

    p = sub.add_parser("submit", help="put a job into a cluster's blends repo, or a server's")
    p.add_argument("source", metavar="SCENE.blend|JOB_DIR")
    _target(p)
    add_plan_flags(p)
    add_variant_flags(p)
    p.set_defaults(handler=cmd_submit)

    p = sub.add_parser("fetch", help="get a job's frames and video from a cluster or a server")
    p.add_argument("job", metavar="JOB")
    _target(p)
    into = p.add_mutually_exclusive_group(required=True)
    into.add_argument("--out", metavar="DIR", help="write the files into DIR/JOB/")
    into.add_argument("--zip", metavar="FILE", help="save every output as one ZIP (--server)")
    p.set_defaults(handler=cmd_fetch)


def _target(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pachd", metavar="HOST:PORT", help="a Pachyderm cluster's pachd")
    where.add_argument("--server", metavar="URL", help="a tilefarm serve, e.g. "
                       "http://127.0.0.1:8470")
    parser.add_argument("--token", metavar="SECRET",
                        help="the server's token (default $TILEFARM_TOKEN)")


DEPLOY_COMMANDS = [_parsers]
