"""A farm's age costs nothing: the store reads a shot's files by a range of its index, the
scheduler's shot index reads only new commits, and the jobs view is made again only for the
jobs a write touched (``state.Views``)."""

from pathlib import Path
from typing import Any

import pytest

from tilefarm.engine.engine import Engine
from tilefarm.engine.shots import ShotIndex
from tilefarm.pipelines.specs import packaged_specs
from tilefarm.server import state


@pytest.fixture()
def engine(tmp_path: Path) -> Any:
    engine = Engine(tmp_path / "store")
    engine.store.create_repo("blends")
    yield engine
    engine.close()


def put(engine: Engine, tmp_path: Path, files: dict[str, str]) -> str:
    """One commit on blends: each path -> its text ('' removes the path)."""
    sources = {}
    for path, text in files.items():
        if text:
            source = tmp_path / "src" / path.strip("/").replace("/", "_")
            source.parent.mkdir(exist_ok=True)
            source.write_text(text)
            sources[path] = engine.store.add_object(source)

    def change(current: dict[str, Any]) -> None:
        for path in files:
            current.pop(path, None)
        current.update(sources)
    commit = engine.store.modify("blends", "master", change)
    assert commit is not None
    return commit.id


def test_a_shots_files_and_a_prefix_are_read_as_they_mean(engine: Engine, tmp_path: Path) -> None:
    put(engine, tmp_path, {"/a.blend": "1", "/a/x.png": "2", "/a/y/z.json": "3",
                           "/a-b.blend": "4", "/a.txt": "5", "/ab/c": "6", "/a0.blend": "7"})
    head = engine.store.head("blends")
    assert head is not None
    assert [f.path for f in engine.store.files(head.id, "/a")] == ["/a/x.png", "/a/y/z.json"]
    assert [f.path for f in engine.store.files(head.id, "/a/y")] == ["/a/y/z.json"]
    assert [f.path for f in engine.store.files(head.id, "/a.txt")] == ["/a.txt"]
    ((commit, files),) = engine.store.shot_history("blends", "a")
    assert commit == head.id and sorted(files) == ["/a.blend", "/a/x.png", "/a/y/z.json"]


def test_a_commits_changes_are_what_it_added_changed_and_removed(engine: Engine,
                                                                 tmp_path: Path) -> None:
    first = put(engine, tmp_path, {"/a.blend": "1", "/b.blend": "2", "/c.blend": "3"})
    second = put(engine, tmp_path, {"/a.blend": "1b", "/b.blend": "", "/d.blend": "4"})
    put_, gone = engine.store.changes(second, first)
    assert sorted(put_) == ["/a.blend", "/d.blend"] and gone == ["/b.blend"]
    put_, gone = engine.store.changes(first, None)
    assert sorted(put_) == ["/a.blend", "/b.blend", "/c.blend"] and gone == []


def test_the_shot_index_read_commit_by_commit_agrees_with_the_history(engine: Engine,
                                                                      tmp_path: Path) -> None:
    """Origins kept across commits equal a fresh index's and the view's own walk of the
    history (``state.shot_commits``), through a change, a change back and a removal."""
    kept = ShotIndex(engine)
    steps = [{"/a.blend": "A"}, {"/b.blend": "B", "/b/tex.png": "t"}, {"/a.blend": "A2"},
             {"/c.blend": "C"}, {"/a.blend": "A"}, {"/b/tex.png": ""}, {"/b.blend": ""},
             {"/b.blend": "B"}]
    for step in steps:
        put(engine, tmp_path, step)
        origins = kept.origins()
        assert origins == ShotIndex(engine).origins()
        seqs = {c.id: n for n, c in enumerate(reversed(engine.store.commits("blends")))}
        for shot, (origin, _) in origins.items():
            assert min(state.shot_commits(engine, shot), key=seqs.__getitem__) == origin
    assert set(kept.origins()) == {"a", "b", "c"}


def test_the_jobs_view_is_made_again_only_for_what_a_write_touched(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    view = state.view

    def counted(engine: Engine, job: str, running: bool, holds: Any = None) -> state.JobView:
        made.append(job)
        return view(engine, job, running, holds)
    monkeypatch.setattr(state, "view", counted)
    for spec in packaged_specs():  # the server's four pipelines, as it makes them
        engine.create_pipeline(spec)
    for shot in ("a", "b", "c"):
        put(engine, tmp_path, {f"/{shot}.blend": shot})
        engine.control.cancel(shot)  # settled: its view moves only by a write
    reader = Engine(engine.store.root, lock=False)
    views = state.Views(reader)
    try:
        assert [v.state for v in views.update(False)] == ["cancelled"] * 3
        assert sorted(made) == ["a", "b", "c"]
        made.clear()
        assert len(views.update(False)) == 3 and made == []  # nothing written: nothing made

        engine.control.set_priority("b", 7)
        shown = {v.job: v for v in views.update(False)}
        assert made == ["b"] and shown["b"].priority == 7
        made.clear()

        put(engine, tmp_path, {"/d.blend": "d"})  # a new job: the others' views are kept
        shown = {v.job: v for v in views.update(False)}
        assert made == ["d"] and shown["d"].state == "queued"
        made.clear()
        views.update(False)
        assert made == []  # not started: it has no elapsed time that moves
        views.update(True)
        assert made == ["d"]  # the engine runs jobs now: a queued job may be running

        put(engine, tmp_path, {"/a.blend": ""})  # a removed job leaves the view
        assert [v.job for v in views.update(False)] == ["b", "c", "d"]
    finally:
        reader.close()
