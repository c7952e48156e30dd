"""A real multi-node Ray cluster on this machine, for tests and bench/overhead.py --case ray.

The head (``ray start --head --num-cpus 0``: it runs no datum) listens on the host's side
of a veth pair; each worker node is a ``tilefarm join`` run inside a network namespace of
its own (iproute2 ``ip netns``), with its own address, Ray session folder and file cache,
so that nothing is shared with the head but the network (the filesystem is, but nothing
of tilefarm's reaches a node through it: every file travels through Ray).

Without root (no ``ip netns``), the nodes are plain ``ray start`` processes on loopback,
each with its own address (127.0.0.N), session folder and cache.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tilefarm.runtime.memory import tree

BIN = Path(sys.executable).parent
PREFIX = f"tfr{os.getpid() % 10000}"  # namespace and link names of this process's cluster
CGROUP = Path("/sys/fs/cgroup/cpu")  # cgroup v1's CPU controller (Cluster.slow)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True)


def namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"{PREFIX}probe"
    ok = _run("ip", "netns", "add", probe).returncode == 0
    _run("ip", "netns", "delete", probe)
    return ok


def _clear_stale() -> None:
    """Remove the namespaces and links a killed run left (their addresses would clash)."""
    for name in _run("ip", "netns", "list").stdout.split():
        if name.startswith("tfr") and name[3:].split("n")[0].isdigit():
            _run("ip", "netns", "delete", name)
    for line in _run("ip", "-br", "link").stdout.splitlines():
        link = line.split()[0].split("@")[0] if line.strip() else ""
        if link.startswith("tfr"):
            _run("ip", "link", "delete", link)


def short_dir(name: str) -> Path:
    """A Ray session folder: its sockets' paths must stay under 108 bytes (AF_UNIX)."""
    return Path("/tmp") / f"{PREFIX}{name}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    name: str
    cache: Path
    temp: Path
    ip: str
    netns: str | None
    blender: str | None = None

    def fetched(self) -> list[tuple[str, int]]:
        from tilefarm.nodes.node import fetched

        return fetched(self.cache)

    def pids(self) -> list[int]:
        """Every process of this node: its raylet's tree, and in a namespace, all of it."""
        found: set[int] = set()
        if self.netns is not None:
            found.update(int(p) for p in _run("ip", "netns", "pids", self.netns).stdout.split())
        for raylet in _run("pgrep", "-f", f"raylet.*{self.temp}").stdout.split():
            found.update(tree(int(raylet)))
        return sorted(found)

    def blenders(self, stage: str) -> set[int]:
        """The Blender processes a stage's worker on this node started (``-m STAGE``)."""
        found = set()
        for pid in self.pids():
            if f"-m {stage}".encode() in _cmdline(pid):
                found.update(p for p in tree(pid) if b"side/main.py" in _cmdline(p))
        return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


