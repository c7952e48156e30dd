"""The requests tilefarm sends to its Blender child: one frozen dataclass per kind.

Both ends use this module: the parent builds requests (pure functions in each stage)
and ``encode``s them to JSON; the child ``decode``s and checks them on arrival against
these same types (exact keys, exact types), so a misspelt or mistyped field fails
loudly instead of being read as a default. It needs nothing but the standard library,
because Blender's own Python imports it too (by its bare name, from this directory).

Fields marked ``per_call`` change from one call to the next on a warm Blender (which
frame, which files); every other field, with the file itself, decides whether the child
may keep the scene it has loaded (``session_key``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

# Cycles device types a render may ask for; CPU needs no device present.
GPU_DEVICES = ("CUDA", "OPTIX", "HIP", "ONEAPI", "METAL")
DEVICES = ("CPU", *GPU_DEVICES)


class RequestError(ValueError):
    """A request does not match its type."""


def per_call(default: Any = dataclasses.MISSING) -> Any:
    """A field that may change between calls to one warm Blender without reloading the file."""
    return field(default=default, metadata={"per_call": True})


@dataclass(frozen=True)
class Region:
    """The pixels a tile renders (top-left origin, half-open) and the border fractions
    that give exactly them (bottom-left origin)."""

    x0: int
    y0: int
    x1: int
    y1: int
    min_x: float
    max_x: float
    min_y: float
    max_y: float


@dataclass(frozen=True)
class DenoiseSettings:
    """How the scene's render denoised, for the Denoise node the compose inserts."""

    enabled: bool
    prefilter: str
    quality: str
    input_passes: str
    # Without adaptive sampling Cycles denoises the unscaled sum of the samples and its film
    # scales the result by this (a power of two): the compose denoises Combined / scale and
    # multiplies back (tilefarm.plan.wholeframe.denoise_sum_scale). None: denoise as it is.
    sum_scale: float | None = None


@dataclass(frozen=True)
class InspectRequest:
    action: ClassVar[str] = "inspect"
    reusable: ClassVar[bool] = False
    blend: str
    scene: str | None


@dataclass(frozen=True)
class RenderRequest:
    """Render ``frames``: raw multilayer EXR tiles of ``region`` (``mode`` tiles), or
    whole final frames exactly as Blender's own animation render (``mode`` final)."""

    action: ClassVar[str] = "render"
    reusable: ClassVar[bool] = True
    blend: str
    scene: str | None
    mode: str  # "tiles" or "final"
    width: int
    height: int
    denoise: bool  # the scene denoises: tiles carry its denoising data passes instead
    threads: int  # 0: Blender's automatic count
    device: str  # one of DEVICES
    file_format: str  # the final format, for mode "final"
    frames: list[int] = per_call()
    region: Region | None = per_call()  # None: the whole frame
    targets: list[str] = per_call()  # one file per frame
    previews: list[str | None] = per_call()  # an 8-bit PNG per frame, where the format needs one
    file_outputs: list[str] = per_call()  # per frame, where File Output nodes write (final)


@dataclass(frozen=True)
class ComposeRequest:
    """Run the scene's output stage once on a merged frame (DESIGN.md point 4)."""

    action: ClassVar[str] = "compose"
    reusable: ClassVar[bool] = True
    blend: str
    scene: str | None
    file_format: str
    denoise: DenoiseSettings
    # "image_nodes": Render Layers nodes read the merged EXR through Image nodes (view
    # layers off); "render_result": a pass-through engine loads it as the render result.
    stage: str
    frame: int = per_call()
    merged: str = per_call()  # the assembled multilayer EXR
    target: str = per_call()
    preview: str | None = per_call()
    file_outputs: str | None = per_call()  # where File Output nodes write (render_result)


@dataclass(frozen=True)
class MixdownRequest:
    """The scene's own audio mixdown as 16-bit PCM WAV (the result is None if silent)."""

    action: ClassVar[str] = "mixdown"
    reusable: ClassVar[bool] = False
    blend: str
    scene: str | None
    target: str


@dataclass(frozen=True)
class DemoRequest:
    """Write the demo scene (no .blend is opened)."""

    action: ClassVar[str] = "demo"
    reusable: ClassVar[bool] = False
    target: str
    frames: int
    width: int
    height: int
    samples: int
    denoise: bool


@dataclass(frozen=True)
class SubstituteRequest:
    """Save a copy of a template with one variant's substitutions applied (opened with
    scripts disabled; nothing the file or the settings carry runs)."""

    action: ClassVar[str] = "substitute"
    reusable: ClassVar[bool] = False
    blend: str
    scene: str | None
    variant: str  # its name, for errors
    text: dict[str, str]  # text (FONT) object name -> body
    images: dict[str, str]  # image datablock name -> path as the copy names it ("//photos/a.png")
    values: dict[str, bool | int | float | str]  # scene custom property -> value
    target: str  # the copy, beside the template so its relative paths hold


Request = Union[InspectRequest, RenderRequest, ComposeRequest, MixdownRequest, DemoRequest,
                SubstituteRequest]
KINDS: dict[str, type] = {cls.action: cls for cls in typing.get_args(Request)}


def encode(request: Request) -> dict[str, Any]:
    """The request as the JSON object the child reads: its fields plus ``action``."""
    return {"action": request.action, **dataclasses.asdict(request)}


def decode(document: Any) -> Request:
    """Check ``document`` against its request type and build it; RequestError otherwise."""
    if not isinstance(document, dict):
        raise RequestError("a request must be a JSON object")
    action = document.get("action")
    cls = KINDS.get(action) if isinstance(action, str) else None
    if cls is None or not isinstance(action, str):
        raise RequestError(f"unknown action {action!r}; known: {', '.join(sorted(KINDS))}")
    body = {k: v for k, v in document.items() if k != "action"}
    return typing.cast(Request, _build(cls, body, action))


def session_key(request: Request, stat: tuple[int, int]) -> tuple[Any, ...]:
    """What must not change for a warm child to reuse its loaded file: the kind, the
    file's (mtime_ns, size), and every field not marked ``per_call``."""
    kept = tuple((f.name, _frozen(getattr(request, f.name))) for f in dataclasses.fields(request)
                 if not f.metadata.get("per_call"))
    return (request.action, stat, kept)


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _build(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise RequestError(f"{where}: expected an object, got {type(value).__name__}")
        fields = {f.name: f for f in dataclasses.fields(hint)}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise RequestError(f"{where}: unknown field(s) {', '.join(unknown)}")
        hints = typing.get_type_hints(hint)
        missing = [n for n, f in fields.items() if n not in value
                   and f.default is dataclasses.MISSING]
        if missing:
            raise RequestError(f"{where}: missing field(s) {', '.join(missing)}")
        return hint(**{n: _build(hints[n], v, f"{where}.{n}") for n, v in value.items()})
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _build(option, value, where)
            except RequestError as exc:
                errors.append(str(exc))
        raise RequestError("; ".join(errors) or f"{where}: null is not allowed")
    if origin is dict:
        if not isinstance(value, dict):
            raise RequestError(f"{where}: expected an object, got {type(value).__name__}")
        _, item = typing.get_args(hint)
        return {k: _build(item, v, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise RequestError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(hint)
        return [_build(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and type(value) is hint:
        return value
    raise RequestError(f"{where}: expected {getattr(hint, '__name__', hint)}, "
                       f"got {type(value).__name__} {value!r}")
