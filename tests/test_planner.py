import dataclasses
import math

import numpy as np
import pytest

from tests.factories import make_facts
from tilefarm.errors import SceneError, UsageError
from tilefarm.plan.facts import AdaptiveSampling, CameraMarker, Compositor, Denoise, SceneFacts
from tilefarm.plan.model import Plan, Tiling, Versions
from tilefarm.plan.planner import adaptive_filter_passes, make_plan
from tilefarm.plan.wholeframe import denoise_sum_scale
from tilefarm.plan.schemas import dump, load, to_document, validate
from tilefarm.plan.settings import MAX_AUTO_OVERSCAN, JobSettings


def plan(settings: JobSettings | None = None, **facts: object) -> Plan:
    return make_plan("shot", "shot.blend", make_facts(**facts), settings or JobSettings())


@pytest.mark.parametrize("tiles", ["1x1", "3x3", "7x5", "2x1"])
@pytest.mark.parametrize("chunk", [1, 3, 4, 10, 25])
def test_tasks_cover_each_frame_and_tile_once(tiles: str, chunk: int) -> None:
    p = plan(JobSettings(tiles=tiles, chunk=chunk))
    assert p.frames == list(range(1, 11))
    assert len(p.tasks) == math.ceil(len(p.frames) / chunk) * len(p.tiles)
    seen = [(f, t.tile.index if t.tile else 0) for t in p.tasks for f in t.frames]
    assert sorted(seen) == sorted((f, i) for f in p.frames for i in range(len(p.tiles)))
    assert all(len(t.frames) <= chunk for t in p.tasks)
    hits = np.zeros((p.height, p.width), dtype=int)
    for tile in p.tiles:
        hits[tile.y0:tile.y1, tile.x0:tile.x1] += 1
    assert (hits == 1).all()


def test_untiled_tasks_have_null_tile() -> None:
    p = plan()
    assert [t.tile for t in p.tasks] == [None] * 10
    assert [(t.x0, t.y0, t.x1, t.y1) for t in p.tiles] == [(0, 0, 97, 61)]
    assert p.tasks[0].id == "c00000"


def test_overscan_grows_the_render_region_within_the_frame() -> None:
    p = plan(JobSettings(tiles="3x3", overscan=16))
    middle = p.tiles[4]
    assert (middle.x0, middle.y0, middle.x1, middle.y1) == (32, 20, 64, 40)
    r = middle.render
    assert (r.x0, r.y0, r.x1, r.y1) == (16, 4, 80, 56)
    corner = p.tiles[0].render
    assert (corner.x0, corner.y0) == (0, 0)
    assert (corner.min_x, corner.max_y) == (0.0, 1.0)


def test_frame_step_and_explicit_frames() -> None:
    assert plan(frame_start=1, frame_end=10, frame_step=3).frames == [1, 4, 7, 10]
    assert plan(JobSettings(frames="20,1-3"), frame_step=3).frames == [1, 2, 3, 20]


def test_resolution_comes_from_facts_after_percentage() -> None:
    p = plan(resolution_x=160, resolution_y=100, resolution_percentage=50, width=80, height=50)
    assert (p.width, p.height) == (80, 50)


def test_no_camera_is_refused_unless_a_marker_binds_one() -> None:
    with pytest.raises(SceneError, match="has no camera"):
        plan(camera=None)
    assert plan(camera=None, camera_markers=[CameraMarker(1, "Cam")]).frames


def test_freestyle_python_line_style_is_refused() -> None:
    with pytest.raises(SceneError, match="Freestyle with a Python line style"):
        plan(freestyle_script=True)


def test_errors_name_where_the_setting_came_from() -> None:
    with pytest.raises(UsageError, match=r"^job/tilefarm.json: tiles: 98x1 tiles do not fit"):
        make_plan("shot", "shot.blend", make_facts(), JobSettings(tiles="98x1"),
                  {"tiles": "job/tilefarm.json: tiles"})
    with pytest.raises(UsageError, match=r"^--chunk: 0 frames per task"):
        make_plan("shot", "shot.blend", make_facts(), JobSettings(chunk=0), {"chunk": "--chunk"})


def test_output_format_override_and_preview() -> None:
    assert plan().output.extension == ".png" and not plan().output.preview
    exr = plan(JobSettings(output_format="OPEN_EXR"))
    assert (exr.output.file_format, exr.output.extension, exr.output.preview) == ("OPEN_EXR", ".exr", True)


def test_plan_round_trips_through_its_schema() -> None:
    p = plan(JobSettings(tiles="3x2", chunk=4))
    document = dump(p)
    validate("plan", document)
    assert load(Plan, document) == p


