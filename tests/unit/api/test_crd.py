"""The CRD and the models describe the same API, and the CRD rejects what validation rejects.

Walks the CRD's openAPIV3Schema and the attrs models side by side (fields,
required fields, types, enums, defaults), compares the CRD's limits with the
validation module's, evaluates every `x-kubernetes-validations` CEL rule with
cel-python, and checks the manifests/crd copy is the package's file.
"""

from __future__ import annotations

import pathlib
import types
import typing
from typing import Any

import attrs
import celpy
import jsonschema
import pytest
import yaml
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from controller.api import models, names, reasons, validation
from controller.api.crd import generator_types, load_crd, spec_schema
from controller.api.durations import SPEC_DURATION_PATTERN
from controller.api.wire import from_wire, wire_fields
from tests.unit.api.cases import CASES, Case, valid_spec

ROOT = pathlib.Path(__file__).resolve().parents[3]
PACKAGE_CRD = ROOT / "controller" / "api" / "crd" / "externalsources.yaml"
MANIFEST_CRD = ROOT / "manifests" / "crd" / "source.flux.oddkin.co_externalsources.yaml"
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.yaml"))
SCALARS = {str: "string", int: "integer", bool: "boolean"}
# type and object metadata: the models default them for building objects in code,
# the API server never defaults them
KUBERNETES_OWNED = {".apiVersion", ".kind", ".metadata"}


def schema_at(*path: str) -> dict[str, Any]:
    node = spec_schema()
    for part in path:
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


# --- models vs schema -----------------------------------------------------


