"""Versioned repos on disk: content-addressed objects plus SQLite metadata.

Every SQL statement tilefarm runs is in this package: repos, commits and files here, jobs,
datums, pipelines and job control in ``records``, the schema and its migrations in
``schema``.

A commit is immutable once finished and lists every file it holds (path ->
sha256); identical bytes are stored once under ``objects/``. Writes that must
appear together (a job's output commit and its branch head) share one SQLite
transaction, so a commit is visible whole or not at all.

Every commit records its provenance: the commit of each origin repo (one no pipeline
writes) it derives from. A user's commit is its own origin; a job's output commit carries
its inputs' provenance, as the commits of one Pachyderm commit set share an ID.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tilefarm.engine.store.schema import INDEXES, MIGRATIONS, SCHEMA
from tilefarm.errors import TilefarmError
from tilefarm.runtime.files import copy_file, sha256_file

__all__ = ["MIGRATIONS", "SCHEMA", "Commit", "FileInfo", "Store", "StoreError", "in_shot",
           "normalize", "replace_entries", "shot_of"]


class StoreError(TilefarmError):
    """A repo, branch, commit or path does not exist or cannot be written."""


@dataclass(frozen=True)
class FileInfo:
    path: str  # absolute inside the repo: "/shot/plan.json"
    hash: str
    size: int


@dataclass(frozen=True)
class Commit:
    id: str
    repo: str
    branch: str
    parent: str | None
    created: float
    state: str  # "finished" or "failed"
    job: str | None
    provenance: dict[str, str | None]  # origin repo -> the commit of it this one derives from
    shot: str | None = None  # made by a job of this one shot (the others' files carried over)


def normalize(path: str) -> str:
    """Repo paths are absolute and slash-separated, with no empty, '.' or '..' parts."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise StoreError(f"path {path!r} may not contain '..'")
    return "/" + "/".join(parts)


def shot_of(path: str) -> str | None:
    """The render job (shot) a path of ``blends`` belongs to: ``/X.blend`` and ``/X/...``
    are job ``X``; any other top-level file belongs to none."""
    first, _, rest = path.lstrip("/").partition("/")
    return first.removesuffix(".blend") if rest or first.endswith(".blend") else None


def in_shot(path: str, shot: str) -> bool:
    """Whether a repo path belongs to render job ``shot``: ``/SHOT.blend`` or under ``/SHOT/``."""
    return path == f"/{shot}.blend" or path == f"/{shot}" or path.startswith(f"/{shot}/")


