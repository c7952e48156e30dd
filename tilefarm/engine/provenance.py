"""Provenance: which input commits a job runs on, all traced back to the same origins.

Jobs run only on provenance-consistent inputs, as Pachyderm 2.x commit sets guarantee:
every input of a job traces back to the same commits of the origin repos (those no
pipeline writes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from tilefarm.engine.store import Commit, Store, records
from tilefarm.pipelines.specs import PipelineSpec


@dataclass(frozen=True)
class Inputs:
    """The input commits a job would run on, and the origin commits they all trace back to."""

    commits: dict[str, str | None]  # input repo -> commit id (None: the repo is empty)
    provenance: dict[str, str | None]  # origin repo -> commit id
    failed: tuple[str, ...] = ()  # upstream pipelines whose job for this provenance failed
    shot: str | None = None  # a shot job's shot (by shot); None: a job over whole commits

    def key(self) -> str:
        return json.dumps(self.commits, sort_keys=True)


def origins(repo: str, specs: Mapping[str, PipelineSpec]) -> set[str]:
    """The origin repos (no pipeline writes them) that ``repo`` derives from."""
    spec = specs.get(repo)
    if spec is None:
        return {repo}
    return set().union(*(origins(r, specs) for r in spec.input_repos()))


def resolve(store: Store, specs: Mapping[str, PipelineSpec], spec: PipelineSpec) -> Inputs | None:
    """The inputs a job of ``spec`` runs on now: each origin repo's head, and each
    upstream pipeline's output commit made from those same origin commits. None while
    an upstream has not run on them yet (it runs first, in provenance order)."""
    provenance: dict[str, str | None] = {}
    for origin in sorted(origins(spec.name, specs)):
        head = store.head(origin)
        provenance[origin] = head.id if head else None
    commits: dict[str, str | None] = {}
    failed = []
    for repo in spec.input_repos():
        if repo not in specs:
            commits[repo] = provenance[repo]
            continue
        made = made_from(store, repo, {o: provenance[o] for o in origins(repo, specs)})
        if made is None:
            return None
        if made.state != "finished":
            failed.append(repo)
        commits[repo] = made.id
    return Inputs(commits, provenance, tuple(sorted(failed)))


def made_from(store: Store, repo: str, provenance: Mapping[str, str | None]) -> Commit | None:
    """The newest commit of ``repo`` (not a shot job's) derived from exactly ``provenance``."""
    for row in records.whole_commits(store, repo):
        if json.loads(row["provenance"] or "{}") == dict(provenance):
            return store.commit(row["id"])
    return None
