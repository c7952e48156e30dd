"""Datum semantics against the examples in Pachyderm's documentation (glob, cross, union,
join with joinOn and outerJoin, group with groupBy)."""

from collections.abc import Mapping
from typing import Any

import pytest

from tilefarm.engine.datums import datums, glob_regex
from tilefarm.pipelines.glob import GlobError, captures, clean_path, expand, glob_to_regex
from tilefarm.engine.store import FileInfo
from tilefarm.errors import UsageError


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


# -- ohmyglob, as Pachyderm compiles a glob ---------------------------------------------------
# Expectations from github.com/pachyderm/ohmyglob @ d5b47775fc36: syntax/lexer/lexer.go (tokens),
# syntax/ast/parser.go, compiler/compiler.go (the regex), glob.go (Replace/extract); and from
# pachyderm/pachyderm @ e237475e99: src/server/pfs/server/paths.go:11-24 (compiled with the
# separator '/', directories matched with their trailing '/' trimmed, the root only by "/"),
# src/internal/pfsfile/pfsfile.go CleanPath (applied to the glob first).


def go(regex: str) -> str:
    """A regex as ohmyglob writes it; Python spells Go's end-of-text ``\\z`` as ``\\Z``."""
    return regex.replace("\\z", "\\Z")


@pytest.mark.parametrize("glob, regex", [
    ("/*", r"\A/[^/]*\z"),                       # compiler.go KindAny: dot(sep)*
    ("/**", r"\A/.*\z"),                         # KindSuper
    ("/?", r"\A/[^/]\z"),                        # KindSingle
    ("/[!a]", r"\A/[^a]\z"),                     # lexer.go fetchRange: '!' or '^' is Not
    ("/[^a]", r"\A/[^a]\z"),
    ("/[a!b]", r"\A/[^ab]\z"),                   # ... the first one anywhere in the class
    ("/[a-c]", r"\A/[a-c]\z"),
    ("/\\*", r"\A/\*\z"),                        # fetchText: '\' escapes the next character
    ("/{a,b}", r"\A/(?:a|b)\z"),                 # KindAnyOf: a non-capturing group
    ("/{rate,[0-9][0-9][0-9]}*", r"\A/(?:rate|[0-9][0-9][0-9])[^/]*\z"),
    ("/{a,{b,c}?}", r"\A/(?:a|(?:b|c)[^/])\z"),  # alternatives are globs, braces nest
    ("/a,b", r"\A/a,b\z"),                       # ',' is a separator only inside braces
    ("/(a|b)-*", r"\A/(a|b)-[^/]*\z"),           # a bare '(' is the capture "@("
    ("/a|b", r"\A/a\|b\z"),                      # '|' is a separator only inside parentheses
    ("/@(a|b)", r"\A/(a|b)\z"),                  # compiler.go KindCapture quantifiers
    ("/*(a|b)", r"\A/((?:a|b)*)\z"),
    ("/+(a|b)", r"\A/((?:a|b)+)\z"),
    ("/?(a|b)", r"\A/((?:a|b)?)\z"),
    ("/!(a|b)", r"\A/((?:(?!(?:a$|b$))[^/]*))\z"),      # no boundary after it: to the end
    ("/!(a|b).txt", r"\A/((?:(?!(?:a|b))[^/]*))\.txt\z"),  # text after it bounds it
    ("/**(a)", r"\A/[^/]*((?:a)*)\z"),           # lexer.go: "**(" is "*" then "*("
    ("/(*)", r"\A/([^/]*)\z"),                   # tilefarm's own specs
    ("/(*).blend", r"\A/([^/]*)\.blend\z"),
    ("/(*)/tiles/*", r"\A/([^/]*)/tiles/[^/]*\z"),
    ("/(*)/plan.json", r"\A/([^/]*)/plan\.json\z"),
    ("/{a,b", r"\A/(?:a|b)\z"),                  # an unclosed '{' or '(' is accepted
    ("/(a", r"\A/(a)\z"),
    ("*/x/", r"\A/[^/]*/x\z"),                   # CleanPath: leading '/' added, trailing cut
    ("//a/./b", r"\A/a/b\z"),
])
def test_glob_compiles_as_ohmyglob(glob: str, regex: str) -> None:
    assert glob_to_regex(clean_path(glob)) == go(regex)