class Store:
    """Repos, commits and files under ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.objects = root / "objects"
        root.mkdir(parents=True, exist_ok=True)
        self.objects.mkdir(exist_ok=True)
        # Worker threads record datum outcomes; one lock serialises every statement.
        self.lock = threading.RLock()
        self.db = sqlite3.connect(root / "meta.sqlite", timeout=30, isolation_level=None,
                                  check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._migrate(root)

    def _migrate(self, root: Path) -> None:
        """Bring the store's schema up to this release's, each step in a transaction."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            self.db.close()
            raise StoreError(f"the store {root} was made by a newer tilefarm (schema "
                             f"{version}, this one knows {len(MIGRATIONS)}); upgrade tilefarm")
        if version == 0:  # before versions were recorded: the columns say how far it got
            for table, column, _, _ in MIGRATIONS:
                if column not in {r["name"] for r in
                                  self.db.execute(f"PRAGMA table_info({table})")}:
                    break
                version += 1
        for step, (table, column, kind, then) in enumerate(MIGRATIONS[version:], version + 1):
            with self.transaction() as db:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                for statement in then:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {step}")
        if version == len(MIGRATIONS):
            self.db.execute(f"PRAGMA user_version = {version}")
        self.db.executescript(INDEXES)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # -- objects -------------------------------------------------------------------------

    def object_path(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest

    def add_object(self, source: Path) -> FileInfo:
        """Store ``source``'s bytes once (by sha256); return its digest and size."""
        digest = sha256_file(source)
        target = self.object_path(digest)
        if not target.exists():
            staged = target.with_name(f".incoming-{uuid.uuid4().hex}")
            copy_file(source, staged)
            os.chmod(staged, 0o444)
            os.replace(staged, target)
        return FileInfo("", digest, target.stat().st_size)

    def export(self, info: FileInfo, dest: Path) -> None:
        """Copy the file's bytes to ``dest`` outside the store, appearing whole or not at all
        (a copy, never a link: what a user edits must not be the store's object)."""
        copy_file(self.object_path(info.hash), dest)

    def materialize(self, info: FileInfo, dest: Path) -> None:
        """Place the file's bytes at ``dest`` (a hard link where possible: no copy)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        source = self.object_path(info.hash)
        try:
            os.link(source, dest)
        except OSError:
            shutil.copyfile(source, dest)

    # -- repos and commits ----------------------------------------------------------------

    def create_repo(self, name: str, *, exist_ok: bool = False) -> None:
        if not name or "/" in name or "@" in name or ":" in name:
            raise StoreError(f"repo name {name!r} is not allowed; use letters, digits, - and _")
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM repos WHERE name=?", (name,)).fetchone():
                if exist_ok:
                    return
                raise StoreError(f"repo {name!r} already exists")
            db.execute("INSERT INTO repos VALUES (?, ?)", (name, time.time()))
            db.execute("INSERT INTO branches VALUES (?, 'master', NULL)", (name,))

    # Reads hold the lock too: a statement still stepping keeps a read transaction open on
    # the shared connection, and another thread's write inside it could not be upgraded
    # once a second connection (a server's reader) had written: SQLite then says "database
    # is locked" at once, without waiting (found by schemathesis, two runs side by side).

    def repos(self) -> list[str]:
        with self.lock:
            return [r["name"] for r in self.db.execute("SELECT name FROM repos ORDER BY name")]

    def has_repo(self, name: str) -> bool:
        with self.lock:
            return self.db.execute("SELECT 1 FROM repos WHERE name=?",
                                   (name,)).fetchone() is not None

    def head(self, repo: str, branch: str = "master") -> Commit | None:
        if not self.has_repo(repo):
            raise StoreError(f"repo {repo!r} does not exist; see `tilefarm list repo`")
        with self.lock:
            row = self.db.execute("SELECT head FROM branches WHERE repo=? AND name=?",
                                  (repo, branch)).fetchone()
        if row is None:
            raise StoreError(f"branch {repo}@{branch} does not exist")
        return self.commit(row["head"]) if row["head"] else None

    def commit(self, commit_id: str) -> Commit:
        with self.lock:
            row = self.db.execute("SELECT * FROM commits WHERE id=?", (commit_id,)).fetchone()
        if row is None:
            raise StoreError(f"commit {commit_id!r} does not exist")
        return Commit(row["id"], row["repo"], row["branch"], row["parent"], row["created"],
                      row["state"], row["job"], json.loads(row["provenance"] or "{}"), row["shot"])

    def commits(self, repo: str, branch: str | None = None) -> list[Commit]:
        sql, args = "SELECT id FROM commits WHERE repo=?", [repo]
        if branch:
            sql, args = sql + " AND branch=?", args + [branch]
        with self.lock:
            ids = [r["id"] for r in self.db.execute(sql + " ORDER BY seq DESC", args)]
        return [self.commit(commit_id) for commit_id in ids]

    def files(self, commit_id: str | None, prefix: str = "/") -> list[FileInfo]:
        """Files of a commit at or under ``prefix``, sorted by path."""
        if commit_id is None:
            return []
        prefix = normalize(prefix)
        if prefix == "/":
            return self._files("SELECT path, hash, size FROM files WHERE commit_id=? "
                               "ORDER BY path", commit_id)
        # A range of the primary key: "/a" and the paths under "/a/" sort from "/a" to
        # before "/a0" (with "/a.b" and the like among them, left out here).
        return [info for info in self._files(
            "SELECT path, hash, size FROM files WHERE commit_id=? AND path>=? AND path<? "
            "ORDER BY path", commit_id, prefix, prefix + "0")
            if info.path == prefix or info.path.startswith(prefix + "/")]

    def shot_history(self, repo: str, shot: str) -> list[tuple[str, dict[str, str]]]:
        """Each commit of ``repo``, the newest first, with the files of render job ``shot``
        it holds (``in_shot``: path -> hash), in one read."""
        with self.lock:
            # One range of the primary key holds "/S", "/S.blend" and "/S/...": "/S" to
            # before "/S0" (with "/S-x" and the like, left out here).
            rows = self.db.execute(
                "SELECT c.id, f.path, f.hash FROM commits c LEFT JOIN files f ON "
                "f.commit_id=c.id AND f.path>=? AND f.path<? WHERE c.repo=? ORDER BY c.seq DESC",
                (f"/{shot}", f"/{shot}0", repo)).fetchall()
        history: dict[str, dict[str, str]] = {}
        for row in rows:
            files = history.setdefault(row["id"], {})
            if row["path"] is not None and in_shot(row["path"], shot):
                files[row["path"]] = row["hash"]
        return list(history.items())

    def changes(self, commit_id: str, parent: str | None) -> tuple[dict[str, str], list[str]]:
        """What a commit changed from ``parent`` (None: from nothing): path -> hash of each
        file added or changed, and each path removed. Compared in SQLite, not in Python."""
        with self.lock:
            put = self.db.execute("SELECT path, hash FROM files WHERE commit_id=? EXCEPT "
                                  "SELECT path, hash FROM files WHERE commit_id=?",
                                  (commit_id, parent)).fetchall()
            gone = self.db.execute("SELECT path FROM files WHERE commit_id=? EXCEPT "
                                   "SELECT path FROM files WHERE commit_id=?",
                                   (parent, commit_id)).fetchall()
        return {r["path"]: r["hash"] for r in put}, [r["path"] for r in gone]

    def _files(self, sql: str, *args: object) -> list[FileInfo]:
        with self.lock:
            rows = self.db.execute(sql, args).fetchall()
        return [FileInfo(r["path"], r["hash"], r["size"]) for r in rows]

    def stamp(self) -> tuple[int, int]:
        """Changes the store has had, as this connection sees them: a write of another
        connection moves the first number (SQLite's ``data_version``), one of this
        connection the second. Equal stamps: nothing was written in between."""
        with self.lock:
            version = self.db.execute("PRAGMA data_version").fetchone()[0]
            return int(version), self.db.total_changes

    def write_commit(self, repo: str, branch: str, files: Mapping[str, FileInfo], *,
                     parent: str | None, state: str = "finished", job: str | None = None,
                     move_head: bool = True,
                     provenance: Mapping[str, str | None] | None = None) -> Commit:
        """Record a commit holding exactly ``files``, atomically with its branch head.

        Without ``provenance`` the commit is its own origin (a user's commit)."""
        with self.transaction() as db:
            commit_id = self._insert_commit(db, repo, branch, files, parent, state, job,
                                            move_head, provenance)
        return self.commit(commit_id)

    def write_shot_commit(self, repo: str, shot: str, files: Mapping[str, FileInfo], *,
                          state: str, job: str, provenance: Mapping[str, str | None]) -> Commit:
        """Record a shot job's output commit on master: the head's files with the shot's own
        (``/SHOT.blend``, ``/SHOT/...``) replaced by ``files``. The head is read in the same
        transaction, so shot jobs closing at once each keep the others' files. A failed
        commit does not move the head (the branch keeps its last good output)."""
        with self.transaction() as db:
            row = db.execute("SELECT head FROM branches WHERE repo=? AND name='master'",
                             (repo,)).fetchone()
            head = row["head"] if row else None
            merged = {f.path: f for f in self.files(head) if not in_shot(f.path, shot)}
            merged.update(files)
            ok = state == "finished"
            commit_id = self._insert_commit(db, repo, "master", merged if ok else {}, head,
                                            state, job, ok, provenance, shot)
        return self.commit(commit_id)

    def _insert_commit(self, db: sqlite3.Connection, repo: str, branch: str,
                       files: Mapping[str, FileInfo], parent: str | None, state: str,
                       job: str | None, move_head: bool,
                       provenance: Mapping[str, str | None] | None, shot: str | None = None) -> str:
        commit_id = uuid.uuid4().hex
        origin = dict(provenance) if provenance is not None else {repo: commit_id}
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM commits").fetchone()[0]
        db.execute("INSERT INTO commits (id, repo, branch, parent, created, state, job, seq, "
                   "provenance, shot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (commit_id, repo, branch, parent, time.time(), state, job, seq,
                    json.dumps(origin, sort_keys=True), shot))
        db.executemany("INSERT INTO files VALUES (?, ?, ?, ?)",
                       [(commit_id, path, f.hash, f.size) for path, f in files.items()])
        if move_head:
            db.execute("INSERT INTO branches VALUES (?, ?, ?) ON CONFLICT(repo, name) "
                       "DO UPDATE SET head=excluded.head", (repo, branch, commit_id))
        return commit_id

    def modify(self, repo: str, branch: str, change: Callable[[dict[str, FileInfo]], None],
               *, skip_unchanged: bool = False) -> Commit | None:
        """A new commit on ``branch``: ``change`` edits a copy of the head's files.

        The head is read inside the same write transaction as the new commit, so two
        concurrent writers both land (each sees the other's commit), as pachd's
        ModifyFile does. With ``skip_unchanged``, no commit is made (None) when the files
        come out as they were and the branch has a head."""
        self.head(repo, branch)  # a clear error for an unknown repo or branch
        with self.transaction() as db:
            row = db.execute("SELECT head FROM branches WHERE repo=? AND name=?",
                             (repo, branch)).fetchone()
            head = row["head"] if row else None
            current = {f.path: f for f in self.files(head)}
            files = dict(current)
            change(files)
            if skip_unchanged and head and ({p: f.hash for p, f in files.items()}
                                            == {p: f.hash for p, f in current.items()}):
                return None
            commit_id = self._insert_commit(db, repo, branch, files, head, "finished", None,
                                            True, None)
        return self.commit(commit_id)

    def put_files(self, repo: str, branch: str, entries: Iterable[tuple[str, Path]]) -> Commit:
        """A new commit on ``branch``: its head's files plus (or replaced by) ``entries``."""
        added = [(normalize(path), self.add_object(source)) for path, source in entries]

        def change(files: dict[str, FileInfo]) -> None:
            for path, info in added:
                for existing in list(files):  # a file replaces a directory of that name, and back
                    if existing.startswith(path + "/") or path.startswith(existing + "/"):
                        del files[existing]
                files[path] = FileInfo(path, info.hash, info.size)

        commit = self.modify(repo, branch, change)
        assert commit is not None
        return commit


def replace_entries(store: Store, repo: str, branch: str, remove: list[str],
                    entries: list[tuple[str, Path]]) -> Commit | None:
    """One commit that drops the paths under ``remove`` and adds ``entries``; None if that
    would change nothing (rerunning a command then resumes instead of starting over)."""
    added = [(normalize(path), store.add_object(source)) for path, source in entries]

    def change(files: dict[str, FileInfo]) -> None:
        for p in [p for p in files if any(p == r or p.startswith(r.rstrip("/") + "/")
                                          for r in remove)]:
            del files[p]
        for path, info in added:
            files[path] = FileInfo(path, info.hash, info.size)

    return store.modify(repo, branch, change, skip_unchanged=True)
