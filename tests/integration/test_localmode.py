"""`externalsource fetch`: one reconcile without a cluster, same code as the controller."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import pathlib
import sys
from typing import Any

import pytest
import yaml

from tests.integration.helpers import extract_like_flux, source

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


API_KEY = "sk-live-4f9a7c0e2b6d"


def _shipped_whitelist(tmp_path: pathlib.Path) -> pathlib.Path:
    root = pathlib.Path(__file__).parents[2]
    configmap = yaml.safe_load((root / "manifests/base/hooks-whitelist.yaml").read_text())
    path = tmp_path / "whitelist.yaml"
    path.write_text(configmap["data"]["whitelist.yaml"])
    return path


@pytest.mark.parametrize(
    "jq_filter",
    ['.headers["X-Api-Key"] | tonumber', "error(.headers | tostring)", "error(.headers | @base64)"],
)
async def test_a_hook_echoing_a_header_secret_is_scrubbed(
    origin: Any, tmp_path: pathlib.Path, jq_filter: str
) -> None:
    """A plain jq mistake prints the header value on stderr: the error shows [redacted]."""
    manifest = source("flags", origin.url("/flags"))
    manifest["spec"]["generator"]["http"]["headersSecretRef"] = {"name": "api"}
    manifest["spec"]["hooks"] = {
        "preRequest": [{"name": "sign", "command": "jq", "args": ["-c", jq_filter]}]
    }
    (tmp_path / "source.yaml").write_text(yaml.safe_dump(manifest))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "api"},
        "stringData": {"X-Api-Key": API_KEY},
    }
    (tmp_path / "secret.yaml").write_text(yaml.safe_dump(secret))

    code, out, err = await run(
        "fetch", "-f", str(tmp_path / "source.yaml"),
        "--secret-file", str(tmp_path / "secret.yaml"), "--out", str(tmp_path / "out"),
        "--hooks-whitelist", str(_shipped_whitelist(tmp_path)),
    )  # fmt: skip

    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith("error: hook 'sign' (jq) exited with code 5; stderr: jq: error")
    assert "[redacted]" in line
    assert API_KEY not in out + err
    assert base64.b64encode(API_KEY.encode()).decode()[:20] not in out + err
    assert origin.requests_for("/flags") == []


def _bomb(levels: int = 9) -> str:
    text = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n"
    return text


HOSTILE_SOURCES = {
    "alias-bomb-in-name": "x:\n  "
    + _bomb().replace("\n", "\n  ")
    + "\napiVersion: source.flux.oddkin.co/v1alpha1\nkind: ExternalSource\n"
    "metadata: {name: *a8}\n",
    "alias-bomb-in-apiversion": _bomb() + "apiVersion: *a8\nkind: ExternalSource\n",
    "deep-list": "[" * 50_000 + "]" * 50_000,
    "deep-mapping": "a: {" * 20_000 + "}" * 20_000,
    "huge": "kind: ExternalSource\ndata: '" + "x" * (20 * 1024 * 1024) + "'\n",
    "dotdot-namespace": "apiVersion: source.flux.oddkin.co/v1alpha1\nkind: ExternalSource\n"
    "metadata: {name: x, namespace: ../../x}\nspec: {}\n",
    "dotdot-name": "apiVersion: source.flux.oddkin.co/v1alpha1\nkind: ExternalSource\n"
    "metadata: {name: ../../x}\nspec: {}\n",
    "name-a-list": "kind: ExternalSource\nmetadata: {name: [a, b]}\nspec: {}\n",
    "not-utf8": "kind: ExternalSource\nmetadata: {name: \udcff}\n",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SOURCES))
async def test_hostile_yaml_gets_a_one_line_error(tmp_path: pathlib.Path, case: str) -> None:
    path = tmp_path / "source.yaml"
    path.write_bytes(HOSTILE_SOURCES[case].encode("utf-8", errors="surrogateescape"))
    out_dir = tmp_path / "out"
    for args in (
        ("fetch", "-f", str(path), "--out", str(out_dir)),
        ("fetch", "-f", str(tmp_path / "ok.yaml"), "--secret-file", str(path), "--out", "o"),
        ("validate", "-f", str(path)),
    ):
        (tmp_path / "ok.yaml").write_text(yaml.safe_dump(source("ok", "http://127.0.0.1:9/")))
        # the bound is generous: without the limits these ran out of memory or past 60 s
        code, out, err = await asyncio.wait_for(run(*args), timeout=60)
        assert code == 1, (args, out, err)
        lines = (out + err).strip().splitlines()
        # fetch fails with one error line; validate lists each problem on its own line
        assert len(lines) == 1 if args[0] == "fetch" else 1 <= len(lines) <= 10, (args, lines[:5])
        assert all(len(line) < 1000 for line in lines)
        assert "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.rglob("*"))
    assert not (tmp_path.parent / "x").exists()
