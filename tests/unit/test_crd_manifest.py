"""The CRD users install from manifests/ (and the chart) is the one the controller ships."""

from __future__ import annotations

import pathlib

import yaml

from controller.api.crd import generator_types, load_crd
from generators import registry

MANIFEST = (
    pathlib.Path(__file__).resolve().parents[2]
    / "manifests"
    / "crd"
    / "source.flux.oddkin.co_externalsources.yaml"
)


def test_manifest_is_the_packaged_crd() -> None:
    assert yaml.safe_load(MANIFEST.read_text()) == load_crd()


def test_every_generator_type_the_crd_allows_is_implemented() -> None:
    assert registry.check_types(generator_types()) == []
