"""Tracing a job's dependencies and packing it self-contained (``splitter/assets.py`` and
``splitter/pack.py``, both on Blender Asset Tracer) on real fixtures from
``tests/scenes/build_assets.py``: a packed job, copied anywhere, renders the same pixels."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import zstandard

from tests.conftest import BUILD_ASSETS, Assets
from tilefarm.blender.runner import BlenderRunner
from tilefarm.errors import BlendFileError, JobSourceError
from tilefarm.splitter.assets import Dependency, trace
from tilefarm.splitter.pack import OUTSIDE, Packed, pack

pytestmark = pytest.mark.blender

ROOT = Path(__file__).resolve().parent.parent
COMPLETE = ["relative", "absolute", "absolute_inside", "parent", "sequence", "udim", "library",
            "cache", "geometry_nodes"]




def _materialise(packed: Packed, dest: Path) -> Path:
    """Copy the entries as the caller's store would lay them out; the packed main .blend."""
    for job_path, source in packed.entries:
        (dest / job_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest / job_path)
    return dest / "shot.blend"


@dataclass(frozen=True)
class PackedJob:
    packed: Packed
    work: Path
    main: Path  # the packed main .blend, materialised in a fresh directory


@pytest.fixture(scope="session")
def packed_jobs(assets: Assets, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PackedJob]:
    jobs = {}
    for case in sorted(p.name for p in assets.root.iterdir() if (p / "shot.blend").exists()):
        work = tmp_path_factory.mktemp(f"work-{case}")
        packed = pack(assets.blend(case), assets.job(case), work)
        jobs[case] = PackedJob(packed, work, _materialise(packed, tmp_path_factory.mktemp(f"packed-{case}")))
    return jobs


