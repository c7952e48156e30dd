"""Template jobs on the server: the templates it keeps, the fields each offers, and a new
variant made from the page's form.

A template arrives whole (``submit --server`` packs it with ``stage_template``). Once intake
has taken it, the server keeps its folder in ``STORE/templates/<job>/``. Its fields are the
names its variants already use (text objects, images, scene values), which intake has
checked against the .blend; a value's type is the type those variants give it. A new
variant is a copy of the kept folder (files hard-linked) whose ``tilefarm.json`` holds that
one variant, taken by the same intake as any upload; the kept template then records it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tilefarm.errors import SettingsError
from tilefarm.plan.settings import SETTINGS_FILE, read_settings
from tilefarm.splitter.intake import check_job_name

TEMPLATES = "templates"  # in the store
KINDS = ("text", "images", "values")


@dataclass(frozen=True)
class Field:
    kind: str  # text, images or values
    key: str  # the text object, image datablock or scene property
    type: str  # string, file, boolean, integer or number

    def document(self) -> dict[str, str]:
        return {"field": f"{self.kind}.{self.key}", "kind": self.kind, "key": self.key,
                "type": self.type}


def _type(values: list[Any]) -> str:
    if values and all(type(v) is bool for v in values):
        return "boolean"
    if values and all(type(v) is int for v in values):
        return "integer"
    if values and all(type(v) in (int, float) for v in values):
        return "number"
    return "string"


def _document(folder: Path) -> dict[str, Any]:
    return json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def fields(folder: Path) -> list[Field]:
    """What a kept template's variants set, as form fields."""
    variants = read_settings(folder / SETTINGS_FILE).variants or {}
    found: dict[tuple[str, str], list[Any]] = {}
    for variant in variants.values():
        for kind in KINDS:
            for key, value in (getattr(variant, kind) or {}).items():
                found.setdefault((kind, key), []).append(value)
    kinds = {"text": lambda v: "string", "images": lambda v: "file", "values": _type}
    return [Field(kind, key, kinds[kind](values)) for (kind, key), values in sorted(
        found.items(), key=lambda item: (KINDS.index(item[0][0]), item[0][1]))]


def kept(root: Path) -> dict[str, Path]:
    """Job -> the folder of each template the server keeps."""
    base = root / TEMPLATES
    return {p.name: p for p in sorted(base.iterdir()) if (p / SETTINGS_FILE).is_file()} \
        if base.is_dir() else {}


def listing(root: Path, jobs: set[str]) -> list[dict[str, Any]]:
    """``GET /api/templates``: each template, its fields, and its variants that are jobs."""
    found = []
    for job, folder in kept(root).items():
        variants = sorted(_document(folder).get("variants") or {})
        found.append({"job": job, "fields": [f.document() for f in fields(folder)],
                      "variants": [{"name": name, "job": f"{job}-{name}"}
                                   for name in variants if f"{job}-{name}" in jobs]})
    return found


def keep(root: Path, entry: Path) -> None:
    """Keep a template intake has taken (a job folder whose settings have variants),
    replacing an older one of the same job."""
    settings = entry / SETTINGS_FILE
    if not entry.is_dir() or not settings.is_file() or not _document(entry).get("variants"):
        return
    base = root / TEMPLATES
    base.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=base))
    shutil.copytree(entry, staging / "t")
    target = base / entry.name
    old = base / f".{entry.name}-old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    (staging / "t").rename(target)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def convert(field: Field, text: str) -> Any:
    """A form value (text) as the type of the template's property."""
    if field.type == "string":
        return text
    word = text.strip()
    try:
        if field.type == "boolean":
            return {"true": True, "1": True, "yes": True, "on": True, "false": False,
                    "0": False, "no": False, "off": False}[word.lower()]
        if field.type == "integer":
            return int(word)
        return float(word)
    except (KeyError, ValueError):
        raise SettingsError(f"values.{field.key}: {text!r} is not a{'n' if field.type[0] in 'ai' else ''} "
                            f"{field.type}, as the template's property is", path="form") from None


def variant_folder(root: Path, job: str, name: str, form: dict[str, str],
                   images: dict[str, tuple[str, Path]], into: Path) -> Path:
    """A job folder ``into/<job>`` holding the template and the one new variant ``name``
    the form describes (``text.X``, ``values.Y``, and ``max_workers`` for its job; ``images``:
    datablock -> (file name, the uploaded file)). Raises SettingsError naming the field for what the form gets wrong."""
    folder = kept(root)[job]
    if not name:
        raise SettingsError("name: give the variant a name, e.g. zoe", path="form")
    check_job_name(f"{job}-{name}", "name")
    offered = {(f.kind, f.key): f for f in fields(folder)}
    variant: dict[str, dict[str, Any]] = {}
    workers = form.pop("max_workers", "").strip()
    if workers and not (workers.isdigit() and int(workers) >= 1):
        raise SettingsError(f"max_workers: {workers!r} is not a worker count; use 1 or more, "
                            "or leave it empty", path="form")
    for key, text in form.items():
        kind, _, field = key.partition(".")
        if (kind, field) not in offered or kind == "images":
            raise SettingsError(f"{key}: the template has no such field; it has "
                                f"{', '.join(sorted(f'{k}.{f}' for k, f in offered))}", path="form")
        variant.setdefault(kind, {})[field] = convert(offered[kind, field], text)
    target = into / job
    shutil.copytree(folder, target, copy_function=os.link)
    for key, (filename, upload) in images.items():
        if ("images", key) not in offered:
            raise SettingsError(f"images.{key}: the template has no such image; it has "
                                f"{', '.join(sorted(f for k, f in offered if k == 'images'))}",
                                path="form")
        inside = f"variants/{name}/{key}{PurePosixPath(filename).suffix.lower()}"
        (target / inside).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(upload, target / inside)
        variant.setdefault("images", {})[key] = inside
    document = _document(folder)
    document["variants"] = {name: variant}
    if workers:  # this job's alone: the kept template does not learn it
        document["max_workers"] = int(workers)
    (target / SETTINGS_FILE).unlink()  # a link to the kept file: written anew, not through
    (target / SETTINGS_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return target


def record(root: Path, job: str, name: str, made: Path) -> None:
    """The kept template learns the variant made from ``made`` (its folder, taken)."""
    folder = kept(root)[job]
    variant = _document(made)["variants"][name]
    for inside in (variant.get("images") or {}).values():
        (folder / inside).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(made / inside, folder / inside)
    document = _document(folder)
    document.setdefault("variants", {})[name] = variant
    written = folder / f".{SETTINGS_FILE}.new"
    written.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    written.replace(folder / SETTINGS_FILE)
