"""Runs Blender-side scripts in a child process, safely, and reads their JSON result.

Blender is a pip-installed ``bpy`` module run by a Python (this one by default, or a
runtime's: ``runtimes.py``) or a Blender executable (``TILEFARM_BLENDER``, or registered). Either way the child gets factory
settings, a private empty home and user config/scripts dir, an environment built
from an allow-list (no ``PYTHONPATH``, no credentials), and the script opens .blend
files with scripts disabled (``side/boot.py``).
The child writes its result to a JSON file; its console is only kept as a log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tilefarm import errors
from tilefarm.blender.side import protocol
from tilefarm.runtime import memory
from tilefarm.runtime.procs import kill_tree, log_tail

BLENDER_ENV = "TILEFARM_BLENDER"
# Set, no bpy child starts: ``scripts/test --quick`` proves its tests need no Blender.
NO_BLENDER_ENV = "TILEFARM_NO_BLENDER"
LOG_DIR_ENV = "TILEFARM_LOG_DIR"
BLENDER_SIDE = Path(__file__).resolve().parent / "side"
MAIN_SCRIPT = BLENDER_SIDE / "main.py"
DEFAULT_TIMEOUT = 3600.0

# The only variables a Blender child inherits from tilefarm's environment. The child opens
# untrusted .blend files, so nothing else reaches it: no cloud or Git credentials
# (AWS_*, GITHUB_TOKEN), no agent sockets (SSH_AUTH_SOCK), no PYTHON* or BLENDER_* variable
# that would change which code runs, no LD_PRELOAD. Each entry is what Blender, OpenColorIO,
# a GPU runtime or the C library needs:
_INHERITED = frozenset({
    "PATH",  # how Blender and the GPU runtimes find the tools they exec (argv[0] is absolute)
    "LANG", "LANGUAGE",  # the locale: the encoding of file names Blender and Python decode
    "TZ",  # the time zone of the dates Blender writes (render stamps, EXR/PNG metadata)
    "TMPDIR",  # the admin's scratch dir; a container's /tmp may be small or read-only
    # A studio's OpenColorIO config: view transforms decide every final pixel, so the child
    # must see the config the artist's Blender sees.
    "OCIO",
    # Where GPU drivers (libcuda, ROCm's libamdhip64, oneAPI's Level Zero) and a registered
    # Blender executable's own libraries live when not in ld.so.conf; the parent already
    # loads with it, so it lets the child load nothing the parent could not.
    "LD_LIBRARY_PATH",
    # GPU selection: which devices a worker was given (Kubernetes, the NVIDIA/AMD container
    # runtimes and schedulers assign devices through these) and the runtimes' settings.
    "ROCR_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL",  # AMD ROCm
    "ONEAPI_DEVICE_SELECTOR",  # Intel oneAPI (Cycles' oneAPI device)
})
_INHERITED_PREFIXES = (
    "LC_",  # the locale categories (LC_ALL, LC_CTYPE...), as LANG
    "CUDA_",  # CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER, CUDA_CACHE_PATH (kernel JIT cache)
    "NVIDIA_",  # NVIDIA_VISIBLE_DEVICES, NVIDIA_DRIVER_CAPABILITIES: a GPU pod's device contract
    "HIP_",  # HIP_VISIBLE_DEVICES: AMD HIP device selection
    "HSA_",  # HSA_OVERRIDE_GFX_VERSION: lets ROCm run on GPUs it does not list
    "SYCL_",  # SYCL_CACHE_PERSISTENT, SYCL_DEVICE_FILTER: Intel oneAPI's runtime
    "OIDN_",  # OpenImageDenoise's device and thread settings: the denoiser runs here
    # Thread pools and CPU paths of the numeric libraries bpy imports (numpy and its BLAS):
    # OMP_NUM_THREADS keeps a worker inside its share of the cores; OPENBLAS_CORETYPE pins
    # OpenBLAS's kernel where its CPU detection fails (this would crash numpy's import);
    # MKL_CBWR pins MKL's code path for an MKL-built numpy.
    "OMP_", "OPENBLAS_", "MKL_",
)
# Left out on purpose: HOME (set to the private home below, so nothing reads ~/.aws,
# ~/.ssh or ~/.config), XDG_* (Blender in background opens no display or session bus, and
# XDG_RUNTIME_DIR holds the user's agent and D-Bus sockets), PWD (Blender resolves
# relative paths against $PWD before getcwd(), and an inherited one can name another
# directory than the child's cwd), DISPLAY, LD_PRELOAD, PYTHON*, BLENDER_*.


def refuse_if_no_blender(argv: list[str]) -> None:
    """Under ``TILEFARM_NO_BLENDER``, refuse to start a child that runs Blender: tilefarm's
    own entry script or a script importing bpy (the runner's own tests run plain Python
    scripts through it, which pass)."""
    if not os.environ.get(NO_BLENDER_ENV):
        return
    for arg in argv:
        if not arg.endswith(".py"):
            continue
        try:
            blender = Path(arg) == MAIN_SCRIPT or "import bpy" in Path(arg).read_text("utf-8")
        except OSError:
            blender = False
        if blender:
            raise errors.BlenderError(f"{NO_BLENDER_ENV} is set, so Blender may not start here "
                                      "(a test that needs Blender is marked blender)")


def inherited_env(base: Mapping[str, str]) -> dict[str, str]:
    """The allow-listed part of ``base``: what a Blender child may inherit."""
    return {k: v for k, v in base.items()
            if k in _INHERITED or k.startswith(_INHERITED_PREFIXES)}


# glibc malloc settings for a child that composites frame after frame: freed memory stays in
# the heap instead of going back to the kernel, so each frame's large buffers (the Denoise
# node's among them) are reused rather than page-faulted in afresh. At 640x360 the denoised
# compose went from 1.38 s to 1.20 s a frame; the cost is that the child keeps its peak
# memory (about 0.3 GB more there). Other allocators ignore these variables.
KEEP_HEAP = {"MALLOC_MMAP_THRESHOLD_": str(4 << 30), "MALLOC_TRIM_THRESHOLD_": str(64 << 30)}

# Blender's per-user directories, each pointed at an empty private one.
_USER_DIRS = ("config", "scripts", "datafiles", "extensions")

# Kinds of error the Blender side reports, and the exception each becomes.
_ERROR_KINDS: dict[str, type[errors.TilefarmError]] = {
    "BlendFileError": errors.BlendFileError,
    "SceneError": errors.SceneError,
    "SettingsError": errors.SettingsError,
    "RenderError": errors.RenderError,
    "MergeError": errors.MergeError,
    "BlenderError": errors.BlenderError,
}


@dataclass(frozen=True)
class Invocation:
    """What a run executes: the argv list and environment. Tests assert these exactly."""

    argv: list[str]
    env: dict[str, str]


@dataclass
class BlenderRunner:
    """Runs one Blender-side script per call in a fresh child process."""

    executable: str | None = field(default_factory=lambda: os.environ.get(BLENDER_ENV) or None)
    python: str | None = None  # the interpreter whose bpy runs the scripts; None: this one
    version: str | None = None  # the Blender version of the runtime, where known (a cache key)
    timeout: float = DEFAULT_TIMEOUT
    log_dir: Path | None = None
    popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen
    last_log: Path | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)  # set in the child, e.g. KEEP_HEAP

    def invocation(self, script: Path, request: Path, result: Path, home: Path,
                   base_env: Mapping[str, str] | None = None) -> Invocation:
        """The argv and environment that run ``script`` with ``request`` -> ``result``."""
        env = inherited_env(os.environ if base_env is None else base_env)
        env["HOME"] = str(home)  # the private, empty home: no ~/.aws, ~/.ssh, ~/.config
        for name in _USER_DIRS:
            env[f"BLENDER_USER_{name.upper()}"] = str(home / name)
        env["PYTHONNOUSERSITE"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        if self.executable:
            argv = [self.executable, "--background", "--factory-startup", "--disable-autoexec",
                    "--python-exit-code", "3", "--python", str(script), "--",
                    str(request), str(result)]
        else:
            # -I: isolated mode, no PYTHON* variables, no user site, no script dir on sys.path.
            argv = [self.python or sys.executable, "-I", str(script), "--", str(request),
                    str(result)]
        return Invocation(argv=argv, env=env)

    def run(self, request: protocol.Request, *, label: str = "blender",
            timeout: float | None = None, on_line: Callable[[str], None] | None = None) -> Any:
        """Run one typed request in a fresh child and return its result; raise a typed
        error on failure. ``on_line`` sees each console line as it comes, for progress only."""
        return self.run_script(MAIN_SCRIPT, protocol.encode(request), label=label,
                               timeout=timeout, on_line=on_line)

    def run_script(self, script: Path, request: Mapping[str, Any], *, label: str = "blender",
                   timeout: float | None = None,
                   on_line: Callable[[str], None] | None = None) -> Any:
        """Run another Blender-side ``script`` (the test fixtures' builder) on a JSON request."""
        limit = self.timeout if timeout is None else timeout
        with tempfile.TemporaryDirectory(prefix="tilefarm-blender-") as tmp:
            work = Path(tmp)
            request_path, result_path = work / "request.json", work / "result.json"
            request_path.write_text(json.dumps(request), encoding="utf-8")
            inv = self.invocation(script, request_path, result_path, _private_home(work))
            log = self._log_path(label)
            self.last_log = log
            returncode = self._execute(inv, log, limit, on_line)
            return self._result(result_path, returncode, log, label, request)

    def _log_path(self, label: str) -> Path:
        base = self.log_dir or Path(os.environ.get(LOG_DIR_ENV)
                                    or Path(tempfile.gettempdir()) / "tilefarm-logs")
        base.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
        return base / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"

    def _execute(self, inv: Invocation, log: Path, limit: float,
                 on_line: Callable[[str], None] | None) -> int:
        refuse_if_no_blender(inv.argv)
        with log.open("wb") as sink:
            proc = self.popen(inv.argv, env=inv.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
            # A thread copies the console to the log, so a silent, hung Blender still
            # meets the deadline of proc.wait below.
            pump = threading.Thread(target=_pump, args=(proc, sink, on_line), daemon=True)
            pump.start()
            try:
                returncode = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                kill_tree(proc)
                raise errors.BlenderTimeout(f"Blender did not finish within {limit:g} s; "
                                            "raise the task timeout or split the work",
                                            log=log) from None
            except BaseException:
                kill_tree(proc)
                raise
            finally:
                pump.join(timeout=5)
            return returncode

    def _result(self, result_path: Path, returncode: int, log: Path, label: str,
                request: Mapping[str, Any]) -> Any:
        blend = request.get("blend")
        try:
            document = json.loads(result_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            tail = log_tail(log, 3, "(nothing)")
            raise errors.BlenderError(
                f"Blender exited with code {returncode} without a result ({label}); "
                f"last output: {tail}", path=blend, log=log) from None
        if document.get("ok"):
            return document.get("result")
        error = document.get("error") or {}
        kind = _ERROR_KINDS.get(error.get("kind", ""), errors.BlenderError)
        message = error.get("message") or "Blender reported an unknown error"
        path = error.get("path") or blend
        if issubclass(kind, errors.BlenderError):
            raise kind(message, path=path, log=log)
        raise kind(message, path=path)


class BlenderSession:
    """One warm Blender child answering many requests (``-- --session``), one at a time.

    The child keeps its .blend loaded between requests that share it; a request
    that times out kills the child, and the next request starts a fresh one.
    """

    def __init__(self, runner: BlenderRunner, *, label: str = "session",
                 script: Path = MAIN_SCRIPT) -> None:
        self.runner = runner
        self.label = label
        self.script = script
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self._work: Path | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._count = 0
        self.log: Path | None = None

    def __enter__(self) -> "BlenderSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> subprocess.Popen[bytes]:
        self._tmp = tempfile.TemporaryDirectory(prefix="tilefarm-session-")
        self._work = Path(self._tmp.name)
        inv = self.runner.invocation(self.script, self._work, self._work, _private_home(self._work))
        argv = inv.argv[: inv.argv.index("--") + 1] + ["--session"]
        refuse_if_no_blender(argv)
        self.log = self.runner._log_path(self.label)
        sink = self.log.open("wb")
        proc = self.runner.popen(argv, env=inv.env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        self._pump = threading.Thread(target=_pump_and_close, args=(proc, sink), daemon=True)
        self._pump.start()
        self._proc = proc
        return proc

    def start(self) -> None:
        """Start the child now, to boot while its first request is not yet known."""
        if self._proc is None or self._proc.poll() is not None:
            self._start()

    def call(self, request: protocol.Request, *, timeout: float | None = None,
             memory_limit: int | None = None) -> Any:
        """Send one typed request to the warm child and wait for its result. A child whose
        resident memory passes ``memory_limit`` bytes is stopped (``BlenderMemory``), as
        is one the kernel's OOM killer ended."""
        proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
        oom_before = memory.oom_kills()
        seen = 0
        assert self._work is not None and proc.stdin is not None
        self._count += 1
        request_path = self._work / f"request-{self._count}.json"
        result_path = self._work / f"result-{self._count}.json"
        document = protocol.encode(request)
        request_path.write_text(json.dumps(document), encoding="utf-8")
        try:
            proc.stdin.write(f"{request_path}\t{result_path}\n".encode())
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # the child died; reported below with its log
        limit = self.runner.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not result_path.exists():
            if proc.poll() is not None:
                break
            seen = max(seen, memory.resident(proc.pid))
            if memory_limit is not None and seen > memory_limit:
                self.close()
                raise errors.BlenderMemory(memory.limit_message(memory_limit), log=self.log)
            if time.monotonic() > deadline:
                self.close()
                raise errors.BlenderTimeout(f"Blender did not finish within {limit:g} s; "
                                            "raise the task timeout or split the work",
                                            log=self.log)
            time.sleep(0.02)
        returncode = proc.poll()
        assert self.log is not None
        if returncode == -signal.SIGKILL and memory.oom_kills() > oom_before:
            self.close()
            raise errors.BlenderMemory(memory.oom_message(seen), log=self.log)
        try:
            return self.runner._result(result_path, returncode if returncode is not None else 0,
                                       self.log, self.label, document)
        finally:
            request_path.unlink(missing_ok=True)
            result_path.unlink(missing_ok=True)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.close()
                    proc.wait(timeout=10)
                except (BrokenPipeError, subprocess.TimeoutExpired):
                    pass
            kill_tree(proc)
        if self._pump is not None:
            self._pump.join(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _private_home(work: Path) -> Path:
    """An empty Blender user home (config, scripts, datafiles, extensions) under ``work``."""
    home = work / "home"
    for sub in _USER_DIRS:
        (home / sub).mkdir(parents=True)
    return home


def _pump_and_close(proc: subprocess.Popen[bytes], sink: Any) -> None:
    try:
        _pump(proc, sink, None)
    finally:
        sink.close()


def _pump(proc: subprocess.Popen[bytes], sink: Any,
          on_line: Callable[[str], None] | None) -> None:
    assert proc.stdout is not None
    for raw in iter(proc.stdout.readline, b""):
        sink.write(raw)
        if on_line is not None:
            on_line(raw.decode("utf-8", "replace").rstrip("\n"))
    sink.flush()
