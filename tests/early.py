"""Slow set-up started beside the first tests, instead of just before its own.

Some preparations leave most of the machine idle while they run: building the pipeline
image (pip, and Docker's layer copies), installing the release wheel into fresh venvs,
installing Blender runtimes from PyPI. Run where their tests start, the whole suite waits
on them. The fixture scenes too are built while the first tests, which need none, run.

Each is a ``Preparation`` of the fixture that returns it. Once the session knows its tests,
tests/conftest.py starts, in a thread beside the tests before theirs, every preparation
whose fixture a selected test uses. The fixture takes its ``result``: it waits for it, and
a failure is raised there, in that fixture's test. A preparation nobody started is made
when its fixture asks, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import pytest

T = TypeVar("T")

# Two at a time: each is a pip, a Docker build or a Blender of its own, beside the tests.
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="early")
_preparations: list[Preparation[object]] = []

# pip builds tilefarm's own wheel inside the checkout (build/, tilefarm.egg-info): the
# image's build context and the release test's wheel must not be built at the same time.
WHEEL_BUILD = threading.Lock()


class Preparation(Generic[T]):
    """What fixture ``fixture`` returns, made once a session by ``make``; started early
    where ``when()`` holds (else its fixture says why it cannot be made)."""

    def __init__(self, fixture: str, make: Callable[[pytest.TempPathFactory], T],
                 when: Callable[[], bool] = lambda: True) -> None:
        self.fixture, self.make, self.when = fixture, make, when
        self.made: Future[T] | None = None
        _preparations.append(self)  # type: ignore[arg-type]

    def start(self, factory: pytest.TempPathFactory) -> None:
        if self.made is None and self.when():
            self.made = _pool.submit(self.make, factory)

    def result(self, factory: pytest.TempPathFactory) -> T:
        """Its result, waited for; if it was not started, made now."""
        if self.made is None:
            self.made = Future()
            try:
                self.made.set_result(self.make(factory))
            except Exception as exc:
                self.made.set_exception(exc)
        return self.made.result()


def start_for(items: Iterable[pytest.Item], factory: pytest.TempPathFactory) -> None:
    """Start the preparations of the fixtures the selected tests use, in the order they
    were made (conftest's first, then the test modules' as they were collected)."""
    used = {name for item in items for name in getattr(item, "fixturenames", ())}
    # The session's base directory is made on first use, unguarded: two preparations
    # asking at once each made one, and mktemp then saw a path outside the other's.
    factory.getbasetemp()
    for preparation in _preparations:
        if preparation.fixture in used:
            preparation.start(factory)
