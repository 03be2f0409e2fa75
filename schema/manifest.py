"""A schema version's manifest (schema/<store>/vN/manifest.yaml), read and checked the same way for every store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources.abc import Traversable

import yaml


class SchemaError(RuntimeError):
    """The schema files or the database's schema bookkeeping are not usable."""


@dataclass
class Manifest:
    version: int
    min_compatible_version: int
    description: str
    files: list[str]
    # Recorded in the store's schema history, so an edited manifest of an applied version shows.
    md5: str


def read_manifest(number: int, directory: Traversable) -> Manifest:
    """The manifest of version `number` in `directory`, or SchemaError naming what is wrong with it."""
    text = (directory / "manifest.yaml").read_text(encoding="utf-8")
    manifest = yaml.safe_load(text)
    if not isinstance(manifest, dict):
        raise SchemaError(f"{directory.name}/manifest.yaml is not a mapping")
    version = manifest.get("version")
    min_compatible = manifest.get("min_compatible_version")
    files = manifest.get("files")
    if version != number:
        raise SchemaError(f"{directory.name}/manifest.yaml says version {version!r}, expected {number}")
    if not isinstance(min_compatible, int) or not 0 < min_compatible <= number:
        raise SchemaError(f"{directory.name}/manifest.yaml: bad min_compatible_version {min_compatible!r}")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise SchemaError(f"{directory.name}/manifest.yaml: `files` must be a non-empty list of file names")
    return Manifest(
        version=number,
        min_compatible_version=min_compatible,
        description=str(manifest.get("description", "")),
        files=files,
        md5=hashlib.md5(text.encode()).hexdigest(),
    )
