"""Every manifest in docs/examples/ is a valid ExternalSource the controller can parse."""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

from controller.api import parse_external_source, reasons, validate_source
from controller.api.crd import spec_schema
from controller.api.names import KIND
from tests.unit.api.test_crd import schema_nodes

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


API_DOC = EXAMPLES[0].parents[1] / "api.md"


def test_api_doc_lists_every_field_of_the_crd() -> None:
    doc = API_DOC.read_text()
    mentioned = set(re.findall(r"`((?:spec|status)\.[^`]*)`", doc))
    table_rows = set(re.findall(r"^\| `((?:spec|status)\.[^`]*)`", doc, flags=re.MULTILINE))
    fields = {
        re.sub(r"\.(preRequest|postRequest)\[\]", ".*[]", path.lstrip("."))
        for path, _ in schema_nodes(spec_schema())
    }
    fields = {
        f for f in fields if f.startswith(("spec.", "status.")) and not f.endswith(("[]", "{}"))
    }
    assert fields - mentioned == set()
    assert table_rows - fields == set()


def test_api_doc_lists_every_condition_type_and_reason() -> None:
    doc = API_DOC.read_text()
    names = [
        value
        for name, value in vars(reasons).items()
        if name.isupper() and isinstance(value, str) and value[:1].isupper() and "." not in value
    ]
    assert "Ready" in names
    assert [n for n in names if f"`{n}`" not in doc] == []
