"""The pipeline image, built with the docker SDK and run the way a Pachyderm worker runs it:
a worker container per stage running its datums one after another, inputs read-only under
/pfs/<input>, output in /pfs/out, each datum's per-input env vars set, no network. Its
frames must match a local run's bit for bit.

The stages run as uid 1000, as the image says, never root.

Needs a Docker daemon and the Debian base image's root filesystem: ``scripts/test``
sets both up as root (``scripts/docker-setup``) and exports DOCKER_HOST and
TILEFARM_BASE_TAR. Where they are missing the test is skipped, except in CI
(``CI`` set), where that is a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from tilefarm.pipelines.image import content_tag, prepare_context

from tests import early
from tests.conftest import ROOT, Scenes
from tests.pipeline import assert_identical, run_pipeline
from tilefarm.plan.settings import JobSettings

pytestmark = [pytest.mark.blender, pytest.mark.docker]


def reachable_docker() -> tuple[Any, Path] | str:
    """A client of a Docker daemon that answers, and the base root filesystem tarball; or
    why there is none."""
    try:
        import docker
    except ImportError:
        return "the docker SDK is not installed"
    tar = os.environ.get("TILEFARM_BASE_TAR")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        return f"no Docker daemon answers ({exc}); run scripts/test as root to set one up"
    if not tar or not Path(tar).is_file():
        return "no base root filesystem (TILEFARM_BASE_TAR); see scripts/docker-setup"
    return client, Path(tar)


@pytest.fixture(scope="module")
def docker_client() -> Any:
    found = reachable_docker()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the container test, but {found}")
        pytest.skip(found)
    return found[0]


# What a Debian image's config says and a bare root filesystem's import lacks.
DEBIAN_PATH = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_image(client: Any, tar: Path, scratch: Path) -> str:
    """The root filesystem imported once per version of the tarball, as a Debian image is:
    with Debian's PATH, and a root directory everyone may traverse (the tarball records the
    mode of the temporary directory it was made in, 0700, which would shut the image's
    unprivileged user out of everything)."""
    import docker

    stat = tar.stat()
    version = f"{stat.st_size}:{stat.st_mtime_ns}:root0755:path"
    tag = hashlib.sha256(version.encode()).hexdigest()[:12]
    try:
        client.images.get(f"tilefarm-base:{tag}")
    except docker.errors.ImageNotFound:
        opened = open_root(tar, scratch / "rootfs.tar")
        client.api.import_image_from_file(str(opened), repository="tilefarm-base", tag=tag,
                                          changes=[DEBIAN_PATH])
        opened.unlink()
    return f"tilefarm-base:{tag}"


def open_root(source: Path, target: Path) -> Path:
    """A copy of a root filesystem tarball whose root directory entry is mode 0755."""
    with tarfile.open(source) as src, tarfile.open(target, "w", format=src.format) as dst:
        for member in src:
            if member.isdir() and member.name in (".", "./", "/", ""):
                member.mode = 0o755
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)
    return target


def build_image(client: Any, tar: Path, scratch: Path) -> str:
    """The pipeline image built from the checkout on the base image; its reference."""
    base = base_image(client, tar, scratch)
    with early.WHEEL_BUILD:
        prepare_context(ROOT)
    ref = f"tilefarm-ci:{content_tag(ROOT)}"
    started = time.monotonic()
    client.images.build(path=str(ROOT), tag=ref, rm=True, network_mode="none",
                        buildargs={"BASE_IMAGE": base})
    size = client.images.get(ref).attrs["Size"]
    print(f"\nimage {ref}: built in {time.monotonic() - started:.0f} s, {size / 2**20:.0f} MiB")
    # Keep this build (its layers make the next one fast), not older ones: the vfs driver
    # (scripts/docker-setup's fallback) stores every layer whole.
    for old in client.images.list(name="tilefarm-ci"):
        if ref not in old.tags:
            client.images.remove(old.id, force=True)
    client.images.prune(filters={"dangling": True})
    return ref


def build_here(factory: pytest.TempPathFactory) -> str:
    found = reachable_docker()
    assert not isinstance(found, str), found  # the docker_client fixture checked it first
    client, tar = found
    return build_image(client, tar, factory.mktemp("base"))


# Built beside the first tests (tests/early.py), where Docker answers.
IMAGE = early.Preparation("image", build_here, when=lambda: not isinstance(reachable_docker(), str))


@pytest.fixture(scope="module")
def image(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    return IMAGE.result(tmp_path_factory)


# The image runs as this user, not root (Dockerfile, USER).
STAGE_UID = 1000


def readable(tree: Path) -> None:
    """Let the stage user read (and traverse) a host tree it gets mounted read-only."""
    for path in [tree, *tree.rglob("*")]:
        path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))


def run_datums(client: Any, image: str, stage: str, pfs: Path, inputs: list[str],
               envs: list[dict[str, str]], outs: Path) -> list[Path]:
    """Each datum of ``envs`` run by one worker container of ``stage``, mounted as a
    Pachyderm worker mounts it: inputs read-only under /pfs/<input>, /pfs/out emptied for
    each datum (here: its files moved to ``outs/<stage>-<n>``, which is returned), the
    datum's env vars set for its run. One container serves them all, as a worker does:
    with the vfs driver (scripts/docker-setup's fallback) each container costs a copy of
    the whole image. pytest's temporary directories are private to the host user, so the
    mounted ones are opened up to the stage user: inputs readable, /pfs/out writable."""
    out = outs / f"{stage}-out"
    out.mkdir(parents=True)
    out.chmod(0o777)
    for name in inputs:
        readable(pfs / name)
    volumes = {str(pfs / name): {"bind": f"/pfs/{name}", "mode": "ro"} for name in inputs}
    volumes[str(out)] = {"bind": "/pfs/out", "mode": "rw"}
    container = client.containers.run(image, ["sleep", "infinity"], volumes=volumes,
                                      network_mode="none", detach=True)
    made = []
    try:
        for n, env in enumerate(envs):
            code, logs = container.exec_run(["python3", "-m", f"tilefarm.{stage}"],
                                            environment=env)
            assert code == 0, f"{stage} {env}: {logs.decode('utf-8', 'replace')[-2000:]}"
            made.append(outs / f"{stage}-{n}")
            made[-1].mkdir()
            for path in list(out.iterdir()):
                path.rename(made[-1] / path.name)
    finally:
        container.remove(force=True)
    return made


def collect(outs: list[Path], into: Path) -> None:
    for out in outs:
        written = [p for p in out.rglob("*") if p.is_file()]
        assert written and {p.stat().st_uid for p in written} == {STAGE_UID}, out
        shutil.copytree(out, into, dirs_exist_ok=True)


def run_command(client: Any, image: str, argv: list[str]) -> str:
    output = client.containers.run(image, argv, network_mode="none", remove=True)
    return str(output.decode("utf-8")).strip()


def test_image_runs_as_an_unprivileged_user(docker_client: Any, image: str) -> None:
    # One container answers every question: each container costs a copy of the whole image
    # with the vfs storage driver (about 25 s), scripts/docker-setup's fallback.
    probe = ("import os, pathlib, sys, sysconfig; "
             "print(os.getuid(), os.getgid(), os.access('/opt/tilefarm/lib', os.W_OK), "
             "os.access('/pfs/out', os.W_OK)); "
             "root = pathlib.Path(sysconfig.get_paths()['purelib'], 'bpy'); "
             "tag = sys.implementation.cache_tag; "
             "print(len(list(root.rglob('*.py'))), len(list(root.rglob(f'*.{tag}.pyc'))))")
    identity, bytecode = run_command(docker_client, image, ["python3", "-c", probe]).splitlines()
    assert identity == f"{STAGE_UID} {STAGE_UID} False True"
    # The code is root's and read-only to the stages; their output directory is theirs.
    # bpy's bytecode is in the image: no Blender child recompiles its scripts.
    sources, compiled = bytecode.split()
    assert int(sources) > 100 and compiled == sources


def test_stages_in_containers_match_the_local_run(docker_client: Any, image: str,
                                                  scenes: Scenes, tmp_path: Path) -> None:
    job = tmp_path / "src" / "shot"
    job.mkdir(parents=True)
    shutil.copy(scenes["odd_size"], job / "shot.blend")
    # Two tiles of two frames a task: tiles, chunks and two merges, in one container a stage.
    (job / "tilefarm.json").write_text(json.dumps({"tiles": "2x1", "chunk": 2}))
    pfs = tmp_path / "pfs"
    shutil.copytree(job, pfs / "blends" / "shot")
    outs = tmp_path / "outs"
    collect(run_datums(docker_client, image, "splitter", pfs, ["blends"],
                       [{"blends": "/pfs/blends/shot"}], outs), pfs / "splitter")
    tasks = sorted((pfs / "splitter" / "shot" / "tasks").iterdir())
    assert len(tasks) == 2
    collect(run_datums(docker_client, image, "renderer", pfs, ["splitter", "blends"],
                       [{"splitter": f"/pfs/splitter/shot/tasks/{t.name}",
                         "blends": "/pfs/blends/shot"} for t in tasks], outs), pfs / "renderer")
    collect(run_datums(docker_client, image, "merger", pfs, ["renderer", "splitter", "blends"],
                       [{"renderer": f"/pfs/renderer/shot/tiles/{frame}",
                         "splitter": "/pfs/splitter/shot/plan.json",
                         "blends": "/pfs/blends/shot"} for frame in ("000001", "000002")],
                       outs), pfs / "merger")
    collect(run_datums(docker_client, image, "encoder", pfs, ["merger", "splitter", "blends"],
                       [{"merger": "/pfs/merger/shot", "splitter": "/pfs/splitter/shot/plan.json",
                         "blends": "/pfs/blends/shot"}], outs), pfs / "encoder")

    local = run_pipeline(job, tmp_path / "local", JobSettings())
    frames = sorted((pfs / "merger" / "shot" / "frames").iterdir())
    assert [f.name for f in frames] == ["000001.png", "000002.png"]
    for frame in frames:
        assert_identical(frame, local.frame(int(frame.stem)))
    assert (pfs / "encoder" / "shot" / "shot.mp4").stat().st_size > 0
