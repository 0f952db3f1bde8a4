"""Every manifest in docs/examples/ is a valid ExternalSource the controller can parse."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from controller.api import parse_external_source, validate_source
from controller.api.reasons import KIND

EXAMPLES = sorted(
    (pathlib.Path(__file__).resolve().parents[3] / "docs" / "examples").glob("*.yaml")
)


def test_there_are_examples_of_each_generator() -> None:
    types = {
        doc["spec"]["generator"]["type"]
        for path in EXAMPLES
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == KIND
    }
    assert types == {"http", "s3"}
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_cleanly(path: pathlib.Path) -> None:
    sources = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == KIND]
    assert sources, f"{path.name} has no ExternalSource"
    for doc in sources:
        assert validate_source(doc) == []
        assert parse_external_source(doc).metadata.name == doc["metadata"]["name"]
