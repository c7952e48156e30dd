"""Manifest JSON Schemas (``specs/schemas/``), and typed objects to and from JSON.

Every manifest is validated against its schema when written and when read, and
travels as a frozen dataclass. ``load``/``dump`` convert between the two using
the dataclass's type hints, so a new field needs only its schema and its field.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
from referencing import Registry, Resource

from tilefarm.errors import ManifestError, TilefarmError

T = TypeVar("T")


@functools.cache
def _registry() -> Registry:
    registry = Registry()
    for entry in resources.files("tilefarm.specs.schemas").iterdir():
        if entry.name.endswith(".schema.json"):
            schema = json.loads(entry.read_text(encoding="utf-8"))
            registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
    return registry


@functools.cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """The validator of ``specs/schemas/<name>.schema.json``."""
    schema = json.loads(resources.files("tilefarm.specs.schemas").joinpath(f"{name}.schema.json")
                        .read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=_registry())  # type: ignore[no-any-return]


def validate(name: str, document: Any, *, path: Path | str | None = None,
             error: type[TilefarmError] = ManifestError) -> None:
    """Raise ``error`` naming ``path`` and the offending key unless ``document`` fits ``name``."""
    problems = sorted(validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    if not problems:
        return
    first = problems[0]
    where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
    raise error(f"{where}: {_describe(first)} (schema {name}.schema.json)", path=path)


def _describe(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        return f"unknown key(s) {', '.join(map(repr, extra))}; allowed: {', '.join(allowed)}"
    return err.message


def dump(obj: Any) -> Any:
    """A dataclass (or list/primitive) as plain JSON data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: dump(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [dump(item) for item in obj]
    if isinstance(obj, dict):
        return {key: dump(value) for key, value in obj.items()}
    return obj


def load(cls: type[T], data: Any) -> T:
    """Build ``cls`` from JSON data already validated against its schema."""
    return typing.cast(T, _build(cls, data))


def _build(hint: Any, data: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        if data is None:
            return None
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _build(inner[0], data)
    if origin in (list, tuple):
        (item,) = typing.get_args(hint)[:1]
        built = [_build(item, value) for value in data]
        return tuple(built) if origin is tuple else built
    if origin is dict:
        _, value_hint = typing.get_args(hint)
        return {key: _build(value_hint, value) for key, value in data.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint)
        fields = {f.name for f in dataclasses.fields(hint)}
        return hint(**{key: _build(hints[key], value) for key, value in data.items() if key in fields})
    if hint is float and isinstance(data, int):
        return float(data)
    return data


def read_json(path: Path, name: str, cls: type[T]) -> T:
    """Read and validate a manifest file into its typed object."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError("no such manifest", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"not valid JSON ({exc})", path=path) from None
    validate(name, document, path=path)
    return load(cls, document)


def to_document(name: str, obj: Any) -> Any:
    """``obj`` as JSON data, validated against its schema (the write side)."""
    document = dump(obj)
    validate(name, document)
    return document
