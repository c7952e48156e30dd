"""Starting a pipeline's ``transform.cmd`` on this machine, as a Pachyderm worker starts its
user code: the interpreter it runs, the variables it sees, and the error a failed start
reports (a datum's error, not the engine's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tilefarm.pipelines.specs import PipelineSpec
from tilefarm.pipelines.worker import WORKER_PORT_ENV


class StartFailed(Exception):
    """``transform.cmd`` could not be started: a datum error, as in Pachyderm."""


def exec_error(name: str, exc: OSError) -> str:
    """Go's ``cmd.Start()`` error for ``name``, which Pachyderm's RunUserCode returns as the
    datum's error (src/server/worker/driver/driver.go:370-388)."""
    quoted = json.dumps(name)
    if isinstance(exc, FileNotFoundError):
        # exec.LookPath: a bare name is searched in $PATH; a path is stat'ed.
        return (f"exec: {quoted}: stat {name}: no such file or directory" if "/" in name
                else f"exec: {quoted}: executable file not found in $PATH")
    if isinstance(exc, PermissionError):
        return f"exec: {quoted}: permission denied"
    return f"fork/exec {name}: {(exc.strerror or str(exc)).lower()}"


def local_argv(cmd: list[str]) -> list[str]:
    """The image's ``python3`` is this interpreter on one machine."""
    return [sys.executable if i == 0 and part in ("python3", "python") else part
            for i, part in enumerate(cmd)]


def threads_each(slots: int) -> int:
    """Blender threads for each of a pipeline's ``slots`` workers: the cores, shared."""
    return max(1, (os.cpu_count() or 1) // slots)


def stage_env(spec: PipelineSpec, threads: int) -> dict[str, str]:
    """The variables every process of ``spec`` starts with (a datum's come on top)."""
    env = dict(os.environ)
    env.update(spec.env)
    if threads:
        env["TILEFARM_THREADS"] = str(threads)
    env.pop(WORKER_PORT_ENV, None)
    return env


def spawn(spec: PipelineSpec, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``spec``'s ``transform.cmd`` in a session of its own, its output in ``log``;
    StartFailed if it cannot start (said in the log too, as Pachyderm's worker says it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = local_argv(spec.cmd)
    with log.open("ab") as sink:
        try:
            return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            failed = StartFailed(exec_error(argv[0], exc))
            sink.write(f"errored running user code: {failed}\n".encode())
            raise failed from None
