"""The store's schema: the first release's tables, and each change made since.

A store records how many of ``MIGRATIONS`` it has had in ``PRAGMA user_version``
(``Store._migrate``) and gains the rest when opened.
"""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS repos (name TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS commits (
    id TEXT PRIMARY KEY, repo TEXT NOT NULL, branch TEXT NOT NULL, parent TEXT,
    created REAL NOT NULL, state TEXT NOT NULL, job TEXT, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    commit_id TEXT NOT NULL, path TEXT NOT NULL, hash TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (commit_id, path));
CREATE TABLE IF NOT EXISTS branches (
    repo TEXT NOT NULL, name TEXT NOT NULL, head TEXT, PRIMARY KEY (repo, name));
CREATE TABLE IF NOT EXISTS pipelines (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, version INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, version INTEGER NOT NULL, inputs TEXT NOT NULL,
    output TEXT, state TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL,
    total INTEGER NOT NULL DEFAULT 0, processed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    workers INTEGER NOT NULL DEFAULT 0, error TEXT);
CREATE TABLE IF NOT EXISTS datums (
    job TEXT NOT NULL, id TEXT NOT NULL, pipeline TEXT NOT NULL, version INTEGER NOT NULL,
    inputs TEXT NOT NULL, state TEXT NOT NULL, tries INTEGER NOT NULL DEFAULT 0,
    started REAL, finished REAL, error TEXT, PRIMARY KEY (job, id));
CREATE TABLE IF NOT EXISTS datum_outputs (
    pipeline TEXT NOT NULL, version INTEGER NOT NULL, datum TEXT NOT NULL, path TEXT NOT NULL,
    hash TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (pipeline, version, datum, path));
CREATE INDEX IF NOT EXISTS datums_by_id ON datums (pipeline, version, id, state);
CREATE TABLE IF NOT EXISTS job_control (
    job TEXT PRIMARY KEY, priority INTEGER NOT NULL DEFAULT 0,
    paused INTEGER NOT NULL DEFAULT 0, cancelled INTEGER NOT NULL DEFAULT 0,
    changed REAL NOT NULL);
"""
# Each change to the first release's schema (SCHEMA), in order: (table, column, type,
# statements run once the column is added). A store records how many it has had in
# ``PRAGMA user_version`` and gains the rest when opened.
MIGRATIONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # Outputs made before provenance was recorded cannot prove what they were made from:
    # their jobs run once more (every datum skipped, outputs kept).
    ("commits", "provenance", "TEXT", ("UPDATE jobs SET state='superseded' "
                                       "WHERE state='success'",)),
    ("pipelines", "salt", "INTEGER", ()),
    ("commits", "shot", "TEXT", ()),  # a shot job's output commit (engine.shots)
    ("jobs", "shot", "TEXT", ()),
    ("datums", "peak_memory", "INTEGER", ()),  # bytes: the datum's largest process
    ("job_control", "max_workers", "INTEGER", ()),  # the most datums of the job at once
    ("job_control", "tags", "TEXT", ()),  # the node tags it runs on, comma-separated
)
# Indexes on columns that migrations added: made once the store has them (Store._migrate).
# A farm's age must not cost its reads: a shot's jobs and commits are found by the shot.
INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_shot ON jobs (shot, created);
CREATE INDEX IF NOT EXISTS commits_by_shot ON commits (repo, shot, seq);
"""
