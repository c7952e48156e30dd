"""Datum semantics against the examples in Pachyderm's documentation (glob, cross, union,
join with joinOn and outerJoin, group with groupBy)."""

from collections.abc import Mapping
from typing import Any

import pytest

from tilefarm.engine.datums import datums, glob_regex
from tilefarm.engine.store import FileInfo


def repo(*paths: str) -> list[FileInfo]:
    return [FileInfo(p, f"h{p}", 1) for p in paths]


REPOS = {
    "images": repo("/a.png", "/b.png", "/dir/c.png", "/dir/d/e.png"),
    # Pachyderm's joins example: purchases and returns by store.
    "purchases": repo("/STOREID1.txt", "/STOREID2.txt", "/STOREID3.txt"),
    "returns": repo("/STOREID1.txt", "/STOREID3.txt", "/STOREID4.txt"),
    # Pachyderm's group example: files named by store and receipt.
    "receipts": repo("/1-STOREID1.txt", "/2-STOREID2.txt", "/3-STOREID1.txt", "/4-STOREID3.txt"),
    "empty": [],
}


def source(pfs: Mapping[str, Any]) -> tuple[list[FileInfo], str | None]:
    return REPOS[pfs["repo"]], "c-" + pfs["repo"]


def paths(input_spec: dict[str, Any]) -> list[list[str]]:
    return [sorted(f"{p.name}{p.path}" for p in d.parts) for d in datums(input_spec, source)]


def test_glob_root_is_one_datum_with_everything() -> None:
    (datum,) = datums({"pfs": {"repo": "images", "glob": "/"}}, source)
    assert len(datum.parts[0].files) == 4


@pytest.mark.parametrize("glob, expected", [
    ("/*", [["images/a.png"], ["images/b.png"], ["images/dir"]]),
    ("/*/*", [["images/dir/c.png"], ["images/dir/d"]]),
    ("/**", [["images/a.png"], ["images/b.png"], ["images/dir"], ["images/dir/c.png"],
             ["images/dir/d"], ["images/dir/d/e.png"]]),
    ("/*.png", [["images/a.png"], ["images/b.png"]]),
    ("/dir/*.png", [["images/dir/c.png"]]),
    ("/[ab].png", [["images/a.png"], ["images/b.png"]]),
    ("/{a,dir}*", [["images/a.png"], ["images/dir"]]),
])
def test_glob(glob: str, expected: list[list[str]]) -> None:
    assert paths({"pfs": {"repo": "images", "glob": glob}}) == expected


def test_a_directory_datum_holds_its_files() -> None:
    (d,) = [d for d in datums({"pfs": {"repo": "images", "glob": "/*"}}, source)
            if d.parts[0].path == "/dir"]
    assert [f.path for f in d.parts[0].files] == ["/dir/c.png", "/dir/d/e.png"]
    assert d.env("/pfs") == {"images": "/pfs/images/dir"}


def test_name_and_env() -> None:
    (d, *_) = datums({"pfs": {"repo": "images", "glob": "/*", "name": "pics"}}, source)
    assert d.env("/x/pfs") == {"pics": "/x/pfs/pics/a.png"}


def test_cross_is_the_product() -> None:
    got = paths({"cross": [{"pfs": {"repo": "purchases", "glob": "/*"}},
                           {"pfs": {"repo": "returns", "glob": "/*"}}]})
    assert len(got) == 9


def test_union_concatenates() -> None:
    got = paths({"union": [{"pfs": {"repo": "purchases", "glob": "/*"}},
                           {"pfs": {"repo": "returns", "glob": "/*"}}]})
    assert len(got) == 6


JOIN = [{"pfs": {"repo": "purchases", "glob": "/(*).txt", "joinOn": "$1"}},
        {"pfs": {"repo": "returns", "glob": "/(*).txt", "joinOn": "$1"}}]