@pytest.mark.parametrize("glob, path, matches", [
    ("/{rate,[0-9][0-9][0-9]}*", "/rate", True),
    ("/{rate,[0-9][0-9][0-9]}*", "/rates", True),
    ("/{rate,[0-9][0-9][0-9]}*", "/123", True),
    ("/{rate,[0-9][0-9][0-9]}*", "/1234x", True),
    ("/{rate,[0-9][0-9][0-9]}*", "/12", False),
    ("/{rate,[0-9][0-9][0-9]}*", "/rate/x", False),
    ("/*(a|b)", "/abba", True),
    ("/*(a|b)", "/abc", False),
    ("/(a|b)-*", "/b-1", True),
    ("/(a|b)-*", "/c-1", False),
    ("/a|b", "/a|b", True),
    ("/a|b", "/a", False),
    ("/a,b", "/a,b", True),
    ("/\\*", "/*", True),
    ("/\\*", "/x", False),
    ("/[a!b]", "/c", True),
    ("/[a!b]", "/!", True),  # the '!' negates, it is not one of the class's characters
    ("/[a!b]", "/a", False),
    ("/!(a|b)", "/c", True),
    ("/!(a|b)", "/ab", True),
    ("/!(a|b)", "/a", False),
    ("/?(a|b)x", "/x", True),
    ("/?(a|b)x", "/abx", False),
    ("/*", "/a/b", False),
    ("/**", "/a/b", True),
])
def test_glob_matches_as_ohmyglob(glob: str, path: str, matches: bool) -> None:
    assert (glob_regex(glob).match(path) is not None) is matches


@pytest.mark.parametrize("glob", ["/[a", "/[[]", "/^(x)", "/[z-a]"])
def test_bad_globs_are_refused(glob: str) -> None:
    # lexer.go fetchRange: "unexpected end of input"; compiler.go: "unimplemented quatifier ^";
    # regexp2 refuses a reversed range. Pachyderm fails the job (GlobFile errors).
    with pytest.raises(UsageError, match="is not a valid glob"):
        glob_regex(glob)


def test_a_capture_inside_braces_does_not_crash() -> None:
    # ohmyglob bug, not fixed there either: inside braces text runs over ')' and '|'.
    assert glob_to_regex("/{(a|b),c}") == go(r"\A/(?:(a\|b\)|c))\z")


def test_the_root_is_matched_only_by_the_glob_root() -> None:
    # paths.go globMatchFunction: `if path == "/" && glob == "/"`; other paths lose the '/'.
    root = datums({"pfs": {"repo": "images", "glob": "//"}}, source)
    assert [d.parts[0].path for d in root] == ["/"]
    assert "/" not in [d.parts[0].path for d in datums({"pfs": {"repo": "images", "glob": "/**"}},
                                                        source)]


# glob.go Replace/extract (not Go's regexp.Expand): glob "/(*)-(*)" over "/ab-cd".
@pytest.mark.parametrize("template, expected", [
    ("$1", "ab"), ("${1}", "ab"), ("$2", "cd"),
    ("$1x", "abx"),        # the number ends at the first non-digit
    ("${2}${1}", "cdab"),
    ("$10", ""),           # group 10, which does not exist: empty
    ("$3", ""),
    ("$0", "/ab-cd"),      # the whole path
    ("$$", "$"), ("$$1", "$1"),
    ("$a", "$a"), ("${1", "${1"), ("${}", "${}"), ("x$", "x$"),  # malformed: kept literally
])
def test_templates_expand_as_ohmyglob_replace(template: str, expected: str) -> None:
    match = glob_regex("/(*)-(*)").match("/ab-cd")
    assert expand(template, captures(match)) == expected


def test_template_group_ten_and_a_group_that_took_no_part() -> None:
    match = glob_regex("/" + "(?)" * 10).match("/abcdefghij")
    assert expand("$10-$1", captures(match)) == "j-a"
    match = glob_regex("/@(a|(b))").match("/a")
    assert expand("[$2]", captures(match)) == "[]"


def test_a_leading_zero_group_is_refused() -> None:
    # glob.go extract returns -1 for "01"; Replace then indexes match[-1]: a panic in the worker.
    with pytest.raises(GlobError, match="leading zero"):
        expand("$01", ["x", "y"])
    with pytest.raises(UsageError, match="joinOn '\\$01'"):
        datums({"pfs": {"repo": "images", "glob": "/(*)", "joinOn": "$01"}}, source)
