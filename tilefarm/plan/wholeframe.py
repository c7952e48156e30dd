"""Which scenes tiles cannot reproduce, and why: such frames are rendered whole.

A tile is exact only where a pixel depends on nothing outside its own render region
(plus the overscan). That is proven for Cycles alone (DESIGN.md); every other engine,
and some features, read the whole frame or make renders irreproducible. For those the
planner renders whole frames whatever grid was asked, records why in the plan, and
``tilefarm render`` prints the reason (STYLE.md 14: no silent fallbacks).
"""

from __future__ import annotations

from collections.abc import Callable

from tilefarm.plan.facts import SceneFacts

# The engine whose tiles are proven exact; any other renders whole frames.
TILED_ENGINE = "CYCLES"

# Why each known engine is rendered whole (EEVEE's id is BLENDER_EEVEE_NEXT in 4.2-4.5
# and BLENDER_EEVEE before and since 5.0).
ENGINE_REASONS = {
    "BLENDER_EEVEE": "EEVEE: screen-space effects read beyond a tile",
    "BLENDER_EEVEE_NEXT": "EEVEE: screen-space effects read beyond a tile",
    "BLENDER_WORKBENCH": "Workbench: its anti-aliasing and screen-space effects read beyond a "
                         "tile",
}

# Features that make a Cycles frame untileable, checked in this order.
FEATURE_REASONS: tuple[tuple[Callable[[SceneFacts], bool], str], ...] = (
    (lambda f: f.grease_pencil == "effects",
     "Grease Pencil shader effects read the whole frame"),
    (lambda f: f.grease_pencil == "strokes",
     "Grease Pencil strokes are drawn and anti-aliased over the whole frame"),
    (lambda f: f.freestyle, "Freestyle: its lines are drawn over the whole frame"),
    (lambda f: f.path_guiding,
     "Cycles path guiding learns from the whole render, so a tile cannot match it"),
)


def output_stage(facts: SceneFacts, file_format: str) -> str:
    """How the merger runs the scene's output stage on a merged frame.

    ``render_result``: Blender's own, on the merged passes loaded as the render result
    (a pass-through engine), where the output needs the render result itself: a
    multilayer EXR holds every pass and its metadata, File Output nodes fire during
    compositing, Cryptomatte nodes read the render's manifests. ``image_nodes``: the
    compositor reads the merged frame through Image nodes, view layers off (cheaper:
    no scene evaluation), for every other output."""
    needs_result = (file_format == "OPEN_EXR_MULTILAYER" or facts.compositor.file_output_nodes
                    or facts.compositor.cryptomatte_nodes)
    return "render_result" if needs_result else "image_nodes"


def _render_result_outputs(facts: SceneFacts, file_format: str) -> str:
    return " and ".join(name for name, present in (
        ("multilayer EXR output", file_format == "OPEN_EXR_MULTILAYER"),
        ("File Output nodes", bool(facts.compositor.file_output_nodes)),
        ("Cryptomatte nodes", facts.compositor.cryptomatte_nodes)) if present)


def whole_frame_reason(facts: SceneFacts, file_format: str) -> str | None:
    """Why this scene's frames must be rendered whole, or None where tiles are exact."""
    if facts.engine != TILED_ENGINE:
        return ENGINE_REASONS.get(
            facts.engine, f"render engine {facts.engine}: tiles are proven exact for Cycles only")
    for applies, reason in FEATURE_REASONS:
        if applies(facts):
            return reason
    if facts.denoise.enabled and output_stage(facts, file_format) == "render_result":
        # Blender's own render result holds the denoised Combined; the pass-through engine
        # can only load what the tiles rendered (noisy, denoising off).
        return (f"Cycles denoising with {_render_result_outputs(facts, file_format)}: the "
                "denoised render result cannot be rebuilt from tiles yet")
    return None
