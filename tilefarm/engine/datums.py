"""Pachyderm 2.x datum semantics: glob (with capture groups), cross, union, join, group.

A pfs input's glob is matched against every file and directory path of the
input commit; each match is one datum holding the files at or under it. A join
groups datums by their ``joinOn`` key and takes the cross product of each
key's datums across inputs (as Pachyderm's join iterator does); an input with
``outerJoin`` keeps its datums where other inputs have no match. A group merges
every datum with the same ``groupBy`` key into one datum, in key order.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tilefarm.engine.store import FileInfo
from tilefarm.errors import UsageError


@dataclass(frozen=True)
class Part:
    """One input's share of a datum: the matched path and its files."""

    name: str
    repo: str
    commit: str | None
    path: str  # the glob match, e.g. "/shot/tasks/c00000.json" or "/" for the glob "/"
    files: tuple[FileInfo, ...]
    join_on: str = ""
    group_by: str = ""
    outer: bool = False


@dataclass(frozen=True)
class Datum:
    parts: tuple[Part, ...]
    id: str = field(default="")

    @staticmethod
    def of(parts: tuple[Part, ...]) -> "Datum":
        ordered = tuple(sorted(parts, key=lambda p: (p.name, p.path)))
        sha = hashlib.sha256()
        for part in ordered:  # names, paths and contents: unchanged inputs, same id
            sha.update(f"{part.name}\0{part.path}\0".encode())
            for f in part.files:
                sha.update(f"{f.path}\0{f.hash}\0".encode())
        return Datum(ordered, sha.hexdigest()[:32])

    def env(self, pfs: str = "/pfs") -> dict[str, str]:
        """The per-input variables a worker sets: ``<name>=/pfs/<name><path>``."""
        return {part.name: f"{pfs}/{part.name}{part.path}".rstrip("/") for part in self.parts}


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Pachyderm's glob as a regex over absolute paths; ``(...)`` are capture groups."""
    if not pattern.startswith("/"):
        pattern = "/" + pattern
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c in "()":
            out.append(c)
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise UsageError(f"glob {pattern!r} has an unclosed '['", flag="glob")
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
            continue
        elif c == "{":
            end = pattern.find("}", i + 1)
            if end < 0:
                raise UsageError(f"glob {pattern!r} has an unclosed '{{'", flag="glob")
            choices = pattern[i + 1:end].split(",")
            out.append("(?:" + "|".join(re.escape(x) for x in choices) + ")")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out).rstrip("/") or "/")


def _expand(template: str, match: re.Match[str]) -> str:
    return re.sub(r"\$(\d+)", lambda m: match.group(int(m.group(1))) or "", template)


def pfs_datums(spec: Mapping[str, Any], files: list[FileInfo], commit: str | None) -> list[Datum]:
    """Datums of one pfs input over a commit's files, in path order."""
    name = spec.get("name") or spec["repo"]
    glob = spec.get("glob", "/")
    if not files:
        return []
    if glob.strip() in ("/", ""):
        return [Datum.of((Part(name, spec["repo"], commit, "/", tuple(files),
                               outer=bool(spec.get("outerJoin"))),))]
    regex = glob_regex(glob)
    paths: set[str] = set()
    for f in files:  # every file and every directory above it is a candidate
        parts = f.path.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            paths.add("/" + "/".join(parts[:depth]))
    datums = []
    for path in sorted(paths):
        match = regex.fullmatch(path)
        if match is None:
            continue
        under = tuple(f for f in files if f.path == path or f.path.startswith(path + "/"))
        datums.append(Datum.of((Part(name, spec["repo"], commit, path, under,
                                     join_on=_expand(spec.get("joinOn", ""), match),
                                     group_by=_expand(spec.get("groupBy", ""), match),
                                     outer=bool(spec.get("outerJoin"))),)))
    return datums


FileSource = Callable[[Mapping[str, Any]], tuple[list[FileInfo], str | None]]


def datums(input_spec: Mapping[str, Any], source: FileSource) -> list[Datum]:
    """All datums of a pipeline input; ``source(pfs_spec)`` gives the input commit's files."""
    kind, body = _only_key(input_spec)
    if kind == "pfs":
        files, commit = source(body)
        return pfs_datums(body, files, commit)
    children = [datums(child, source) for child in body]
    if kind == "cross":
        return [Datum.of(tuple(p for d in combo for p in d.parts))
                for combo in itertools.product(*children)]
    if kind == "union":
        return [d for child in children for d in child]
    if kind == "join":
        return _join(children)
    if kind == "group":
        return _group(children)
    raise UsageError(f"input kind {kind!r} is not supported; use pfs, cross, union, join or group",
                     flag="input")


def _only_key(spec: Mapping[str, Any]) -> tuple[str, Any]:
    keys = [k for k in ("pfs", "cross", "union", "join", "group", "cron") if spec.get(k)]
    if len(keys) != 1:
        raise UsageError(f"an input must have exactly one of pfs, cross, union, join, group; "
                         f"got {sorted(spec)}", flag="input")
    return keys[0], spec[keys[0]]


def _join(children: list[list[Datum]]) -> list[Datum]:
    keys: dict[str, list[list[Datum]]] = {}
    for index, child in enumerate(children):
        for datum in child:
            key = datum.parts[0].join_on
            keys.setdefault(key, [[] for _ in children])[index].append(datum)
    result = []
    for key, per_input in keys.items():
        present = [lists for lists in per_input if lists]
        if len(present) < len(per_input):
            # Only an outer-join input keeps its datums without a match in every input.
            if not any(d.parts[0].outer for lists in present for d in lists):
                continue
        for combo in itertools.product(*present):
            result.append(Datum.of(tuple(p for d in combo for p in d.parts)))
    return result


def _group(children: list[list[Datum]]) -> list[Datum]:
    groups: dict[str, list[Part]] = {}
    for child in children:
        for datum in child:
            for part in datum.parts:
                groups.setdefault(part.group_by, []).append(part)
    return [Datum.of(tuple(groups[key])) for key in sorted(groups)]