@pytest.fixture(scope="session")
def renders(assets: Assets, packed_jobs: dict[str, PackedJob],
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Each complete case rendered by Blender twice, in one Blender: the original in place and
    the packed copy in its fresh directory."""
    out = tmp_path_factory.mktemp("renders")
    pairs = {case: (assets.blend(case), packed_jobs[case].main) for case in COMPLETE}
    request = [[str(blend), str(out / case / side)] for case, blends in pairs.items()
               for side, blend in zip(("original", "packed"), blends)]
    frames = BlenderRunner(timeout=600).run_script(BUILD_ASSETS, {"render": request},
                                                   label="render-assets")
    return {case: (Path(frames[str(a)]), Path(frames[str(b)])) for case, (a, b) in pairs.items()}


# (kind, user, path as named, naming .blend, resolved file): {root} is the fixtures' folder.
EXPECTED = {
    "relative": [("image", "image 'a.png'", "//tex/a.png", "relative/shot.blend", "relative/tex/a.png")],
    "absolute": [("image", "image 'absolute.png'", "{root}/elsewhere/absolute.png",
                  "absolute/shot.blend", "elsewhere/absolute.png")],
    "absolute_inside": [("image", "image 'inside.png'", "{root}/absolute_inside/tex/inside.png",
                         "absolute_inside/shot.blend", "absolute_inside/tex/inside.png")],
    "parent": [("image", "image 'parent.png'", "//../tex/parent.png", "parent/shot.blend",
                "tex/parent.png")],
    "sequence": [("sequence", "image 'frame_001.png'", "//seq/frame_001.png", "sequence/shot.blend",
                  f"sequence/seq/frame_00{n}.png") for n in (1, 2, 3)],
    "udim": [("udim", "image 'wall.1001.png'", "//tex/wall.<UDIM>.png", "udim/shot.blend",
              f"udim/tex/wall.{n}.png") for n in (1001, 1002)],
    "library": [
        ("library", "library 'lib.blend'", "//lib.blend", "library/shot.blend", "library/lib.blend"),
        ("library", "library 'props.blend'", "//../libs/props.blend", "library/shot.blend",
         "libs/props.blend"),
        # found only by recursing: lib.blend's own library and texture, props.blend's textures
        ("library", "library 'props.blend'", "//../libs/props.blend", "library/lib.blend",
         "libs/props.blend"),
        ("image", "image 'lib.png'", "//tex/lib.png", "library/lib.blend", "library/tex/lib.png"),
        ("image", "image 'prop.png'", "//tex/prop.png", "libs/props.blend", "libs/tex/prop.png"),
        ("image", "image 'deep.png'", "//tex/deep.png", "libs/props.blend", "libs/tex/deep.png"),
    ],
    "cache": [("cache", "cache file 'cube.abc'", "//cache/cube.abc", "cache/shot.blend",
               "cache/cache/cube.abc"),
              ("image", "image 'floor.png'", "//tex/floor.png", "cache/shot.blend", "cache/tex/floor.png")],
    "geometry_nodes": [("image", "image 'g.png'", "//tex/g.png", "geometry_nodes/shot.blend",
                        "geometry_nodes/tex/g.png")],
    "missing_texture": [
        ("image", "image 'here.png'", "//tex/here.png", "missing_texture/shot.blend",
         "missing_texture/tex/here.png"),
        ("image", "image 'missing.png'", "//tex/missing.png", "missing_texture/shot.blend",
         "missing_texture/tex/missing.png"),
    ],
    "missing_library": [("library", "library 'gone.blend'", "//gone.blend",
                         "missing_library/shot.blend", "missing_library/gone.blend")],
}
MISSING = {"missing_texture": {"//tex/missing.png"}, "missing_library": {"//gone.blend"}}


def _rows(deps: list[Dependency], root: Path) -> set[tuple[str, ...]]:
    return {(d.kind, d.user, d.path.replace(str(root), "{root}"), d.blend.relative_to(root).as_posix(),
             d.resolved.relative_to(root).as_posix()) for d in deps}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_trace_finds_each_dependency_as_named(assets: Assets, case: str) -> None:
    deps = trace(assets.blend(case))
    assert _rows(deps, assets.root) == set(EXPECTED[case])
    assert len(deps) == len(EXPECTED[case])  # deduplicated
    assert deps == trace(assets.blend(case))  # sorted: the same order every time
    for dep in deps:
        missing = dep.path in MISSING.get(case, set())
        assert dep.exists is not missing and dep.resolved.is_absolute()
        assert dep.size == (0 if missing else dep.resolved.stat().st_size)


def test_missing_files_are_flagged_and_described(assets: Assets) -> None:
    [gone] = [d for d in trace(assets.blend("missing_texture")) if not d.exists]
    assert gone.describe() == (f"image 'missing.png' in shot.blend names //tex/missing.png "
                               f"({assets.root}/missing_texture/tex/missing.png): missing")
    [lib] = trace(assets.blend("missing_library"))
    assert (lib.kind, lib.exists, lib.size) == ("library", False, 0)


def test_a_zstd_compressed_job_traces_the_same(assets: Assets, tmp_path: Path) -> None:
    """Blender 5.x saves zstd-compressed files; BAT reads them with ``zstandard``."""
    job = tmp_path / "library"
    shutil.copytree(assets.job("library"), job)
    shutil.copytree(assets.root / "libs", tmp_path / "libs")
    for blend in [*job.glob("*.blend"), tmp_path / "libs" / "props.blend"]:
        blend.write_bytes(zstandard.ZstdCompressor().compress(blend.read_bytes()))
    rows = {(d.kind, d.user, d.path) for d in trace(job / "shot.blend")}
    assert rows == {(k, u, p) for k, u, p, _b, _r in EXPECTED["library"]}
    # BAT rewrites a compressed file decompressed, then recompresses it with gzip (which
    # Blender reads too); the unchanged library keeps its zstd bytes.
    packed = pack(job / "shot.blend", job, tmp_path / "work")
    assert packed.rewritten == ["lib.blend", "shot.blend"]
    main = _materialise(packed, tmp_path / "packed")
    assert main.read_bytes()[:2] == b"\x1f\x8b"
    assert all(d.exists and d.path.startswith("//") and not d.path.startswith("//..")
               for d in trace(main))


def test_an_unreadable_main_file_is_a_blend_file_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.blend"
    fake.write_bytes(b"PK\x03\x04 zip data")
    with pytest.raises(BlendFileError, match="no BLENDER header") as err:
        trace(fake)
    assert err.value.path == fake
    with pytest.raises(BlendFileError, match="no such file"):
        trace(tmp_path / "nope.blend")


@pytest.mark.parametrize("content, needle", [
    (lambda data: data[: len(data) // 2], "NoDNA1Block"),
    (lambda data: data[: int(len(data) * 0.99)], "truncated or damaged"),
    (lambda data: b"PK\x03\x04 zip data", "not a blend file"),
], ids=["half", "last-block-cut", "zip"])
def test_an_unreadable_library_is_named(assets: Assets, tmp_path: Path,
                                        content: Callable[[bytes], bytes], needle: str) -> None:
    job = tmp_path / "library"
    shutil.copytree(assets.job("library"), job)
    lib = job / "lib.blend"
    lib.write_bytes(content(lib.read_bytes()))
    with pytest.raises(BlendFileError, match=needle) as err:
        trace(job / "shot.blend")
    assert err.value.path == lib and str(err.value).startswith(f"{lib}: ")


# Where each file lands in the packed job ({outside} is _outside_project/<fixtures' folder>).
LAYOUT = {
    "relative": {"shot.blend", "tex/a.png"},
    "absolute": {"shot.blend", "{outside}/elsewhere/absolute.png"},
    "absolute_inside": {"shot.blend", "tex/inside.png"},
    "parent": {"shot.blend", "{outside}/tex/parent.png"},
    "sequence": {"shot.blend", "seq/frame_001.png", "seq/frame_002.png", "seq/frame_003.png"},
    "udim": {"shot.blend", "tex/wall.1001.png", "tex/wall.1002.png"},
    "library": {"shot.blend", "lib.blend", "tex/lib.png", "{outside}/libs/props.blend",
                "{outside}/libs/tex/prop.png", "{outside}/libs/tex/deep.png"},
    "cache": {"shot.blend", "cache/cube.abc", "tex/floor.png"},
    "geometry_nodes": {"shot.blend", "tex/g.png"},
    "missing_texture": {"shot.blend", "tex/here.png"},
    "missing_library": {"shot.blend"},
}
REWRITTEN = {"absolute": ["shot.blend"], "absolute_inside": ["shot.blend"], "parent": ["shot.blend"],
             "library": ["lib.blend", "shot.blend"]}


@pytest.mark.parametrize("case", sorted(LAYOUT))
def test_pack_lays_out_the_job_and_copies_nothing(assets: Assets, packed_jobs: dict[str, PackedJob],
                                                  case: str) -> None:
    job = packed_jobs[case]
    outside = f"{OUTSIDE}/{assets.root.relative_to('/').as_posix()}"
    names = [name for name, _ in job.packed.entries]
    assert names == sorted(names) and set(names) == {n.format(outside=outside) for n in LAYOUT[case]}
    assert job.packed.rewritten == REWRITTEN.get(case, [])
    assert {d.path for d in job.packed.missing} == MISSING.get(case, set())
    traced = {d.resolved for d in trace(assets.blend(case))}
    for name, source in job.packed.entries:
        if name in job.packed.rewritten:  # new bytes, in the caller's work dir
            assert source.parent == job.work and source.suffix == ".blend"
        else:  # the original file itself: the store copies its bytes once
            assert source == assets.blend(case) or source in traced, (name, source)
            assert job.work not in source.parents
    assert sorted(p.name for p in job.work.iterdir()) == sorted(
        source.name for name, source in job.packed.entries if name in job.packed.rewritten)


@pytest.mark.parametrize("case", sorted(LAYOUT))
def test_the_packed_job_names_only_relative_paths_inside_it(packed_jobs: dict[str, PackedJob],
                                                            case: str) -> None:
    main = packed_jobs[case].main
    deps = trace(main)
    assert deps, case
    for dep in deps:
        assert dep.path.startswith("//") and not dep.path.startswith("//.."), dep
        assert main.parent in dep.resolved.parents and main.parent in dep.blend.parents
        assert dep.exists is (dep.path not in MISSING.get(case, set())), dep


@pytest.mark.parametrize("case", COMPLETE)
def test_the_packed_job_renders_identically(renders: dict[str, tuple[Path, Path]], case: str) -> None:
    original, packed = (cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in renders[case])
    assert original is not None and packed is not None
    assert original.shape == (24, 32, 4)
    assert np.array_equal(original, packed)


def test_a_blend_outside_its_job_root_is_refused(assets: Assets, tmp_path: Path) -> None:
    with pytest.raises(JobSourceError, match="not inside its job directory"):
        pack(assets.blend("relative"), assets.job("parent"), tmp_path)
