"""The Helm chart, rendered by the real Helm engine: lint, schema, every
backend/replicas/monitoring combination, and the controller's own parser
reading the rendered Deployment args."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import helm_python as helm
import pytest
import yaml

from controller.config import (
    Config,
    FlagSpec,
    flag_specs,
    format_duration,
    load_config,
    parse_value,
)
from tests.deploy import chartvalues
from tests.deploy.rendering import (
    CHART,
    FILESYSTEM,
    FILESYSTEM_RWX,
    MONITORING,
    NAMESPACE,
    ROOT,
    S3,
    assert_hardened,
    container,
    find,
    manager_args,
    only,
    render_chart,
    setting,
    spec_of,
)

DASHBOARD = CHART / "dashboards" / "externalsource-controller.json"


def parsed(deployment: dict[str, Any]) -> Config:
    """The rendered args and env as the controller itself reads them."""
    env = {e["name"]: e.get("value", "") for e in container(deployment, "manager")["env"]}
    return load_config(manager_args(deployment), env)


def test_lint_is_clean() -> None:
    report = helm.lint(CHART, strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], report
    assert problems == [], report


def test_generated_config_values_and_schema_are_current() -> None:
    values = (CHART / "values.yaml").read_text(encoding="utf-8")
    schema = (CHART / "values.schema.json").read_text(encoding="utf-8")
    hint = "run: .venv/bin/python -m tests.deploy.chartvalues"
    assert values == chartvalues.render_values(values), hint
    assert schema == chartvalues.render_schema(schema), hint


def test_every_controller_flag_has_a_value() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    flags = {s.key for s in flag_specs()}
    assert set(chartvalues.CHART_MANAGED) <= flags, set(chartvalues.CHART_MANAGED) - flags
    assert set(defaults["config"]) | set(chartvalues.CHART_MANAGED) == flags


COMBINATIONS = [
    pytest.param(
        storage, replicas, monitoring, id=f"{label}-{replicas}-{'mon' if monitoring else 'plain'}"
    )
    for label, storage, replicas in [
        ("memory", {}, 1),
        ("filesystem", FILESYSTEM, 1),
        ("filesystem", FILESYSTEM_RWX, 3),
        ("s3", S3, 1),
        ("s3", S3, 3),
    ]
    for monitoring in (False, True)
]


@pytest.mark.parametrize(("storage", "replicas", "monitoring"), COMBINATIONS)
def test_render_combination(storage: dict[str, Any], replicas: int, monitoring: bool) -> None:
    backend = storage.get("backend", "memory")
    values: dict[str, Any] = {"replicas": replicas, "leaderElection": {"enabled": False}}
    if storage:
        values["storage"] = storage
    if monitoring:
        values.update(MONITORING)
    objects, notes = render_chart(values)

    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == replicas
    assert_hardened(deployment)
    config = parsed(deployment)
    assert setting(config, spec_of("storage-backend")) == backend
    assert setting(config, spec_of("enable-leader-election")) is (replicas > 1)
    assert setting(config, spec_of("metrics-addr")) == ":8080"
    assert setting(config, spec_of("health-addr")) == ":9440"
    assert setting(config, spec_of("storage-adv-addr")) == (
        f"exs-externalsource-controller.{NAMESPACE}.svc.cluster.local."
    )
    assert len(find(objects, "PodDisruptionBudget")) == (1 if replicas > 1 else 0)
    assert len(find(objects, "PersistentVolumeClaim")) == (1 if backend == "filesystem" else 0)
    assert len(find(objects, "ServiceMonitor")) == int(monitoring)
    assert len(find(objects, "PrometheusRule")) == int(monitoring)
    assert len(find(objects, "NetworkPolicy")) == 1
    assert "--feature-gates=ExternalArtifact=true" in notes
    for crd in find(objects, "CustomResourceDefinition"):
        assert crd["spec"]["group"] != "source.toolkit.fluxcd.io", "never ship Flux's CRDs"

    manager_env = {e["name"]: e for e in container(deployment, "manager")["env"]}
    if backend == "s3":
        config_s3 = {k: setting(config, spec_of(k)) for k in ("s3-bucket", "s3-endpoint")}
        assert config_s3 == {"s3-bucket": "artifacts", "s3-endpoint": "https://minio.example:9000"}
        credentials_dir = setting(config, spec_of("s3-credentials-dir"))
        mounts = {
            m["mountPath"]: m["name"] for m in container(deployment, "manager")["volumeMounts"]
        }
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        secret = volumes[mounts[credentials_dir]]["secret"]
        assert secret["secretName"] == "s3-creds"
        assert {i["path"] for i in secret["items"]} == {"accesskey", "secretkey"}
        assert not [
            e for e in manager_env.values() if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
        ]
    if backend == "filesystem":
        assert setting(config, spec_of("storage-path")) == "/data"
        mounts = {m["mountPath"] for m in container(deployment, "manager")["volumeMounts"]}
        assert "/data" in mounts
    if monitoring:
        dashboards = only(
            find(objects, "ConfigMap", "exs-externalsource-controller-dashboards"), "ConfigMap"
        )
        assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
        shipped = json.loads(dashboards["data"]["externalsource-controller.json"])
        assert shipped == json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_replicas_know_their_pod_ip_for_forwarding() -> None:
    """Followers forward downloads to the leader at the address it wrote into the Lease."""
    objects, _ = render_chart({"replicas": 2})
    (deployment,) = find(objects, "Deployment")
    manager = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in manager["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert find(objects, "PodDisruptionBudget")


def test_filesystem_with_replicas_needs_read_write_many() -> None:
    with pytest.raises(helm.HelmRenderError, match="ReadWriteMany"):
        render_chart({"replicas": 2, "storage": FILESYSTEM})


def test_schema_rejects_unknown_and_invalid_values() -> None:
    with pytest.raises(helm.HelmValuesError):
        render_chart({"config": {"no-such-flag": 1}})
    with pytest.raises(helm.HelmValuesError):
        render_chart({"config": {"log-level": "loud"}})
    with pytest.raises(helm.HelmValuesError):
        render_chart({"storage": {"backend": "ftp"}})


def _non_default(spec: FlagSpec) -> Any:
    """A valid value different from the controller's default, as a user would write it."""
    strings = {
        "watch-label-selector": "sharding.fluxcd.io/key=shard1",
        "events-addr": "http://notification-controller.flux-system.svc.cluster.local./",
        "leader-election-namespace": "flux-system",
    }
    if spec.choices is not None:
        return next(c for c in reversed(spec.choices) if c != spec.default)
    if spec.kind is bool:
        return not spec.default
    if spec.duration:
        return format_duration((spec.default or 1) * 2)
    if spec.kind in (int, float):
        return (spec.default or 0) + 1
    if spec.kind in (list, tuple):
        return ["a", "b"]
    return strings.get(spec.key, f"/tmp/{spec.key}")


