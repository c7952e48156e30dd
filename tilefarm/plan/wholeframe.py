"""Which scenes tiles cannot reproduce, and why: such frames are rendered whole.

A tile is exact only where a pixel depends on nothing outside its own render region
(plus the overscan). That is proven for Cycles alone (DESIGN.md); every other engine,
and some features, read the whole frame or make renders irreproducible. For those the
planner renders whole frames whatever grid was asked, records why in the plan, and
``tilefarm render`` prints the reason (STYLE.md 14: no silent fallbacks).
"""

from __future__ import annotations

import math
import struct
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


# Cycles filters adaptive sampling after sample indices s with s % 16 == 15 past the minimum
# samples (AdaptiveSampling::need_filter). The minimum is 4 or more, automatic or not, so
# counting from 4 (and from index 0, not the sample offset) counts passes high, never low.
ADAPTIVE_STEP = 16
ADAPTIVE_MIN_SAMPLES = 4


def adaptive_filter_passes(facts: SceneFacts) -> int:
    """How many adaptive-sampling filter passes a render of the scene runs, at most."""
    adaptive = facts.adaptive_sampling
    if facts.engine != "CYCLES" or not adaptive.enabled:
        return 0
    last = adaptive.sample_offset + adaptive.max_samples - 1  # the last sample index rendered
    floor = max(ADAPTIVE_MIN_SAMPLES, adaptive.min_samples)
    return max(0, (last + 1) // ADAPTIVE_STEP - (floor + 1) // ADAPTIVE_STEP)


def _f32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def denoise_sum_scale(facts: SceneFacts) -> float | None:
    """Where Cycles denoises the unscaled sum of the samples (adaptive sampling off), the
    scale its film applies afterwards, ``f32(f32(1 / samples) * film_exposure)``, if it is a
    power of two (then Combined / scale is that sum, bit for bit) and one view layer renders
    (several may override the sample count each); else None."""
    if not facts.denoise.enabled or facts.adaptive_sampling.enabled:
        return None
    if sum(1 for layer in facts.view_layers if layer.use) > 1:
        return None
    samples, exposure = facts.adaptive_sampling.max_samples, facts.denoise.film_exposure
    scale = _f32(_f32(1.0 / samples) * _f32(exposure))
    return scale if scale > 0 and math.frexp(scale)[0] == 0.5 else None


def _denoise_reason(facts: SceneFacts) -> str | None:
    """Where Cycles' own denoiser works on other numbers than the merged frame holds.

    Cycles denoises its render buffers (intern/cycles/integrator/denoiser_oidn.cpp) and
    reads them with a film exposure of 1, applying the scene's exposure afterwards. Without
    adaptive sampling it hands OpenImageDenoise the unscaled sum of the samples ("OIDN will
    perform auto-exposure, so scaling is not needed for the color pass unless adaptive
    sampling is used"); with it, each pixel's mean, which is what the frame holds, and it
    writes back ``f32(f32(D * c) * f32(1 / c))`` for a pixel of ``c`` samples, which is ``D``
    again only where ``c`` is a power of two. The merged frame holds the scaled, exposed
    pass, and OpenImageDenoise's auto-exposure is not exactly scale-invariant. Measured on
    the public temple scene (stuntrally/blendfiles, mayantemple.blend, adaptive sampling
    off): 219,025 of 226,338 float values differ by up to 1.8e-6; the fixtures
    ``denoise_no_adaptive`` and ``denoise_exposure`` reproduce it in 72x54 px. So tiles are
    used where the compose can feed the Denoise node what Cycles fed OpenImageDenoise and
    scale its result as Cycles does: without adaptive sampling, where the film's scale is a
    power of two (``denoise_sum_scale``: the sum is then Combined / scale exactly); with
    it, where every pixel ends at the same power-of-two count (no adaptive filter pass,
    ``adaptive_filter_passes``) at exposure 1."""
    samples = facts.adaptive_sampling.max_samples
    if not facts.adaptive_sampling.enabled:
        if denoise_sum_scale(facts) is not None:
            return None
        return (f"Cycles denoising without adaptive sampling at {samples} samples and a film "
                f"exposure of {facts.denoise.film_exposure:g}: Cycles denoises the sum of the "
                "samples, which the tiles' pixels give back exactly only where 1/samples x "
                "exposure is a power of two")
    if facts.denoise.film_exposure != 1.0:
        return (f"Cycles denoising with a film exposure of {facts.denoise.film_exposure:g}: "
                "Cycles denoises before the exposure, which tiles cannot undo exactly")
    if adaptive_filter_passes(facts) > 0:
        return ("Cycles denoising with adaptive sampling that stops pixels at different "
                "sample counts: Cycles rescales each denoised pixel by its count, which "
                "tiles cannot repeat exactly")
    if samples & (samples - 1):
        return (f"Cycles denoising at {samples} samples, not a power of two: Cycles "
                "rescales each denoised pixel by its count, which tiles cannot repeat exactly")
    return None


def whole_frame_reason(facts: SceneFacts, file_format: str) -> str | None:
    """Why this scene's frames must be rendered whole, or None where tiles are exact."""
    if facts.engine != TILED_ENGINE:
        return ENGINE_REASONS.get(
            facts.engine, f"render engine {facts.engine}: tiles are proven exact for Cycles only")
    for applies, reason in FEATURE_REASONS:
        if applies(facts):
            return reason
    denoise_reason = _denoise_reason(facts) if facts.denoise.enabled else None
    if denoise_reason is not None:
        return denoise_reason
    if facts.denoise.enabled and output_stage(facts, file_format) == "render_result":
        # Blender's own render result holds the denoised Combined; the pass-through engine
        # can only load what the tiles rendered (noisy, denoising off).
        return (f"Cycles denoising with {_render_result_outputs(facts, file_format)}: the "
                "denoised render result cannot be rebuilt from tiles yet")
    return None
