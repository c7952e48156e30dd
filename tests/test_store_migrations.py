"""The store's schema is versioned (``PRAGMA user_version``): a store made by an older
release opens and upgrades, keeping what it holds; one made by a newer release is refused."""

import sqlite3
from pathlib import Path

import pytest

from tilefarm.engine.store import MIGRATIONS, SCHEMA, Store, StoreError


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def old_store(root: Path, *changes: str) -> None:
    """A store as an older release left it: the first release's schema (no version
    recorded), ``changes`` to it, a repo and a job that succeeded."""
    db = sqlite3.connect(root / "meta.sqlite")
    db.executescript(SCHEMA)
    for change in changes:
        db.execute(change)
    db.execute("INSERT INTO repos VALUES ('blends', 1.0)")
    db.execute("INSERT INTO jobs (id, pipeline, version, inputs, state, created) "
               "VALUES ('j1', 'splitter', 1, '{}', 'success', 1.0)")
    db.commit()
    db.close()


def test_a_store_of_the_first_release_upgrades_and_keeps_its_contents(tmp_path: Path) -> None:
    old_store(tmp_path)

    store = Store(tmp_path)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        for table, column, _, _ in MIGRATIONS:
            assert column in columns(store.db, table)
        assert store.repos() == ["blends"]
        # Outputs made before provenance was recorded run once more.
        assert store.db.execute("SELECT state FROM jobs").fetchone()[0] == "superseded"
    finally:
        store.close()
    store = Store(tmp_path)  # opening again changes nothing
    try:
        assert store.db.execute("SELECT state FROM jobs").fetchone()[0] == "superseded"
    finally:
        store.close()


def test_a_store_part_way_upgraded_before_versions_gains_only_the_rest(tmp_path: Path) -> None:
    old_store(tmp_path, "ALTER TABLE commits ADD COLUMN provenance TEXT")  # a later release's
    store = Store(tmp_path)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert store.db.execute("SELECT state FROM jobs").fetchone()[0] == "success"
        assert "peak_memory" in columns(store.db, "datums")
    finally:
        store.close()


def test_a_store_of_a_newer_release_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "meta.sqlite")
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="made by a newer tilefarm .* upgrade tilefarm"):
        Store(tmp_path)
