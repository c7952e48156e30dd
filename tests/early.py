"""Slow set-up started beside the first tests, instead of just before its own.

Some preparations leave most of the machine idle while they run: building the pipeline
image (pip, and Docker's layer copies), installing the release wheel into fresh venvs,
installing Blender runtimes from PyPI. Run where their tests start, the whole suite waits
on them. The fixture scenes too are built while the first tests, which need none, run.
A test module registers such a preparation with ``when_selected``; once the
session knows its tests, tests/conftest.py starts each one whose module has a selected
test, in a thread beside the tests before it. The fixture that needs it takes its
``result``: it waits for it, and a failure is raised there, in that fixture's test. A
preparation nobody started (its module was deselected) is made when asked, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

Starter = Callable[[pytest.TempPathFactory], None]

# Two at a time: each is a pip, a Docker build or a Blender of its own, beside the tests.
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="early")
_started: dict[str, Future[Any]] = {}
_starters: dict[Path, list[Starter]] = {}

# pip builds tilefarm's own wheel inside the checkout (build/, tilefarm.egg-info): the
# image's build context and the release test's wheel must not be built at the same time.
WHEEL_BUILD = threading.Lock()


def when_selected(module_file: str, starter: Starter) -> None:
    """Run ``starter`` (given the session's TempPathFactory) when a test of ``module_file``
    is selected in the session."""
    _starters.setdefault(Path(module_file).resolve(), []).append(starter)


def start_for(items: Iterable[pytest.Item], factory: pytest.TempPathFactory) -> None:
    """Run the starters of the selected tests' modules, in the session's order."""
    modules = dict.fromkeys(Path(str(item.path)).resolve() for item in items)
    for module in modules:
        for starter in _starters.get(module, []):
            starter(factory)


def start(key: str, make: Callable[[], Any]) -> None:
    """Begin ``make()`` in a thread, once per session."""
    if key not in _started:
        _started[key] = _pool.submit(make)


def result(key: str, make: Callable[[], Any]) -> Any:
    """The result of the ``make()`` started under ``key``, waited for; if none was started,
    ``make()`` run now (and kept for the next test that asks)."""
    if key not in _started:
        made: Future[Any] = Future()
        try:
            made.set_result(make())
        except Exception as exc:
            made.set_exception(exc)
        _started[key] = made
    return _started[key].result()
