"""Scene facts: what the Blender-side inspector reads from a .blend (schema ``scene_facts``).

The planner, renderer, merger and encoder decide everything from these facts,
never by opening the .blend themselves.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CameraMarker:
    frame: int
    camera: str


@dataclass(frozen=True)
class ViewLayer:
    name: str
    use: bool  # rendered at all ("Use for Rendering")
    passes: list[str]  # pass names its render result carries, e.g. ["Combined", "Depth"]


@dataclass(frozen=True)
class RenderLayerNode:
    node: str
    layer: str
    outputs: list[str]  # linked output sockets, i.e. the passes the compositor reads


@dataclass(frozen=True)
class Compositor:
    use_compositing: bool  # render.use_compositing
    has_tree: bool  # scene.use_nodes and a node tree with an output
    render_layer_nodes: list[RenderLayerNode]
    file_output_nodes: list[str]  # names of unmuted File Output nodes
    cryptomatte_nodes: bool  # a Cryptomatte node reads the render's metadata


@dataclass(frozen=True)
class Denoise:
    enabled: bool  # the engine denoises the final render
    denoiser: str
    prefilter: str
    quality: str
    input_passes: str
    use_gpu: bool
    film_exposure: float  # scene.cycles.film_exposure: Cycles scales passes by it after denoising


@dataclass(frozen=True)
class AdaptiveSampling:
    """Cycles' adaptive sampling: its filter passes are the only way a pixel's render reads
    its neighbours, so they set the overscan a tile needs (``tilefarm.plan.planner``)."""

    enabled: bool  # scene.cycles.use_adaptive_sampling (False for other engines)
    min_samples: int  # scene.cycles.adaptive_min_samples; 0 is Cycles' automatic choice
    sample_offset: int  # scene.cycles.sample_offset: sample indices start here
    max_samples: int  # the most samples a rendered view layer takes, its overrides included


@dataclass(frozen=True)
class Output:
    file_format: str  # Blender's image format: PNG, JPEG, OPEN_EXR, OPEN_EXR_MULTILAYER, ...
    extension: str  # ".png", ".jpg", ".exr", ...
    color_mode: str
    color_depth: str
    exr_codec: str
    quality: int
    compression: int
    film_transparent: bool
    view_transform: str
    look: str
    exposure: float
    gamma: float
    display_device: str
    dither_intensity: float


@dataclass(frozen=True)
class SoundStrip:
    name: str
    filepath: str
    channel: int
    frame_start: int
    frame_end: int
    volume: float
    mute: bool


@dataclass(frozen=True)
class UnreadFile:
    """A file the .blend names that rendering never reads: a weak library reference, a Text
    datablock's file, a datablock the scene does not use."""

    path: str  # relative to the .blend's folder
    why: str


@dataclass(frozen=True)
class SceneFacts:
    blender_version: str
    scene: str
    scenes: list[str]
    frame_start: int
    frame_end: int
    frame_step: int
    resolution_x: int
    resolution_y: int
    resolution_percentage: int
    width: int  # after percentage, the size of every output frame
    height: int
    fps: int
    fps_base: float
    engine: str
    samples: int
    adaptive_sampling: AdaptiveSampling
    camera: str | None
    camera_markers: list[CameraMarker]
    view_layers: list[ViewLayer]
    compositor: Compositor
    denoise: Denoise
    output: Output
    motion_blur: bool
    use_sequencer: bool
    sequencer_strips: int
    sound_strips: list[SoundStrip]
    freestyle_script: bool  # a view layer renders Freestyle in Python-script mode
    # Features whose pixels depend on the whole frame or on the render as a whole
    # (tilefarm.plan.wholeframe decides from these and ``engine`` whether tiles are exact).
    freestyle: bool  # render.use_freestyle, and a rendered view layer draws Freestyle lines
    path_guiding: bool  # Cycles path guiding (cycles.use_guiding)
    grease_pencil: str  # "effects", "strokes" or "" (no Grease Pencil rendered)
    files: list[str]  # the external files Blender reads to render the scene (side/reads.py),
    # relative to the .blend's folder
    unread_files: list[UnreadFile]  # files the .blend names that the render never reads
