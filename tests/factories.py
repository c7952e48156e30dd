"""Scene facts for pure tests, shaped as the inspector reports them."""

from __future__ import annotations

import dataclasses
from typing import Any

from tilefarm.plan.facts import AdaptiveSampling, Compositor, Denoise, Output, SceneFacts


def make_facts(**overrides: Any) -> SceneFacts:
    base = SceneFacts(
        blender_version="4.5.15 LTS", scene="Scene", scenes=["Scene"],
        frame_start=1, frame_end=10, frame_step=1,
        resolution_x=97, resolution_y=61, resolution_percentage=100, width=97, height=61,
        fps=24, fps_base=1.0, engine="CYCLES", samples=16,
        adaptive_sampling=AdaptiveSampling(enabled=True, min_samples=0, sample_offset=0,
                                           max_samples=16),
        camera="Camera", camera_markers=[],
        view_layers=[], compositor=Compositor(True, False, [], [], False),
        denoise=Denoise(False, "OPENIMAGEDENOISE", "ACCURATE", "HIGH", "RGB_ALBEDO_NORMAL", False,
                        1.0),
        output=Output("PNG", ".png", "RGBA", "8", "ZIP", 90, 15, False, "AgX", "None", 0.0, 1.0,
                      "sRGB", 1.0),
        motion_blur=False, use_sequencer=True, sequencer_strips=0, sound_strips=[],
        freestyle_script=False, freestyle=False, path_guiding=False, grease_pencil="", files=[],
        unread_files=[])
    return dataclasses.replace(base, **overrides)