def test_inner_join_pairs_matching_keys() -> None:
    assert paths({"join": JOIN}) == [["purchases/STOREID1.txt", "returns/STOREID1.txt"],
                                     ["purchases/STOREID3.txt", "returns/STOREID3.txt"]]


def test_outer_join_keeps_unmatched_datums_of_the_outer_input() -> None:
    outer_returns = [JOIN[0], {"pfs": {**JOIN[1]["pfs"], "outerJoin": True}}]
    got = paths({"join": outer_returns})
    assert ["returns/STOREID4.txt"] in got and ["purchases/STOREID2.txt"] not in got
    assert len(got) == 3
    both = [{"pfs": {**j["pfs"], "outerJoin": True}} for j in JOIN]
    assert len(paths({"join": both})) == 4


def test_join_takes_the_cross_product_within_a_key() -> None:
    # Two task files of one job, each paired with the job's blend: one datum per task.
    REPOS["tasks"] = repo("/shot/tasks/c0.json", "/shot/tasks/c1.json", "/other/tasks/c0.json")
    REPOS["blends"] = repo("/shot.blend", "/other/other.blend", "/other/tilefarm.json")
    try:
        got = paths({"union": [
            {"join": [{"pfs": {"repo": "tasks", "glob": "/(*)/tasks/*", "joinOn": "$1"}},
                      {"pfs": {"repo": "blends", "glob": "/(*).blend", "joinOn": "$1"}}]},
            {"join": [{"pfs": {"repo": "tasks", "glob": "/(*)/tasks/*", "joinOn": "$1"}},
                      {"pfs": {"repo": "blends", "glob": "/(*)", "joinOn": "$1"}}]}]})
    finally:
        del REPOS["tasks"], REPOS["blends"]
    assert got == [["blends/shot.blend", "tasks/shot/tasks/c0.json"],
                   ["blends/shot.blend", "tasks/shot/tasks/c1.json"],
                   ["blends/other", "tasks/other/tasks/c0.json"]]


def test_group_by_capture() -> None:
    got = paths({"group": [{"pfs": {"repo": "receipts", "glob": "/*-(*).txt", "groupBy": "$1"}}]})
    assert got == [["receipts/1-STOREID1.txt", "receipts/3-STOREID1.txt"],
                   ["receipts/2-STOREID2.txt"], ["receipts/4-STOREID3.txt"]]


def test_group_across_repos() -> None:
    got = paths({"group": [
        {"pfs": {"repo": "purchases", "glob": "/(*).txt", "groupBy": "$1"}},
        {"pfs": {"repo": "receipts", "glob": "/*-(*).txt", "groupBy": "$1"}}]})
    assert got[0] == ["purchases/STOREID1.txt", "receipts/1-STOREID1.txt", "receipts/3-STOREID1.txt"]


def test_empty_input_has_no_datums() -> None:
    assert paths({"pfs": {"repo": "empty", "glob": "/*"}}) == []
    assert paths({"cross": [{"pfs": {"repo": "empty", "glob": "/*"}},
                            {"pfs": {"repo": "images", "glob": "/*"}}]}) == []


def test_datum_ids_follow_content() -> None:
    first = datums({"pfs": {"repo": "images", "glob": "/*"}}, source)
    again = datums({"pfs": {"repo": "images", "glob": "/*"}}, source)
    assert [d.id for d in first] == [d.id for d in again]
    REPOS["images2"] = [FileInfo("/a.png", "changed", 1), *REPOS["images"][1:]]
    try:
        changed = datums({"pfs": {"repo": "images2", "glob": "/*", "name": "images"}}, source)
    finally:
        del REPOS["images2"]
    assert changed[0].id != first[0].id and changed[1].id == first[1].id


def test_glob_regex_captures() -> None:
    match = glob_regex("/(*)/tiles/(*)").fullmatch("/shot/tiles/000001")
    assert match is not None and match.groups() == ("shot", "000001")
    assert glob_regex("/*").fullmatch("/a/b") is None
