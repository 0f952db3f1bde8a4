"""The chart's `config:` values and their JSON schema, generated from the controller's flags.

Every controller flag is either set by the chart from a structured value
(`CHART_MANAGED`: ports, storage backend, leader election, hooks wiring) or
passed through from `.Values.config` under its flag name. Generating that
block and its schema from `controller.config.flag_specs()` keeps the chart in
step with the settings classes; `test_chart.py` fails when they drift.

    .venv/bin/python -m tests.deploy.chartvalues   # rewrite values.yaml and values.schema.json
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from controller.config import FlagSpec, flag_specs, format_duration

CHART = pathlib.Path(__file__).resolve().parents[2] / "charts" / "externalsource-controller"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"
BEGIN = "# --- BEGIN GENERATED config ---\n"
END = "# --- END GENERATED config ---\n"

#: flags the chart derives from structured values (see templates/_helpers.tpl)
CHART_MANAGED = {
    "config": "not used: the chart passes flags, not a config file",
    "metrics-addr": "ports.metrics",
    "health-addr": "ports.health",
    "storage-addr": "ports.artifacts",
    "storage-adv-addr": "storage.advertisedAddress (default: the Service's DNS name)",
    "enable-leader-election": "leaderElection.enabled, forced on when replicas > 1",
    "storage-backend": "storage.backend",
    "storage-path": "storage.filesystem.path",
    "s3-bucket": "storage.s3.bucket",
    "s3-endpoint": "storage.s3.endpoint",
    "s3-region": "storage.s3.region",
    "s3-prefix": "storage.s3.prefix",
    "s3-path-style": "storage.s3.pathStyle",
    "s3-ca-bundle": "storage.s3.caSecret",
    "s3-credentials-dir": "storage.s3.credentialsSecret (mounted as files)",
    "hooks-endpoint": "hooks.enabled and hooks.port",
    "hooks-whitelist": "hooks.whitelist / hooks.existingWhitelistConfigMap",
    "hooks-token-file": "hooks.enabled (a per-pod token in a memory emptyDir)",
}

_GO_DURATION = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"


def passthrough_specs() -> list[FlagSpec]:
    """Flags that `.Values.config` sets, in declaration order."""
    return [s for s in flag_specs() if s.key not in CHART_MANAGED]


def _shown_default(spec: FlagSpec) -> str:
    if spec.default is None or spec.default == "":
        return "unset"
    if spec.kind is bool:
        return str(spec.default).lower()
    if spec.duration:
        return format_duration(spec.default)
    if isinstance(spec.default, (list, tuple)):
        return ",".join(spec.default) or "empty"
    return str(spec.default)


def values_block() -> str:
    lines = [BEGIN, "config:\n"]
    for spec in passthrough_specs():
        lines.append(f"  # {spec.help} (controller default: {_shown_default(spec)})\n")
        lines.append(f"  {spec.key}: null\n")
    lines.append(END)
    return "".join(lines)


def schema_property(spec: FlagSpec) -> dict[str, Any]:
    prop: dict[str, Any] = {"description": f"{spec.flag}: {spec.help}"}
    if spec.choices is not None:
        prop["enum"] = [*spec.choices, None]
    elif spec.duration:
        prop["type"] = ["string", "null"]
        prop["pattern"] = _GO_DURATION
    elif spec.kind is bool:
        prop["type"] = ["boolean", "null"]
    elif spec.kind is int:
        prop["type"] = ["integer", "null"]
    elif spec.kind is float:
        prop["type"] = ["number", "null"]
    elif spec.kind in (list, tuple):
        prop["type"] = ["array", "string", "null"]
        prop["items"] = {"type": "string"}
    else:
        prop["type"] = ["string", "null"]
    return prop


def schema_document(current: dict[str, Any]) -> dict[str, Any]:
    """`current` (the schema file) with `properties.config.properties` regenerated."""
    config = current["properties"]["config"]
    config["properties"] = {s.key: schema_property(s) for s in passthrough_specs()}
    return current


def render_values(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + values_block() + tail


def render_schema(text: str) -> str:
    return json.dumps(schema_document(json.loads(text)), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    VALUES.write_text(render_values(VALUES.read_text(encoding="utf-8")), encoding="utf-8")
    SCHEMA.write_text(render_schema(SCHEMA.read_text(encoding="utf-8")), encoding="utf-8")
