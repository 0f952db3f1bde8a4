"""`externalsource fetch`: one reconcile without a cluster, same code as the controller."""

from __future__ import annotations

import asyncio
import hashlib
import pathlib
import sys
from typing import Any

import yaml

from tests.integration.test_reconcile import extract_like_flux, source

SCRIPT = pathlib.Path(sys.executable).with_name("externalsource")


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_fetch_writes_the_artifact_the_controller_would_publish(
    origin: Any, tmp_path: pathlib.Path
) -> None:
    origin.set("/flags", body=b'{"a": 1}', etag='"v1"')
    manifest = source("flags", origin.url("/flags"))
    manifest["spec"]["generator"]["http"]["headersSecretRef"] = {"name": "api"}
    (tmp_path / "source.yaml").write_text(yaml.safe_dump(manifest))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "api"},
        "stringData": {"Authorization": "Bearer s3cr3t-value"},
    }
    (tmp_path / "secret.yaml").write_text(yaml.safe_dump(secret))

    code, out, err = await run(
        "fetch", "-f", str(tmp_path / "source.yaml"),
        "--secret-file", str(tmp_path / "secret.yaml"), "--out", str(tmp_path / "out"),
    )  # fmt: skip

    assert code == 0, err
    fields = dict(line.split(":", 1) for line in out.splitlines())
    path = pathlib.Path(fields["path"].strip())
    blob = path.read_bytes()
    digest = fields["digest"].strip()
    assert digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert fields["revision"].strip() == f"latest@{digest}"
    assert path.name == f"{digest.split(':')[1]}.tar.gz"
    assert extract_like_flux(blob, digest) == {"flags/data.json": b'{"a": 1}'}
    assert origin.requests_for("/flags")[-1].headers["Authorization"] == "Bearer s3cr3t-value"
    assert "s3cr3t-value" not in out + err


async def test_fetch_reports_a_missing_secret_in_one_line(
    origin: Any, tmp_path: pathlib.Path
) -> None:
    manifest = source("flags", origin.url("/flags"))
    manifest["spec"]["generator"]["http"]["headersSecretRef"] = {"name": "absent"}
    (tmp_path / "source.yaml").write_text(yaml.safe_dump(manifest))
    code, _, err = await run("fetch", "-f", str(tmp_path / "source.yaml"), "--out", str(tmp_path))
    assert code == 1
    assert err.strip().splitlines() == ["error: Secret 'apps/absent' not found"]