def test_every_config_value_reaches_the_controller() -> None:
    specs = chartvalues.passthrough_specs()
    given = {s.key: _non_default(s) for s in specs}
    objects, _ = render_chart({"config": given})
    config = parsed(only(objects, "Deployment"))
    for spec in specs:
        expected = parse_value(spec, given[spec.key])
        assert setting(config, spec) == expected, spec.flag
        assert expected != spec.default, spec.flag


def test_single_namespace_mode_uses_namespaced_rbac() -> None:
    objects, _ = render_chart({"config": {"watch-all-namespaces": False}})
    roles = find(objects, "Role", "exs-externalsource-controller")
    assert len(roles) == 1
    assert roles[0]["metadata"]["namespace"] == NAMESPACE
    cluster_roles = [r["metadata"]["name"] for r in find(objects, "ClusterRole")]
    assert "exs-externalsource-controller" not in cluster_roles


def test_rbac_only_reads_secrets() -> None:
    """get by name, list/watch for the labelled Secrets of --watch-configs-label-selector."""
    objects, _ = render_chart()
    for role in find(objects, "ClusterRole") + find(objects, "Role"):
        for rule in role["rules"]:
            if "secrets" in rule["resources"]:
                assert rule["verbs"] == ["get", "list", "watch"]


def test_sidecar_gets_whitelist_and_token_but_no_api_access() -> None:
    objects, _ = render_chart({"hooks": {"whitelist": {"commands": []}}})
    deployment = only(objects, "Deployment")
    hooks = container(deployment, "hooks")
    assert hooks["command"] == ["externalsource-hooks-sidecar"]
    args = hooks["args"]
    assert "--addr=127.0.0.1:8090" in args
    whitelist = only(
        find(objects, "ConfigMap", "exs-externalsource-controller-hooks-whitelist"), "ConfigMap"
    )
    assert yaml.safe_load(whitelist["data"]["whitelist.yaml"]) == {"commands": []}
    objects, _ = render_chart({"hooks": {"enabled": False}})
    deployment = only(objects, "Deployment")
    names = [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert names == ["manager"]
    assert not any(a.startswith("--hooks-") for a in manager_args(deployment))


def test_prometheus_rules_pass_promtool(tmp_path: Any) -> None:
    objects, _ = render_chart({"replicas": 2, **MONITORING, "storage": S3})
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(only(objects, "PrometheusRule")["spec"]), encoding="utf-8")
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus (./dev test does as root)"
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {
        r["alert"] for g in only(objects, "PrometheusRule")["spec"]["groups"] for r in g["rules"]
    }
    assert {
        "ExternalSourceNotReady",
        "ExternalSourceReconcileErrors",
        "ExternalSourceWorkqueueBackingUp",
        "ExternalSourceHookFailures",
        "ExternalSourceNoLeader",
    } <= alerts


def test_chart_ships_the_externalsource_crd_of_manifests() -> None:
    shipped = [
        doc
        for path in sorted((ROOT / "manifests" / "crd").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc and doc.get("kind") == "CustomResourceDefinition"
    ]
    assert [c["spec"]["names"]["kind"] for c in shipped] == ["ExternalSource"]
    package_crd = ROOT / "controller" / "api" / "crd" / "externalsources.yaml"
    assert shipped[0] == yaml.safe_load(package_crd.read_text(encoding="utf-8")), (
        "manifests/crd must ship the controller's own CRD (controller/api/crd)"
    )
    objects, _ = render_chart()
    rendered = find(objects, "CustomResourceDefinition")
    assert [c["spec"] for c in rendered] == [c["spec"] for c in shipped]
    assert rendered[0]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    objects, _ = render_chart({"crds": {"install": False}})
    assert find(objects, "CustomResourceDefinition") == []
