"""`externalsource fetch`: one reconcile of a source definition without a cluster.

It runs the controller's own code for the middle of the pipeline (`produce`:
pre-request hooks, generator fetch, post-request hooks, CEL, packaging) and
stores the result with the filesystem backend under DIR, at the same relative
path the controller would publish. Secrets come from YAML files instead of the
API; hooks run as local processes checked against the same whitelist.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import attrs
import yaml

from controller.api.durations import parse_duration
from controller.api.validation import validate_spec
from controller.fetchrequest import SecretNotFoundError, build_request, decode_secret
from controller.pipeline import Produced, produce
from generators import registry
from generators.base import FetchError, GeneratorSettings
from hooks.cel import compile_transform
from hooks.executor import LocalExecutor
from hooks.runner import HookRunner
from hooks.spec import HookError, RetryBudget
from hooks.whitelist import Whitelist
from storage.backend import StorageError
from storage.filesystem import FilesystemBackend
from storage.naming import artifact_key, revision


class LocalModeError(Exception):
    """A problem with the inputs of `externalsource fetch`, printed as one line."""


@attrs.frozen
class LocalResult:
    revision: str
    digest: str
    path: pathlib.Path
    size: int


class FileSecretReader:
    """Secrets from `--secret-file` manifests, matched by name (and namespace when set)."""

    def __init__(self, documents: Sequence[Mapping[str, Any]]) -> None:
        self._secrets = {
            (d.get("metadata", {}).get("namespace"), d["metadata"]["name"]): decode_secret(d)
            for d in documents
            if d.get("kind") == "Secret"
        }

    async def read(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self._secrets.get((namespace, name)) or self._secrets.get((None, name))


def load_documents(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [d for d in yaml.safe_load_all(fh) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as exc:
        raise LocalModeError(f"{path}: {exc}") from exc


async def fetch(
    *,
    source_file: str,
    secret_files: Sequence[str],
    out_dir: str,
    whitelist_file: str | None = None,
    settings: GeneratorSettings | None = None,
) -> LocalResult:
    sources = [d for d in load_documents(source_file) if d.get("kind") == "ExternalSource"]
    if len(sources) != 1:
        raise LocalModeError(
            f"{source_file}: expected exactly one ExternalSource, found {len(sources)}"
        )
    source = sources[0]
    meta = source.get("metadata") or {}
    namespace, name = meta.get("namespace") or "default", meta.get("name") or "local"
    spec = source.get("spec") or {}
    if problems := validate_spec(spec):
        raise LocalModeError("; ".join(f"{p.path}: {p.message}" for p in problems))
    secrets = FileSecretReader([d for f in secret_files for d in load_documents(f)])
    whitelist = Whitelist(commands={})  # no whitelist: every hook is refused, as in the cluster
    if whitelist_file:
        whitelist = Whitelist.parse(await anyio.Path(whitelist_file).read_text(encoding="utf-8"))
    # loopback allowed: trying a source against a server on one's own machine is what
    # local mode is for, and no pod's internals sit behind it (docs/security.md)
    settings = settings or GeneratorSettings(allow_loopback=True)
    generator = registry.create(spec["generator"]["type"], settings)
    try:
        request = await build_request(
            secrets,
            namespace=namespace,
            spec=spec,
            timeout=parse_duration(spec.get("timeout") or "60s"),
        )
        cel = spec.get("transform", {}).get("cel")
        produced = await produce(
            generator=generator,
            request=request,
            previous=None,
            runner=HookRunner(LocalExecutor(whitelist), whitelist),
            spec=spec,
            budget=RetryBudget(int(spec.get("maxRetries", 3))),
            cel=compile_transform(cel) if cel else None,
            spool_dir=None,
        )
    finally:
        await generator.aclose()
    assert isinstance(produced, Produced)
    packaged = produced.artifact
    key = artifact_key(namespace, name, packaged.hex)
    with packaged.file:
        await FilesystemBackend(out_dir).put(key, packaged.file)
    return LocalResult(
        revision=revision(packaged.hex),
        digest=packaged.digest,
        path=pathlib.Path(out_dir) / key,
        size=packaged.size,
    )


def run_fetch(args: argparse.Namespace) -> int:
    """`externalsource fetch`: print revision, digest and path; one-line errors, exit 1."""
    try:
        result = asyncio.run(
            fetch(
                source_file=args.file,
                secret_files=args.secret_file or (),
                out_dir=args.out,
                whitelist_file=args.hooks_whitelist,
            )
        )
    except (LocalModeError, FetchError, HookError, StorageError, SecretNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"revision: {result.revision}")
    print(f"digest:   {result.digest}")
    print(f"path:     {result.path}")
    print(f"size:     {result.size}")
    return 0


def register_fetch(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fetch",
        help="run one reconcile of a source locally and write its .tar.gz",
        description=(
            "Fetch, transform and package one ExternalSource without a cluster, with the "
            "controller's own generator, hook and packaging code. Secrets come from "
            "--secret-file manifests; hooks run as local processes checked against "
            "--hooks-whitelist (without it every hook is refused, as in the cluster)."
        ),
    )
    parser.add_argument("-f", "--file", required=True, help="the ExternalSource manifest")
    parser.add_argument(
        "--secret-file", action="append", metavar="FILE", help="a Secret manifest; repeatable"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="where to write the artifact")
    parser.add_argument("--hooks-whitelist", metavar="FILE", help="the hook whitelist YAML")
    parser.set_defaults(run=run_fetch)