def test_schema_rejects_unknown_keys() -> None:
    document = dump(plan())
    document["tasks"][0]["extra"] = 1
    with pytest.raises(Exception, match="unknown key"):
        validate("plan", document)


def adaptive(samples: int, *, enabled: bool = True, min_samples: int = 0, offset: int = 0,
             engine: str = "CYCLES", layer_samples: int | None = None) -> SceneFacts:
    return make_facts(samples=samples, engine=engine, adaptive_sampling=AdaptiveSampling(
        enabled=enabled, min_samples=min_samples, sample_offset=offset,
        max_samples=samples if layer_samples is None else layer_samples))


def test_adaptive_filter_passes_follow_cycles_schedule() -> None:
    # Cycles filters after sample indices 15, 31, 47, ... once past the minimum (4 or more).
    assert adaptive_filter_passes(adaptive(4)) == 0
    assert adaptive_filter_passes(adaptive(15)) == 0
    assert adaptive_filter_passes(adaptive(16)) == 1
    assert adaptive_filter_passes(adaptive(64)) == 4
    assert adaptive_filter_passes(adaptive(64, min_samples=15)) == 3  # index 15 is not past 15
    assert adaptive_filter_passes(adaptive(64, min_samples=14)) == 4
    assert adaptive_filter_passes(adaptive(64, min_samples=64)) == 0
    assert adaptive_filter_passes(adaptive(8, offset=8)) == 1  # indices 8..15
    assert adaptive_filter_passes(adaptive(8, layer_samples=64)) == 4  # a view layer's override
    assert adaptive_filter_passes(adaptive(4096, enabled=False)) == 0
    assert adaptive_filter_passes(adaptive(4096, engine="BLENDER_EEVEE_NEXT")) == 0


def test_default_overscan_is_what_adaptive_sampling_needs() -> None:
    tiles = JobSettings(tiles="3x3")
    assert make_plan("shot", "shot.blend", adaptive(8), tiles).overscan == 0
    assert make_plan("shot", "shot.blend", adaptive(128), tiles).overscan == 8
    assert make_plan("shot", "shot.blend", adaptive(4096), tiles).overscan == MAX_AUTO_OVERSCAN
    assert make_plan("shot", "shot.blend", adaptive(4096, enabled=False), tiles).overscan == 0
    # A job's own overscan always wins.
    assert make_plan("shot", "shot.blend", adaptive(8), JobSettings(tiles="3x3", overscan=5)).overscan == 5


@pytest.mark.parametrize("facts, reason", [
    ({"engine": "BLENDER_EEVEE_NEXT"}, "EEVEE: screen-space effects read beyond a tile"),
    ({"engine": "BLENDER_EEVEE"}, "EEVEE: screen-space effects read beyond a tile"),
    ({"engine": "BLENDER_WORKBENCH"}, "Workbench: its anti-aliasing and screen-space effects"),
    ({"engine": "OCTANE"}, "render engine OCTANE: tiles are proven exact for Cycles only"),
    ({"grease_pencil": "effects"}, "Grease Pencil shader effects read the whole frame"),
    ({"grease_pencil": "strokes"}, "Grease Pencil strokes are drawn and anti-aliased"),
    ({"freestyle": True}, "Freestyle: its lines are drawn over the whole frame"),
    ({"path_guiding": True}, "Cycles path guiding learns from the whole render"),
])
def test_frames_that_cannot_be_tiled_are_planned_whole_with_the_reason(
        facts: dict[str, object], reason: str) -> None:
    p = plan(JobSettings(tiles="2x2"), **facts)
    assert p.grid == [1, 1] and not p.tiled and all(t.tile is None for t in p.tasks)
    assert (p.tiling.grid, p.tiling.requested) == ("1x1", "2x2")
    assert p.tiling.reason is not None and p.tiling.reason.startswith(reason)
    assert to_document("plan", p)["tiling"]["reason"] == p.tiling.reason


def test_tileable_scenes_keep_their_grid_and_say_nothing() -> None:
    p = plan(JobSettings(tiles="3x2"))
    assert p.grid == [3, 2] and p.tiling == Tiling("3x2", "3x2", None)
    assert plan(JobSettings(), engine="BLENDER_EEVEE_NEXT").tiling == Tiling("1x1", "1x1", None)


def test_a_bad_grid_is_an_error_even_for_a_whole_frame_scene() -> None:
    with pytest.raises(UsageError, match="do not fit"):
        plan(JobSettings(tiles="98x1"), engine="BLENDER_EEVEE_NEXT")


def test_outputs_that_need_the_render_result_get_blenders_own_output_stage() -> None:
    assert plan(JobSettings(tiles="2x2")).output.stage == "image_nodes"
    assert plan(JobSettings(tiles="2x2", output_format="OPEN_EXR_MULTILAYER")).output.stage == \
        "render_result"
    for compositor in (Compositor(True, True, [], ["File Output"], False),
                       Compositor(True, True, [], [], True)):
        assert plan(JobSettings(tiles="2x2"), compositor=compositor).output.stage == "render_result"


