"""Benchmark: memory of the s3 backend's streaming multipart upload of a large artifact.

A 100 MiB artifact (random bytes, incompressible) is uploaded by `S3Backend.put`
to a moto server (a subprocess) from a separate uploader process, whose peak
resident set growth during the upload is measured from the kernel (`VmHWM`
reset through `/proc/self/clear_refs` after a warm-up upload, so the client,
its connection pool and the imports are not counted). The claim under test:
growth stays around part size times concurrency, whatever the artifact size.
Linux only. Run:

    .venv/bin/python -m tests.bench.bench_s3 [--size-mib 100]

and copy the printed table into docs/benchmarks.md ("## S3").
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from storage.s3 import S3Backend, S3Settings
from tests.fixtures.s3 import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, MotoServer

MIB = 1024 * 1024
KEY = "externalsource/bench/big/" + "0" * 64 + ".tar.gz"
CONFIGURATIONS = ((5, 1), (8, 1), (8, 4), (16, 4))
HEADER = "| part size | concurrency | bound (part x conc.) | peak RSS growth | time | MiB/s |"


def _status_kib(field: str) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


async def _upload(args: argparse.Namespace) -> dict[str, float]:
    backend = S3Backend(
        S3Settings(
            s3_endpoint=args.endpoint,
            s3_bucket=args.bucket,
            s3_path_style=True,
            s3_part_size=args.part_mib * MIB,
            s3_upload_concurrency=args.concurrency,
        )
    )
    try:
        await backend.put(KEY + ".warmup", io.BytesIO(os.urandom(args.part_mib * MIB + 1)))
        pathlib.Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _status_kib("VmRSS")
        started = time.perf_counter()
        with open(args.file, "rb") as source:
            written = await backend.put(KEY, source)
        elapsed = time.perf_counter() - started
        peak = _status_kib("VmHWM")
    finally:
        await backend.aclose()
    return {"written": written, "seconds": elapsed, "growth_mib": (peak - before) / 1024}


def _child(args: argparse.Namespace) -> None:
    print(json.dumps(asyncio.run(_upload(args))))


def _parent(args: argparse.Namespace) -> None:
    server = MotoServer()
    server.start()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            artifact = pathlib.Path(tmp) / "artifact.tar.gz"
            with artifact.open("wb") as out:
                for _ in range(args.size_mib):
                    out.write(os.urandom(MIB))
            print(f"artifact: {args.size_mib} MiB, moto {server.endpoint}\n")
            print(HEADER)
            print("|---|---|---|---|---|---|")
            for part_mib, concurrency in CONFIGURATIONS:
                bucket = server.create_bucket()
                command = [
                    sys.executable,
                    "-m",
                    "tests.bench.bench_s3",
                    "--child",
                    f"--endpoint={server.endpoint}",
                    f"--bucket={bucket}",
                    f"--file={artifact}",
                    f"--part-mib={part_mib}",
                    f"--concurrency={concurrency}",
                ]
                output = subprocess.run(
                    command, env=env, check=True, capture_output=True, text=True, timeout=600
                ).stdout
                result = json.loads(output.strip().splitlines()[-1])
                stored = server.client("s3").head_object(Bucket=bucket, Key=KEY)
                assert stored["ContentLength"] == args.size_mib * MIB == result["written"]
                server.client("s3").delete_object(Bucket=bucket, Key=KEY)  # frees moto's memory
                print(
                    f"| {part_mib} MiB | {concurrency} | {part_mib * concurrency} MiB"
                    f" | {result['growth_mib']:.1f} MiB | {result['seconds']:.1f} s"
                    f" | {args.size_mib / result['seconds']:.0f} |"
                )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--part-mib", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
    else:
        _parent(args)


if __name__ == "__main__":
    main()
