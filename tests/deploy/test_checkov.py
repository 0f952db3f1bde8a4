"""Static security scan (checkov) of the rendered chart, the kustomize overlays and
the Dockerfile: every finding must be justified in docs/security.md, and every
justification there must still match a finding (so the document stays exact)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
from typing import Any

import yaml

from tests.deploy.rendering import OVERLAYS, ROOT, kustomize, render_chart

SECURITY_DOC = ROOT / "docs" / "security.md"
CHART_VALUES: dict[str, dict[str, Any]] = {
    "chart-default": {},
    "chart-filesystem": {"storage": {"backend": "filesystem"}},
    "chart-s3-ha-monitoring": {
        "replicas": 2,
        "storage": {"backend": "s3", "s3": {"bucket": "b", "credentialsSecret": {"name": "c"}}},
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboards": {"enabled": True},
    },
}


def checkov() -> str:
    """checkov lives in its own virtualenv (its pins conflict with aiobotocore's)."""
    found = os.environ.get("CHECKOV") or shutil.which("checkov")
    if not found and (ROOT / ".venv-checkov" / "bin" / "checkov").exists():
        found = str(ROOT / ".venv-checkov" / "bin" / "checkov")
    assert found, "checkov not found: see docs/security.md (Static scan) for the install step"
    return found


def scan(target: pathlib.Path, framework: str) -> set[tuple[str, str]]:
    """(check id, resource) of every failed check; offline (no Prisma Cloud download)."""
    flag = "-f" if target.is_file() else "-d"
    env = {
        **os.environ,
        "BC_SKIP_MAPPING": "TRUE",
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE",
        "CKV_PARSE_ERROR_FAIL": "TRUE",
    }
    result = subprocess.run(
        [
            checkov(),
            flag,
            str(target),
            "--framework",
            framework,
            "--skip-download",
            "--quiet",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout) if result.stdout.strip() else []
    if isinstance(reports, dict):
        reports = [reports]
    failed: set[tuple[str, str]] = set()
    for report in reports:
        assert report.get("summary", {}).get("parsing_errors", 0) == 0, report["summary"]
        assert report["summary"]["passed"] > 0, "checkov scanned nothing"
        for check in report["results"]["failed_checks"]:
            failed.add((check["check_id"], check["resource"]))
    return failed


def justified() -> set[str]:
    """Check ids in the findings table of docs/security.md (`| CKV_… | … |` rows)."""
    text = SECURITY_DOC.read_text(encoding="utf-8")
    return set(re.findall(r"^\|\s*`?(CKV2?_[A-Z0-9_]+)`?\s*\|", text, flags=re.MULTILINE))


def test_every_checkov_finding_is_justified(tmp_path: pathlib.Path) -> None:
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    for name, values in CHART_VALUES.items():
        objects, _ = render_chart(values)
        (rendered / f"{name}.yaml").write_text(yaml.safe_dump_all(objects), encoding="utf-8")
    for overlay in OVERLAYS:
        objects = kustomize(overlay)
        name = "kustomize-" + overlay.replace("/", "-")
        (rendered / f"{name}.yaml").write_text(yaml.safe_dump_all(objects), encoding="utf-8")
    findings = scan(rendered, "kubernetes") | scan(ROOT / "Dockerfile", "dockerfile")
    found_ids = {check_id for check_id, _ in findings}
    documented = justified()
    unexplained = sorted(f for f in findings if f[0] not in documented)
    assert not unexplained, f"fix or justify in docs/security.md: {unexplained}"
    stale = sorted(documented - found_ids)
    assert not stale, f"docs/security.md justifies checks that no longer fail: {stale}"
