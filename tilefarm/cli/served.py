"""``tilefarm render`` and ``tilefarm run`` on a store a server owns: through the server.

The server holds the store's engine lock, so instead of refusing, ``render`` packs and
checks each job as it always does, submits it, waits for the server to finish it, and
fetches its frames and video into ``--out``; ``run`` has nothing to do.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tilefarm.plan.settings import JobSettings
from tilefarm.server.client import Client
from tilefarm.splitter.prepare import prepared

ENDED = ("done", "failed", "cancelled")


def render_via_server(args: argparse.Namespace, flags: JobSettings, url: str) -> int:
    client = Client(url)
    jobs: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tilefarm-submit-") as tmp:
        for raw in args.sources:
            with prepared(Path(raw), flags, Path(tmp), variants=args.variant,
                          sets=args.set or []) as intake:  # the checks render makes, up front
                for made in intake.jobs:
                    jobs += client.submit(made.entries)
    print(f"tilefarm: the server at {url} owns this store: submitted {', '.join(jobs)}; "
          "waiting for it", flush=True)
    while True:
        states = {j["job"]: j for j in client.json("GET", "/api/jobs") if j["job"] in jobs}
        if len(states) == len(jobs) and all(j["state"] in ENDED for j in states.values()):
            break
        time.sleep(0.5)
    ok = True
    for job in jobs:
        view = states[job]
        if view["state"] == "done":
            written = client.fetch(job, Path(args.out))
            print(f"{job}: done: {view['frames_done']} frames, {len(written)} file(s) in "
                  f"{Path(args.out) / job}")
        else:
            ok = False
            print(f"{job}: FAILED: {view['state']}" + (f": {view['error']}" if view["error"]
                                                       else ""))
    return 0 if ok else 1