def test_denoised_render_result_outputs_are_rendered_whole() -> None:
    denoise = Denoise(True, "OPENIMAGEDENOISE", "ACCURATE", "HIGH", "RGB_ALBEDO_NORMAL", False,
                      1.0)
    quiet = AdaptiveSampling(enabled=True, min_samples=0, sample_offset=0, max_samples=8)
    p = plan(JobSettings(tiles="2x2", output_format="OPEN_EXR_MULTILAYER"), denoise=denoise,
             adaptive_sampling=quiet)
    assert p.grid == [1, 1] and p.tiling.reason == (
        "Cycles denoising with multilayer EXR output: the denoised render result cannot be "
        "rebuilt from tiles yet")
    assert plan(JobSettings(tiles="2x2"), denoise=denoise,
                adaptive_sampling=quiet).grid == [2, 2]  # PNG: image nodes


def test_denoising_that_tiles_cannot_rebuild_is_rendered_whole() -> None:
    """Tiles of a denoised frame are exact only where Cycles' own denoiser sees what the
    merged frame holds and gives it back unchanged (wholeframe._denoise_reason): adaptive
    sampling on, every pixel at one power-of-two count, film exposure 1."""
    on = Denoise(True, "OPENIMAGEDENOISE", "ACCURATE", "HIGH", "RGB_ALBEDO_NORMAL", False, 1.0)

    def adaptive(enabled: bool, samples: int) -> AdaptiveSampling:
        return AdaptiveSampling(enabled=enabled, min_samples=0, sample_offset=0,
                                max_samples=samples)

    def reason(denoise: Denoise = on, sampling: AdaptiveSampling = adaptive(True, 8)) -> object:
        return plan(JobSettings(tiles="2x2"), denoise=denoise,
                    adaptive_sampling=sampling).tiling.reason

    assert reason(sampling=adaptive(False, 12)) == (
        "Cycles denoising without adaptive sampling at 12 samples and a film exposure of 1: "
        "Cycles denoises the sum of the samples, which the tiles' pixels give back exactly "
        "only where 1/samples x exposure is a power of two")
    # Where the film's scale is a power of two the merger denoises Combined / scale, the sum.
    assert reason(sampling=adaptive(False, 16)) is None
    fixed = make_facts(denoise=on, adaptive_sampling=adaptive(False, 16))
    assert denoise_sum_scale(fixed) == 1 / 16
    assert denoise_sum_scale(dataclasses.replace(
        fixed, denoise=dataclasses.replace(on, film_exposure=2.0))) == 1 / 8
    assert denoise_sum_scale(dataclasses.replace(
        fixed, denoise=dataclasses.replace(on, film_exposure=1.5))) is None
    assert denoise_sum_scale(make_facts(denoise=on)) is None  # adaptive: no sum to rebuild
    assert reason(dataclasses.replace(on, film_exposure=0.5)) == (
        "Cycles denoising with a film exposure of 0.5: Cycles denoises before the exposure, "
        "which tiles cannot undo exactly")
    assert reason(sampling=adaptive(True, 64)) == (
        "Cycles denoising with adaptive sampling that stops pixels at different sample "
        "counts: Cycles rescales each denoised pixel by its count, which tiles cannot repeat "
        "exactly")
    assert reason(sampling=adaptive(True, 12)) == (
        "Cycles denoising at 12 samples, not a power of two: Cycles rescales each denoised "
        "pixel by its count, which tiles cannot repeat exactly")
    assert reason() is None and reason(sampling=adaptive(True, 4)) is None
    assert plan(JobSettings(tiles="2x2"), adaptive_sampling=adaptive(False, 12)).grid == [2, 2]


def test_the_plan_records_the_chosen_runtime_and_refuses_facts_from_another() -> None:
    """Facts inspected by another Blender than the one that renders would plan other pixels."""
    chosen = Versions("4.2", "4.5", "saved by Blender 4.2, rendered with Blender 4.5, ...")
    assert make_plan("shot", "shot.blend", make_facts(), JobSettings(),
                     versions=chosen).blender == chosen
    with pytest.raises(SceneError, match=r"inspected by Blender 4\.5, but the job renders "
                                         r"with 5\.0"):
        make_plan("shot", "shot.blend", make_facts(), JobSettings(),
                  versions=Versions("5.0", "5.0", None))
    same = make_plan("shot", "shot.blend", make_facts(), JobSettings())
    assert to_document("plan", same)["blender"] == {"saved_by": "4.5", "rendered_by": "4.5",
                                                    "note": None}
