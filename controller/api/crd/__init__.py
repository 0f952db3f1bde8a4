"""The ExternalSource CRD shipped as package data; manifests/crd/ holds an identical copy.

Package data cannot live outside the package, and kustomize will not load a
file outside its directory, so the file exists twice and a test fails when the
copy differs (tests/unit/api/test_crd.py).

The controller reads it at start-up to check that every generator type the
CRD allows has an implementation, and tests compare it with the validation
rules, so the schema users install and the code that runs cannot drift apart.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

import yaml


@functools.cache
def load_crd() -> dict[str, Any]:
    """The CRD document (cached: read once per process)."""
    text = importlib.resources.files(__name__).joinpath("externalsources.yaml").read_text("utf-8")
    crd: dict[str, Any] = yaml.safe_load(text)
    return crd


def spec_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the served version (the whole object, not only `spec`)."""
    schema: dict[str, Any] = load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def generator_types() -> list[str]:
    """The generator types the CRD's enum allows."""
    gen = spec_schema()["properties"]["spec"]["properties"]["generator"]
    return list(gen["properties"]["type"]["enum"])