def _unwrap(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return inner
    return hint


def _default(field: attrs.Attribute[Any]) -> Any:
    factory = getattr(field.default, "factory", None)
    return factory() if callable(factory) else field.default


def _compare(hint: Any, node: dict[str, Any], path: str) -> list[str]:
    """Differences between a model type and a schema node."""
    hint = _unwrap(hint)
    origin = typing.get_origin(hint)
    if hint is models.ObjectMeta:
        return [] if node == {"type": "object"} else [f"{path}: metadata is Kubernetes' schema"]
    if origin is typing.Literal:
        ok = node.get("type") == "string" and node.get("enum") == list(typing.get_args(hint))
        return [] if ok else [f"{path}: enum {node.get('enum')} != {typing.get_args(hint)}"]
    if origin is list:
        if node.get("type") != "array":
            return [f"{path}: model has a list, CRD has {node.get('type')}"]
        return _compare(typing.get_args(hint)[0], node["items"], f"{path}[]")
    if origin is dict:
        ok = node.get("type") == "object" and node.get("additionalProperties") == {"type": "string"}
        return [] if ok else [f"{path}: model has a string map, CRD does not"]
    if hint in SCALARS:
        ok = node.get("type") == SCALARS[hint]
        return [] if ok else [f"{path}: model {hint.__name__}, CRD {node.get('type')}"]
    return _compare_object(hint, node, path)


def _compare_object(cls: type, node: dict[str, Any], path: str) -> list[str]:
    if node.get("type") != "object" or "properties" not in node:
        return [f"{path}: model {cls.__name__} is an object with fields, CRD is not"]
    wire_names = wire_fields(cls)
    problems = [
        f"{path}.{name}: only in the {side}"
        for side, only in (
            ("models", set(wire_names.values()) - set(node["properties"])),
            ("CRD", set(node["properties"]) - set(wire_names.values())),
        )
        for name in sorted(only)
    ]
    hints = typing.get_type_hints(cls)
    fields = attrs.fields_dict(cls)
    required = {wire_names[a] for a in wire_names if fields[a].default is attrs.NOTHING}
    if required != set(node.get("required", [])):
        problems.append(f"{path}: required {sorted(required)} != {node.get('required')}")
    for attr, wire in wire_names.items():
        if wire not in node["properties"]:
            continue
        sub = node["properties"][wire]
        problems += _compare(hints[attr], sub, f"{path}.{wire}")
        problems += _compare_default(fields[attr], _unwrap(hints[attr]), sub, f"{path}.{wire}")
    return problems


def _compare_default(
    field: attrs.Attribute[Any], hint: Any, node: dict[str, Any], path: str
) -> list[str]:
    model = _default(field)
    if path in KUBERNETES_OWNED:
        return []
    if "default" not in node:
        ok = model in (attrs.NOTHING, None, [], {})
        return [] if ok else [f"{path}: model default {model!r}, CRD has none"]
    crd = node["default"]
    if attrs.has(hint):
        crd = from_wire(hint, crd)
    return [] if crd == model else [f"{path}: default {model!r} != CRD {node['default']!r}"]


def test_the_crd_and_the_models_have_the_same_fields_types_enums_and_defaults() -> None:
    assert _compare_object(models.ExternalSource, spec_schema(), "") == []


def test_the_comparison_notices_a_field_missing_from_the_crd() -> None:
    node = schema_at("spec", "generator")
    trimmed = {**node, "properties": {k: v for k, v in node["properties"].items() if k != "s3"}}
    assert _compare_object(models.GeneratorSpec, trimmed, "spec.generator") == [
        "spec.generator.s3: only in the models"
    ]


def test_the_comparison_notices_a_default_that_differs() -> None:
    node = schema_at("spec", "hooks", "preRequest", "[]")
    timeout = {**node["properties"]["timeout"], "default": "1m"}
    changed = {**node, "properties": {**node["properties"], "timeout": timeout}}
    assert _compare_object(models.Hook, changed, "hook") == [
        "hook.timeout: default '30s' != CRD '1m'"
    ]


def test_generator_types_are_one_list() -> None:
    assert generator_types() == list(models.GENERATOR_TYPES) == ["http", "s3"]
    statuses = (reasons.TRUE, reasons.FALSE, reasons.UNKNOWN)
    assert typing.get_args(models.ConditionStatus) == statuses


def test_the_crds_limits_are_the_validations() -> None:
    hook = schema_at("spec", "hooks", "postRequest", "[]")
    ca_key = schema_at("spec", "generator", "http", "caBundleSecretRef", "key")
    assert schema_at("spec", "interval")["pattern"] == SPEC_DURATION_PATTERN
    assert schema_at("spec", "timeout")["pattern"] == SPEC_DURATION_PATTERN
    assert hook["properties"]["timeout"]["pattern"] == SPEC_DURATION_PATTERN
    assert schema_at("spec", "interval")["maxLength"] == validation.MAX_DURATION_LENGTH
    max_retries = schema_at("spec", "maxRetries")
    assert (max_retries["minimum"], max_retries["maximum"]) == (
        validation.MIN_MAX_RETRIES,
        validation.MAX_MAX_RETRIES,
    )
    assert schema_at("spec", "generator", "http", "url")["maxLength"] == validation.MAX_URL_LENGTH
    assert schema_at("spec", "destinationPath")["maxLength"] == (
        validation.MAX_DESTINATION_PATH_LENGTH
    )
    assert schema_at("spec", "hooks", "preRequest")["maxItems"] == validation.MAX_HOOKS
    assert hook["properties"]["name"]["pattern"] == validation.HOOK_NAME_PATTERN
    assert hook["properties"]["name"]["maxLength"] == validation.MAX_HOOK_NAME_LENGTH
    assert hook["properties"]["command"]["pattern"] == validation.COMMAND_PATTERN
    env_name = hook["properties"]["env"]["items"]["properties"]["name"]
    assert env_name["pattern"] == validation.ENV_NAME_PATTERN
    assert ca_key["pattern"] == validation.SECRET_KEY_PATTERN


def test_identity_subresource_and_printer_columns() -> None:
    crd = load_crd()
    crd_names = crd["spec"]["names"]
    assert crd["spec"]["group"] == names.GROUP
    assert crd["metadata"]["name"] == f"{names.PLURAL}.{names.GROUP}"
    assert (crd_names["kind"], crd_names["plural"], crd_names["singular"]) == (
        names.KIND,
        names.PLURAL,
        names.SINGULAR,
    )
    assert (crd_names["shortNames"], crd_names["categories"]) == (
        [names.SHORT_NAME],
        [names.CATEGORY],
    )
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == (names.VERSION, True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Status": '.status.conditions[?(@.type=="Ready")].message',
        "Revision": ".status.artifact.revision",
        "Age": ".metadata.creationTimestamp",
    }


def schema_nodes(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += schema_nodes(sub, f"{path}.{name}")
    if "items" in node:
        found += schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += schema_nodes(node["additionalProperties"], f"{path}{{}}")
    return found


def test_the_schema_is_structural() -> None:
    nodes = schema_nodes(spec_schema())
    assert [path or "(root)" for path, node in nodes if "type" not in node] == []
    assert not any("x-kubernetes-preserve-unknown-fields" in node for _, node in nodes)


def test_the_manifest_copy_is_the_package_file() -> None:
    assert MANIFEST_CRD.read_bytes() == PACKAGE_CRD.read_bytes(), (
        f"run: cp {PACKAGE_CRD.relative_to(ROOT)} {MANIFEST_CRD.relative_to(ROOT)}"
    )
    kustomization = yaml.safe_load((MANIFEST_CRD.parent / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [MANIFEST_CRD.name]


# --- the CRD rejects what validation rejects --------------------------------

CEL = celpy.Environment()
JSON_TYPES = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}


def _structural(node: Any) -> Any:
    """The schema as JSON Schema: the x-kubernetes-* extensions are checked separately."""
    if isinstance(node, dict):
        return {k: _structural(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if isinstance(node, list):
        return [_structural(v) for v in node]
    return node


def _rule_holds(rule: str, value: Any) -> bool:
    """False also when evaluation fails: the API server reports that as invalid too."""
    try:
        result = CEL.program(CEL.compile(rule)).evaluate({"self": json_to_cel(value)})
    except CELEvalError:
        return False
    return isinstance(result, celpy.celtypes.BoolType) and bool(result)


def _extension_failures(node: dict[str, Any], value: Any, path: str) -> list[str]:
    """CEL rules and list-map key uniqueness, as the API server applies them."""
    if not isinstance(value, JSON_TYPES.get(node.get("type", ""), object)):
        return []
    failures = [
        f"{path}: {rule['message']}"
        for rule in node.get("x-kubernetes-validations", [])
        if not _rule_holds(rule["rule"], value)
    ]
    if node.get("x-kubernetes-list-type") == "map":
        keys = [tuple(i.get(k) for k in node["x-kubernetes-list-map-keys"]) for i in value]
        if len(set(keys)) != len(keys):
            failures.append(f"{path}: duplicate list-map key")
    for name, sub in node.get("properties", {}).items():
        if isinstance(value, dict) and name in value:
            failures += _extension_failures(sub, value[name], f"{path}.{name}")
    if "items" in node and isinstance(value, list):
        for i, item in enumerate(value):
            failures += _extension_failures(node["items"], item, f"{path}[{i}]")
    return failures


def crd_rejections(spec: Any) -> list[str]:
    document = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": "x"},
        "spec": spec,
    }
    schema = spec_schema()
    errors = jsonschema.Draft7Validator(_structural(schema)).iter_errors(document)
    return [e.message for e in errors] + _extension_failures(schema, document, "")


def test_every_cel_rule_compiles() -> None:
    nodes = schema_nodes(spec_schema())
    rules = [r["rule"] for _, node in nodes for r in node.get("x-kubernetes-validations", [])]
    assert len(rules) >= 9
    for rule in rules:
        CEL.compile(rule)


def test_a_valid_spec_passes_the_crd() -> None:
    assert crd_rejections(valid_spec()) == []


@pytest.mark.parametrize("case", [c for c in CASES if c.crd], ids=lambda c: c.id)
def test_the_crd_rejects_what_validation_rejects(case: Case) -> None:
    assert crd_rejections(case.spec) != []


@pytest.mark.parametrize("case", [c for c in CASES if not c.crd], ids=lambda c: c.id)
def test_fields_the_api_server_prunes_are_caught_by_validation_only(case: Case) -> None:
    assert crd_rejections(case.spec) == []


@pytest.mark.parametrize(
    ("spec_changes", "message"),
    [
        ({"interval": "59s"}, ".spec: interval must be at least 1m"),
        ({"generator": {"type": "s3"}}, ".spec.generator: s3 is required when type is s3"),
        ({"destinationPath": "a/./b"}, ".spec.destinationPath: destinationPath must not contain"),
    ],
)
def test_cel_rules_say_what_is_wrong(spec_changes: dict[str, Any], message: str) -> None:
    assert any(r.startswith(message) for r in crd_rejections({**valid_spec(), **spec_changes}))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_pass_the_crd(path: pathlib.Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == names.KIND:
            assert crd_rejections(doc["spec"]) == []
