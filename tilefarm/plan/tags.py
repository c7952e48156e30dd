"""Worker tags: a node offers some (``tilefarm join --tags spot,gpu``), a job asks for some
(``"tags"`` in ``tilefarm.json``, ``--tags``), and the job runs only on nodes that have all
of them. A job without tags runs only on untagged nodes, so an expensive node is never
used by accident. On a Ray cluster a tag is the node resource ``tag-<name>``."""

from __future__ import annotations

import re
from collections.abc import Iterable

from tilefarm.errors import UsageError

TAG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
TAG_RULE = "lower-case letters, digits, '_' and '-', at most 32, not starting with '_' or '-'"
RESOURCE_PREFIX = "tag-"


def parse_tags(text: str, flag: str) -> list[str]:
    """``spot,gpu`` as tags, each checked; UsageError naming ``flag`` otherwise."""
    tags = [t.strip() for t in text.split(",") if t.strip()]
    if not tags:
        raise UsageError(f"{text!r} names no tag; give tags separated by commas, e.g. spot,gpu",
                         flag=flag)
    check_tags(tags, flag)
    return sorted(set(tags))


def check_tags(tags: Iterable[str], flag: str) -> None:
    for tag in tags:
        if TAG.fullmatch(tag) is None:
            raise UsageError(f"tag {tag!r} is not allowed: tags are {TAG_RULE}", flag=flag)


def waiting_for(tags: Iterable[str]) -> str:
    """What a job waits for while no node it may run on has joined."""
    wanted = sorted(tags)
    return (f"waiting for a node tagged {', '.join(wanted)}" if wanted
            else "waiting for an untagged node")


def may_run(job_tags: Iterable[str], node_tags: Iterable[str]) -> bool:
    """Whether a job with ``job_tags`` may run on a node with ``node_tags``."""
    wanted, offered = set(job_tags), set(node_tags)
    return wanted <= offered if wanted else not offered
