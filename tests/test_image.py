"""The pipeline image, built with the docker SDK and run the way a Pachyderm worker runs it:
each datum in its own container, inputs read-only under /pfs/<input>, output in /pfs/out,
the per-input env vars set, no network. Its frames must match a local run's bit for bit.

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
import time
from pathlib import Path
from typing import Any

import pytest
from tilefarm.pipelines.image import content_tag, prepare_context

from tests.conftest import ROOT, Scenes
from tests.pipeline import assert_identical, run_pipeline
from tilefarm.plan.settings import JobSettings

pytestmark = [pytest.mark.blender, pytest.mark.docker]


@pytest.fixture(scope="module")
def docker_client() -> Any:
    docker = pytest.importorskip("docker")
    tar = os.environ.get("TILEFARM_BASE_TAR")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the container test, but no Docker daemon answers: {exc}")
        pytest.skip(f"no Docker daemon ({exc}); run scripts/test as root to set one up")
    if not tar or not Path(tar).is_file():
        if os.environ.get("CI"):
            pytest.fail("CI must run the container test, but TILEFARM_BASE_TAR is not set")
        pytest.skip("no base root filesystem (TILEFARM_BASE_TAR); see scripts/docker-setup")
    return client


@pytest.fixture(scope="module")
def base_image(docker_client: Any) -> str:
    """The root filesystem imported once per version of the tarball."""
    import docker

    tar = Path(os.environ["TILEFARM_BASE_TAR"])
    stat = tar.stat()
    tag = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    try:
        docker_client.images.get(f"tilefarm-base:{tag}")
    except docker.errors.ImageNotFound:
        docker_client.api.import_image_from_file(str(tar), repository="tilefarm-base", tag=tag)
    return f"tilefarm-base:{tag}"


@pytest.fixture(scope="module")
def image(docker_client: Any, base_image: str) -> str:
    prepare_context(ROOT)
    ref = f"tilefarm-ci:{content_tag(ROOT)}"
    started = time.monotonic()
    docker_client.images.build(path=str(ROOT), tag=ref, rm=True, network_mode="none",
                               buildargs={"BASE_IMAGE": base_image})
    size = docker_client.images.get(ref).attrs["Size"]
    print(f"\nimage {ref}: built in {time.monotonic() - started:.0f} s, {size / 2**20:.0f} MiB")
    # Keep this build (its layers make the next one fast), not older ones: vfs stores
    # every layer whole.
    for old in docker_client.images.list(name="tilefarm-ci"):
        if ref not in old.tags:
            docker_client.images.remove(old.id, force=True)
    docker_client.images.prune(filters={"dangling": True})
    return ref


def run_datum(client: Any, image: str, stage: str, pfs: Path, inputs: list[str],
              env: dict[str, str], out: Path) -> None:
    """One datum in one container, mounted as a Pachyderm worker mounts it."""
    out.mkdir(parents=True)
    volumes = {str(pfs / name): {"bind": f"/pfs/{name}", "mode": "ro"} for name in inputs}
    volumes[str(out)] = {"bind": "/pfs/out", "mode": "rw"}
    container = client.containers.run(image, ["python3", "-m", f"tilefarm.{stage}"], environment=env,
                                      volumes=volumes, network_mode="none", detach=True)
    try:
        status = container.wait(timeout=900)
        logs = container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, f"{stage} {env}: {logs[-2000:]}"


def collect(outs: list[Path], into: Path) -> None:
    for out in outs:
        shutil.copytree(out, into, dirs_exist_ok=True)


def test_stages_in_containers_match_the_local_run(docker_client: Any, image: str,
                                                  scenes: Scenes, tmp_path: Path) -> None:
    job = tmp_path / "src" / "shot"
    job.mkdir(parents=True)
    shutil.copy(scenes["odd_size"], job / "shot.blend")
    (job / "tilefarm.json").write_text(json.dumps({"tiles": "2x2", "chunk": 2}))
    pfs = tmp_path / "pfs"
    shutil.copytree(job, pfs / "blends" / "shot")
    n = iter(range(100))

    def datum(stage: str, inputs: list[str], env: dict[str, str]) -> Path:
        out = tmp_path / "outs" / f"{stage}-{next(n)}"
        run_datum(docker_client, image, stage, pfs, inputs, env, out)
        return out

    collect([datum("splitter", ["blends"], {"blends": "/pfs/blends/shot"})], pfs / "splitter")
    tasks = sorted((pfs / "splitter" / "shot" / "tasks").iterdir())
    assert len(tasks) == 4
    collect([datum("renderer", ["splitter", "blends"],
                   {"splitter": f"/pfs/splitter/shot/tasks/{t.name}", "blends": "/pfs/blends/shot"})
             for t in tasks], pfs / "renderer")
    collect([datum("merger", ["renderer", "splitter", "blends"],
                   {"renderer": f"/pfs/renderer/shot/tiles/{frame}",
                    "splitter": "/pfs/splitter/shot/plan.json", "blends": "/pfs/blends/shot"})
             for frame in ("000001", "000002")], pfs / "merger")
    collect([datum("encoder", ["merger", "splitter", "blends"],
                   {"merger": "/pfs/merger/shot", "splitter": "/pfs/splitter/shot/plan.json",
                    "blends": "/pfs/blends/shot"})], pfs / "encoder")

    local = run_pipeline(job, tmp_path / "local", JobSettings())
    frames = sorted((pfs / "merger" / "shot" / "frames").iterdir())
    assert [f.name for f in frames] == ["000001.png", "000002.png"]
    for frame in frames:
        assert_identical(frame, local.frame(int(frame.stem)))
    assert (pfs / "encoder" / "shot" / "shot.mp4").stat().st_size > 0
