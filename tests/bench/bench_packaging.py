"""Packaging benchmark: 100 MiB body → deterministic tar.gz + sha256 (docs/benchmarks.md).

Run: ``python -m tests.bench.bench_packaging [--size-mib 100] [--write-docs]``

The parent generates a reproducible JSON-ish body (records of flags, names,
numbers and tags, seeded) into a temp file — the generator room spools bodies
to disk the same way — then runs each codec in a fresh subprocess so that the
peak-RSS measurement (``VmHWM`` after imports vs. after packaging) sees only
what packaging itself allocates. Codecs: isal (the default), stdlib zlib at the
fallback level, and stdlib zlib level 6 for reference. Throughput is input
bytes / wall time of `storage.packaging.package` (best of three runs, output
spooled to a temp file on disk). ``--write-docs`` replaces the "## Packaging"
section of docs/benchmarks.md with the results and the machine description.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import re
import subprocess
import sys
import tempfile
import time
import zlib

from tests.bench.machine import describe_machine, replace_section

REPO = pathlib.Path(__file__).resolve().parents[2]
TARGET_MBPS = 250.0
TARGET_RSS_MIB = 64.0
RUNS = 3
WORDS = ("alpha", "beta", "canary", "prod", "staging", "eu-west", "us-east", "tenant", "rollout")


def _record(rng: random.Random, index: int) -> bytes:
    tags = ", ".join(f'"{rng.choice(WORDS)}"' for _ in range(rng.randint(1, 4)))
    return (
        f'{{"id": {index}, "key": "feature.{rng.choice(WORDS)}.{rng.randrange(10**6)}",'
        f' "enabled": {"true" if rng.random() < 0.5 else "false"},'
        f' "rollout": {rng.random() * 100:.2f}, "owner": "team-{rng.randrange(300)}",'
        f' "tags": [{tags}], "updated": "2026-{rng.randint(1, 12):02d}-'
        f'{rng.randint(1, 28):02d}T{rng.randrange(24):02d}:00:00Z"}},\n'
    ).encode()


def generate_body(path: pathlib.Path, size: int) -> None:
    """Write exactly `size` bytes of a JSON array of flag-like records (seeded: reproducible)."""
    rng = random.Random(20260101)
    tail = b'{"id": -1}]\n'
    written, index, pending = 1, 0, []
    with path.open("wb") as out:
        out.write(b"[")
        while True:
            record = _record(rng, index)
            if written + len(record) + len(tail) > size:
                break
            pending.append(record)
            written += len(record)
            index += 1
            if len(pending) == 4096:
                out.write(b"".join(pending))
                pending.clear()
        out.write(b"".join(pending))
        out.write(b" " * (size - written - len(tail)) + tail)


def _vm_hwm_kib() -> int:
    status = pathlib.Path("/proc/self/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


def child(codec_name: str, body_path: str) -> None:
    """Measure one codec in this (fresh) process; print one JSON line."""
    from storage import packaging  # noqa: PLC0415 - imported before the RSS baseline on purpose

    codecs = {
        "isal": packaging.ISAL_CODEC,
        "zlib": packaging.ZLIB_CODEC,
        "zlib-6": packaging.GzipCodec(name="zlib-6", level=6, module=zlib),
    }
    codec = codecs[codec_name]
    assert codec is not None, "isal is not installed"
    size = os.path.getsize(body_path)
    baseline = _vm_hwm_kib()
    timings = []
    for _ in range(RUNS):
        with open(body_path, "rb") as data:
            started = time.perf_counter()
            artifact = packaging.package(data, "data/flags.json", codec=codec)
            timings.append(time.perf_counter() - started)
        digest, compressed = artifact.digest, artifact.size
        artifact.close()
    result = {
        "codec": f"{codec.name} (level {codec.level})",
        "input_bytes": size,
        "output_bytes": compressed,
        "best_seconds": min(timings),
        "mb_per_s": size / min(timings) / 1e6,
        "rss_growth_mib": (_vm_hwm_kib() - baseline) / 1024,
        "digest": digest,
    }
    print(json.dumps(result))


def render(results: list[dict[str, object]], size_mib: int) -> str:
    rows = [
        "| codec | MB/s | target ≥ 250 | peak RSS growth (MiB) | target < 64 | ratio |",
        "|---|---:|:-:|---:|:-:|---:|",
    ]
    for r in results:
        mbps, rss = float(str(r["mb_per_s"])), float(str(r["rss_growth_mib"]))
        ratio = int(str(r["input_bytes"])) / int(str(r["output_bytes"]))
        rows.append(
            f"| {r['codec']} | {mbps:.0f} | {'yes' if mbps >= TARGET_MBPS else 'no'} |"
            f" {rss:.1f} | {'yes' if rss < TARGET_RSS_MIB else 'no'} | {ratio:.2f} |"
        )
    return "\n".join(
        [
            f"`python -m tests.bench.bench_packaging` — {size_mib} MiB JSON-ish body (seeded) →"
            " deterministic tar.gz + sha256 in one streaming pass (`storage.packaging.package`),"
            f" best of {RUNS} runs, each codec in a fresh subprocess; RSS growth = `VmHWM` after"
            " packaging minus `VmHWM` after imports. Target: ≥ 250 MB/s and < 64 MiB"
            " RSS growth. isal is what the controller uses; stdlib zlib is the fallback when"
            " isal is missing (level 1) and, for reference, zlib's default level 6.",
            "",
            describe_machine(),
            "",
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("CODEC", "BODY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        body = pathlib.Path(tmp) / "body.json"
        generate_body(body, args.size_mib * 1024 * 1024)
        results = []
        for codec in ("isal", "zlib", "zlib-6"):
            done = subprocess.run(
                [sys.executable, "-m", "tests.bench.bench_packaging", "--child", codec, str(body)],
                cwd=REPO,
                capture_output=True,
                check=True,
                text=True,
                timeout=900,
            )
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    section = render(results, args.size_mib)
    print(section)
    if args.write_docs:
        replace_section("Packaging", section)


if __name__ == "__main__":
    main()
