"""The controller with S3 storage and the s3 generator, against a real S3-compatible server
(moto in server mode)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import pathlib
from typing import Any

from tests.fixtures.s3 import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, MotoServer
from tests.integration.conftest import NS, Controller, run_controller
from tests.integration.helpers import (
    condition,
    download,
    extract_like_flux,
    ready,
    source,
    status,
)


def s3_flags(moto: MotoServer, bucket: str, tmp_path: pathlib.Path) -> list[str]:
    creds = tmp_path / "s3-credentials"
    creds.mkdir()
    (creds / "accesskey").write_text(FAKE_ACCESS_KEY)
    (creds / "secretkey").write_text(FAKE_SECRET_KEY)
    return [
        "--storage-backend=s3",
        f"--s3-endpoint={moto.endpoint}",
        f"--s3-bucket={bucket}",
        "--s3-path-style",
        f"--s3-credentials-dir={creds}",
        "--s3-timeout=2s",
        "--s3-max-attempts=1",
        "--artifact-retention-ttl=1s",
        "--min-retry-delay=100ms",
    ]


def keys(moto: MotoServer, bucket: str) -> list[str]:
    listing = moto.client("s3").list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def digest_of(ctl: Controller, name: str) -> str:
    return str(status(ctl, name)["artifact"]["digest"])


async def test_artifacts_live_in_the_bucket_and_are_served_without_credentials(
    k8s: Any, origin: Any, private_moto_server: MotoServer, tmp_path: pathlib.Path
) -> None:
    bucket = private_moto_server.create_bucket()
    origin.set("/flags", body=b"one", etag='"1"')
    async with run_controller(k8s, *s3_flags(private_moto_server, bucket, tmp_path)) as ctl:
        ctl.create(source("flags", origin.url("/flags")))
        await ctl.wait_for(ready(ctl, "flags"))
        artifact = status(ctl, "flags")["artifact"]
        assert keys(private_moto_server, bucket) == [artifact["path"]]
        code, blob = await download(artifact["url"])  # no S3 credentials on the consumer side
        assert code == 200
        assert extract_like_flux(blob, artifact["digest"]) == {"flags/data.json": b"one"}

        for body in (b"two", b"three"):
            before = digest_of(ctl, "flags")
            origin.set("/flags", body=body, etag=f'"{body.decode()}"')
            await asyncio.sleep(1.1)  # past the retention TTL
            ctl.enqueue("flags")
            await ctl.wait_for(lambda before=before: digest_of(ctl, "flags") != before)
        current = status(ctl, "flags")["artifact"]["path"]
        assert keys(private_moto_server, bucket) == [current]  # GC removed the older ones

        ctl.delete("flags")
        await ctl.wait_for(lambda: ctl.source("flags") is None)
    assert keys(private_moto_server, bucket) == []


async def test_s3_outage_keeps_the_last_artifact_published_and_recovers(
    k8s: Any, origin: Any, private_moto_server: MotoServer, tmp_path: pathlib.Path
) -> None:
    bucket = private_moto_server.create_bucket()
    origin.set("/flags", body=b"good", etag='"g"')
    async with run_controller(k8s, *s3_flags(private_moto_server, bucket, tmp_path)) as ctl:
        ctl.create(source("flags", origin.url("/flags")))
        await ctl.wait_for(ready(ctl, "flags"))
        good = status(ctl, "flags")["artifact"]

        origin.set("/flags", body=b"newer", etag='"n"')
        private_moto_server.pause()
        try:
            ctl.enqueue("flags")
            failed = await ctl.wait_for(ready(ctl, "flags", "False"), timeout=20)
            reconciling = condition(ctl.source("flags"), "Reconciling")
            assert reconciling is not None
            assert reconciling["reason"] == "ProgressingWithRetry"
            assert failed["reason"].startswith("Storage")
            assert status(ctl.artifact("flags"))["artifact"] == good
        finally:
            private_moto_server.resume()
        await ctl.wait_for(
            lambda: (
                (r := ready(ctl, "flags")()) and digest_of(ctl, "flags") != good["digest"] and r
            ),
            timeout=20,
        )


async def test_s3_generator_publishes_then_only_asks_whether_the_object_changed(
    k8s: Any, moto_server: MotoServer, s3_bucket: str
) -> None:
    moto_server.client("s3").put_object(Bucket=s3_bucket, Key="flags.json", Body=b'{"v": 1}')
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-creds", "namespace": NS},
        "data": {
            "accesskey": base64.b64encode(FAKE_ACCESS_KEY.encode()).decode(),
            "secretkey": base64.b64encode(FAKE_SECRET_KEY.encode()).decode(),
        },
    }
    k8s.create_object("v1/secrets", secret)
    spec = {
        "generator": {
            "type": "s3",
            "s3": {
                "bucket": s3_bucket,
                "key": "flags.json",
                "endpoint": moto_server.endpoint,
                "region": "us-east-1",
                "pathStyle": True,
                "credentialsSecretRef": {"name": "s3-creds"},
            },
        }
    }
    manifest = source("obj", "http://unused", **spec)
    async with run_controller(k8s) as ctl:
        ctl.create(manifest)
        await ctl.wait_for(ready(ctl, "obj"))
        first = status(ctl, "obj")["artifact"]
        _, blob = await download(first["url"])
        assert hashlib.sha256(blob).hexdigest() == first["digest"].split(":")[1]
        assert extract_like_flux(blob, first["digest"]) == {"flags/data.json": b'{"v": 1}'}

        await ctl.idle()
        k8s.clear_log()
        for _ in range(3):
            ctl.enqueue("obj")
            await ctl.idle()
        assert k8s.writes() == []

        moto_server.client("s3").put_object(Bucket=s3_bucket, Key="flags.json", Body=b'{"v": 2}')
        ctl.enqueue("obj")
        await ctl.wait_for(lambda: digest_of(ctl, "obj") != first["digest"])
