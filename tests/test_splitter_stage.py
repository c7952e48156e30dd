"""``python -m tilefarm.splitter`` reading its datum the way a Pachyderm worker presents it."""

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import Scenes, assert_one_line_error, run_cli
from tilefarm.plan.model import Plan, TaskManifest
from tilefarm.plan.schemas import read_json

pytestmark = pytest.mark.blender


@pytest.fixture
def pfs(tmp_path: Path, scenes: Scenes) -> Path:
    blends = tmp_path / "pfs" / "blends"
    (blends / "shot").mkdir(parents=True)
    shutil.copy(scenes["plain"], blends / "plain.blend")
    shutil.copy(scenes["odd_size"], blends / "shot" / "scene.blend")
    (blends / "shot" / "tilefarm.json").write_text(json.dumps({"tiles": "3x2", "chunk": 2}))
    return tmp_path / "pfs"


def test_one_datum_from_the_input_env_var(pfs: Path) -> None:
    # A worker sets $blends to the datum's path under /pfs; the root is moved for the test.
    proc = run_cli("-m", "tilefarm.splitter", "--pfs-root", str(pfs), env={"blends": "/pfs/blends/shot"})
    assert proc.returncode == 0, proc.stderr
    out = pfs / "out"
    assert sorted(p.name for p in out.iterdir()) == ["shot"]
    plan = read_json(out / "shot" / "plan.json", "plan", Plan)
    tasks = sorted((out / "shot" / "tasks").iterdir())
    assert [t.stem for t in tasks] == [t.id for t in plan.tasks]
    assert len(tasks) == 6
    manifest = read_json(tasks[4], "task", TaskManifest)
    assert manifest.blend == "shot/scene.blend" and manifest.task == plan.tasks[4]
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporaries left


def test_every_entry_without_the_env_var(pfs: Path) -> None:
    proc = run_cli("-m", "tilefarm.splitter", "--pfs-root", str(pfs), env={"blends": ""})
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (pfs / "out").iterdir()) == ["plain", "shot"]
    assert len(list((pfs / "out" / "plain" / "tasks").iterdir())) == 3


def test_bad_job_settings_fail_the_datum_with_one_line(pfs: Path) -> None:
    (pfs / "blends" / "shot" / "tilefarm.json").write_text('{"tiles": "2x2", "chunks": 2}')
    proc = run_cli("-m", "tilefarm.splitter", "--pfs-root", str(pfs), env={"blends": "/pfs/blends/shot"})
    assert_one_line_error(proc, "shot/tilefarm.json", "unknown key(s) 'chunks'")
    assert not (pfs / "out" / "shot").exists()
