"""Pachyderm 2.x datum semantics: glob (with capture groups), cross, union, join, group.

A pfs input's glob (ohmyglob's, see ``tilefarm.pipelines.glob``) is matched against
every file and directory path of the input commit; each match is one datum holding
the files at or under it. A join keys every input by its ``joinOn`` template and,
per key, crosses the inputs that have it: a full tuple is a datum, a partial one
keeps only its ``outerJoin`` inputs. A group merges every input with the same
``groupBy`` key into one datum, in key order.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tilefarm.pipelines.glob import GlobError, captures, clean_path, compile_glob, expand
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
    """Pachyderm's glob (ohmyglob, after CleanPath) as an anchored regex; ``(...)`` capture."""
    try:
        return compile_glob(pattern)
    except GlobError as exc:
        raise UsageError(f"glob {pattern!r} is not a valid glob: {exc}", flag="glob") from None


def _expand(template: str, groups: list[str], key: str) -> str:
    try:
        return expand(template, groups)
    except GlobError as exc:
        raise UsageError(f"{key} {template!r}: {exc}", flag=key) from None


def pfs_datums(spec: Mapping[str, Any], files: list[FileInfo], commit: str | None) -> list[Datum]:
    """Datums of one pfs input over a commit's files, in path order.

    Every file and every directory is a candidate, as in Pachyderm's GlobFile (directory
    paths lose their trailing '/' before matching, paths.go globMatchFunction); the root
    "/" is matched only by the glob "/" (the special case there). ``joinOn`` and
    ``groupBy`` are ohmyglob Replace templates over the same path (pachyderm
    src/server/worker/datum/worker.go:131-135).
    """
    name = spec.get("name") or spec["repo"]
    glob = clean_path(str(spec.get("glob", "/")))
    regex = glob_regex(glob)
    join_on, group_by = str(spec.get("joinOn", "")), str(spec.get("groupBy", ""))
    _expand(join_on, [], "joinOn")  # refuse a template that panics Pachyderm, even with no files
    _expand(group_by, [], "groupBy")
    outer = bool(spec.get("outerJoin"))
    if not files:
        return []
    if glob == "/":
        # The root datum: its path trimmed of '/' is "", which the glob does not match,
        # so every group of its templates is empty (ohmyglob Capture returns nil).
        return [Datum.of((Part(name, spec["repo"], commit, "/", tuple(files),
                               join_on=_expand(join_on, [], "joinOn"),
                               group_by=_expand(group_by, [], "groupBy"), outer=outer),))]
    paths: set[str] = set()
    for f in files:  # every file and every directory above it is a candidate
        parts = f.path.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            paths.add("/" + "/".join(parts[:depth]))
    datums = []
    for path in sorted(paths):
        match = regex.match(path)
        if match is None:
            continue
        groups = captures(match)
        under = tuple(f for f in files if f.path == path or f.path.startswith(path + "/"))
        datums.append(Datum.of((Part(name, spec["repo"], commit, path, under,
                                     join_on=_expand(join_on, groups, "joinOn"),
                                     group_by=_expand(group_by, groups, "groupBy"),
                                     outer=outer),)))
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
    """Pachyderm's join (src/server/worker/datum/worker.go:235-265, processMergeTask JOIN).

    Every input of every child datum is keyed by its own ``joinOn`` (processKeyTask puts
    each input under the hash of its key). Per key, the children that have it are crossed;
    a tuple with every child is a datum; otherwise only its ``outerJoin`` inputs are kept,
    and are a datum if any remain. Equal datums collapse into one. Keys come in order of
    first appearance (Pachyderm orders by key hash).
    """
    keys: dict[str, list[list[Part]]] = {}
    for index, child in enumerate(children):
        for datum in child:
            for part in datum.parts:
                keys.setdefault(part.join_on, [[] for _ in children])[index].append(part)
    result: dict[str, Datum] = {}
    for per_input in keys.values():
        present = [parts for parts in per_input if parts]
        for combo in itertools.product(*present):
            kept = combo if len(present) == len(children) else tuple(p for p in combo if p.outer)
            if kept:
                datum = Datum.of(kept)
                result.setdefault(datum.id, datum)
    return list(result.values())


def _group(children: list[list[Datum]]) -> list[Datum]:
    """Pachyderm's group (worker.go:266-273, processMergeTask GROUP): one datum per distinct
    ``groupBy`` key with every input that has it, whichever inputs lack it. In key order
    here; Pachyderm orders by the key's hash."""
    groups: dict[str, list[Part]] = {}
    for child in children:
        for datum in child:
            for part in datum.parts:
                groups.setdefault(part.group_by, []).append(part)
    return [Datum.of(tuple(groups[key])) for key in sorted(groups)]