@dataclass
class Cluster:
    root: Path
    netns: bool = field(default_factory=namespaces_work)
    port: int = field(default_factory=free_port)
    nodes: dict[str, Node] = field(default_factory=dict)
    links: int = 0

    @property
    def head_ip(self) -> str:
        return "10.77.0.1" if self.netns else "127.0.0.1"

    @property
    def address(self) -> str:
        return f"{self.head_ip}:{self.port}"

    def start(self) -> "Cluster":
        if self.netns:
            _clear_stale()
            # The head's own address sits on the host's loopback, so every namespace reaches
            # it through its veth and the host's routing.
            _run("ip", "addr", "add", f"{self.head_ip}/32", "dev", "lo")
            _run("sysctl", "-w", "net.ipv4.ip_forward=1")
        self.root.mkdir(parents=True, exist_ok=True)
        done = _run(str(BIN / "ray"), "start", "--head", "--num-cpus", "0", "--port",
                    str(self.port), "--node-ip-address", self.head_ip, "--temp-dir",
                    str(short_dir("head")), "--include-dashboard", "false",
                    "--disable-usage-stats")
        if done.returncode != 0:
            raise RuntimeError(f"ray start --head failed: {done.stderr[-2000:]}")
        return self

    def join(self, name: str, blender: str | None = None, cpus: int = 1,
             memory: str | None = None, core: int | None = None,
             tags: str | None = None) -> Node:
        """Start a worker node with ``tilefarm join``; returns once it has joined. ``core``:
        pin the whole node (raylet, workers, Blender) to that core (``taskset``), so that its
        one CPU is one core, denoising and compositing included."""
        self.links += 1
        n = self.links
        netns = f"{PREFIX}n{n}" if self.netns else None
        ip = f"10.77.{n}.2" if netns else f"127.0.0.{n + 1}"  # all of 127/8 is loopback
        if netns is not None:
            host, inner = f"{PREFIX}v{n}", f"{PREFIX}p{n}"
            for argv in (["ip", "netns", "add", netns],
                         ["ip", "link", "add", host, "type", "veth", "peer", "name", inner],
                         ["ip", "link", "set", inner, "netns", netns],
                         ["ip", "addr", "add", f"10.77.{n}.1/24", "dev", host],
                         ["ip", "link", "set", host, "up"],
                         ["ip", "netns", "exec", netns, "ip", "addr", "add", f"{ip}/24", "dev",
                          inner],
                         ["ip", "netns", "exec", netns, "ip", "link", "set", inner, "up"],
                         ["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"],
                         ["ip", "netns", "exec", netns, "ip", "route", "add", "default", "via",
                          f"10.77.{n}.1"]):
                done = _run(*argv)
                if done.returncode != 0:
                    raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
        node = Node(name, self.root / f"cache-{name}-{n}", short_dir(f"{name}{n}"), ip, netns,
                    blender)
        argv = [str(BIN / "tilefarm"), "join", self.address, "--cpus", str(cpus),
                "--cache", str(node.cache), "--temp-dir", str(node.temp),
                "--node-ip-address", ip]
        if blender:
            argv += ["--blender", blender]
        if memory:
            argv += ["--memory", memory]
        if tags:
            argv += ["--tags", tags]
        if core is not None:
            argv = ["taskset", "-c", str(core), *argv]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        done = _run(*argv)
        if done.returncode != 0:
            raise RuntimeError(f"tilefarm join failed: {done.stderr.strip()[-2000:]}")
        self.nodes[name] = node
        return node

    def slow(self, name: str, factor: int) -> None:
        """Make node ``name`` ``factor`` times slower, as a throttled machine is: its
        processes, and those they start, get 1/factor of a CPU (a cgroup v1 CFS quota). Done
        once it has joined: Ray's start-up times out under a tight quota."""
        group = CGROUP / f"{PREFIX}{name}"
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text(str(100000 // factor))
        for pid in self.nodes[name].pids():
            try:
                (group / "cgroup.procs").write_text(str(pid))
            except OSError:
                pass  # it has ended

    def kill(self, name: str) -> None:
        """The node dies: SIGKILL its raylet, workers, stage processes and Blenders."""
        node = self.nodes.pop(name)
        for pid in node.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self._drop_netns(node)

    def _drop_netns(self, node: Node) -> None:
        if node.netns is not None:
            for pid in _run("ip", "netns", "pids", node.netns).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
            _run("ip", "netns", "delete", node.netns)

    def stop(self) -> None:
        for name in list(self.nodes):
            self.kill(name)
        _run(str(BIN / "ray"), "stop", "--force")
        for group in CGROUP.glob(f"{PREFIX}*"):
            try:
                group.rmdir()  # its processes were killed with their nodes
            except OSError:
                pass
        for folder in Path("/tmp").glob(f"{PREFIX}*"):
            shutil.rmtree(folder, ignore_errors=True)
        if self.netns:
            _run("ip", "addr", "delete", f"{self.head_ip}/32", "dev", "lo")
            for n in range(1, self.links + 1):
                _run("ip", "link", "delete", f"{PREFIX}v{n}")
        time.sleep(0.5)
