"""`externalsource fetch`: one reconcile of a source definition without a cluster.

It runs the controller's own code for the middle of the pipeline (`produce`:
pre-request hooks, generator fetch, post-request hooks, CEL, packaging) and
stores the result with the filesystem backend under DIR, at the same relative
path the controller would publish. Secrets come from YAML files instead of the
API; hooks run as local processes checked against the same whitelist.

The files may be hostile (someone else's manifest): they are read through the
bounded loader (`controller.api.yamlload`), the identity is checked before it
becomes a path (`../../x` is refused), and every failure is one `error:` line
scrubbed of the values of the Secrets the fetch read (`controller.redaction`),
never a traceback. This process is a child subreaper like the sidecar, so a
hook's `setsid` descendants are killed with it. See docs/security.md.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import pathlib
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import attrs

from controller import redaction
from controller.api import names, yamlload
from controller.api.models import ExternalSourceSpec
from controller.api.parsing import SpecError, parse_spec
from controller.fetchrequest import SecretNotFoundError, build_request, decode_secret
from controller.pipeline import Produced, produce
from generators import registry
from generators.base import FetchError, GeneratorSettings
from hooks.cel import compile_transform_async
from hooks.executor import LocalExecutor
from hooks.process import become_subreaper
from hooks.runner import HookRunner
from hooks.spec import HookError
from hooks.whitelist import Whitelist, WhitelistError
from storage.backend import StorageError
from storage.filesystem import FilesystemBackend
from storage.naming import artifact_key, revision

#: Kubernetes' rules: a namespace is a DNS label, a name a DNS subdomain
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class LocalModeError(Exception):
    """A problem with the inputs of `externalsource fetch`, printed as one line."""


def _shown(value: Any) -> str:
    """A value for an error message: short, one line, whatever the input was."""
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return f"a {type(value).__name__}"


@attrs.frozen
class LocalResult:
    revision: str
    digest: str
    path: pathlib.Path
    size: int


class FileSecretReader:
    """Secrets from `--secret-file` manifests, matched by name (and namespace when set)."""

    def __init__(self, documents: Sequence[Mapping[str, Any]]) -> None:
        self._secrets: dict[tuple[str | None, str], dict[str, bytes]] = {}
        for document in documents:
            if document.get("kind") != "Secret":
                continue
            meta = document.get("metadata")
            name = meta.get("name") if isinstance(meta, Mapping) else None
            namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
            if not isinstance(name, str) or not isinstance(namespace, str | None):
                raise LocalModeError("a Secret needs metadata.name (and namespace) as strings")
            try:
                self._secrets[(namespace, name)] = decode_secret(document)
            except (binascii.Error, ValueError, TypeError, AttributeError):
                raise LocalModeError(
                    f"Secret {name!r}: data must map keys to base64 strings (stringData to strings)"
                ) from None

    async def read(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self._secrets.get((namespace, name)) or self._secrets.get((None, name))


def load_documents(path: str) -> list[dict[str, Any]]:
    """The mapping documents of a YAML file, read with the bounded loader."""
    try:
        documents = yamlload.load_all(yamlload.read_text(path))
    except OSError as exc:
        raise LocalModeError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LocalModeError(f"{path}: not UTF-8 text") from None
    except yamlload.YamlLimitError as exc:
        raise LocalModeError(f"{path}: {exc}") from None
    return [d for d in documents if isinstance(d, dict)]


def _identity(source: Mapping[str, Any], where: str) -> tuple[str, str]:
    """(namespace, name), checked before they become part of a path."""
    meta = source.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, Mapping):
        raise LocalModeError(f"{where}: metadata must be a mapping, not {_shown(meta)}")
    namespace, name = meta.get("namespace") or "default", meta.get("name") or "local"
    if not isinstance(namespace, str) or len(namespace) > 63 or not _NAMESPACE.fullmatch(namespace):
        raise LocalModeError(
            f"{where}: metadata.namespace must be a DNS label (lowercase letters, digits "
            f"and '-', at most 63), got {_shown(namespace)}"
        )
    if not isinstance(name, str) or len(name) > 253 or not _NAME.fullmatch(name):
        raise LocalModeError(
            f"{where}: metadata.name must be a DNS subdomain (lowercase letters, digits, "
            f"'-' and '.', at most 253), got {_shown(name)}"
        )
    return namespace, name


def _load_source(source_file: str) -> tuple[str, str, ExternalSourceSpec]:
    """Namespace, name and typed spec of the one ExternalSource in the file."""
    sources = [d for d in load_documents(source_file) if d.get("kind") == names.KIND]
    if len(sources) != 1:
        raise LocalModeError(
            f"{source_file}: expected exactly one ExternalSource, found {len(sources)}"
        )
    namespace, name = _identity(sources[0], source_file)
    try:
        return namespace, name, parse_spec(sources[0].get("spec"))
    except SpecError as exc:
        raise LocalModeError(exc.message) from None


async def _whitelist(path: str | None) -> Whitelist:
    """The whitelist file's, or an empty one: every hook is refused, as in the cluster."""
    if not path:
        return Whitelist(commands={})
    try:
        return Whitelist.parse(await anyio.Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, WhitelistError) as exc:
        raise LocalModeError(f"--hooks-whitelist {path}: {exc}") from None


async def fetch(
    *,
    source_file: str,
    secret_files: Sequence[str],
    out_dir: str,
    whitelist_file: str | None = None,
    settings: GeneratorSettings | None = None,
) -> LocalResult:
    namespace, name, spec = _load_source(source_file)
    secrets = FileSecretReader([d for f in secret_files for d in load_documents(f)])
    whitelist = await _whitelist(whitelist_file)
    # loopback allowed: trying a source against a server on one's own machine is what
    # local mode is for, and no pod's internals sit behind it (docs/security.md)
    settings = settings or GeneratorSettings(allow_loopback=True)
    generator = registry.create(spec.generator.type, settings)
    try:
        request = await build_request(
            secrets, namespace=namespace, generator=spec.generator, timeout=spec.timeout_seconds
        )
        cel = spec.transform.cel if spec.transform else None
        produced = await produce(
            generator=generator,
            request=request,
            previous=None,
            runner=HookRunner(LocalExecutor(whitelist), whitelist),
            spec=spec,
            cel=await compile_transform_async(cel) if cel else None,
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
    become_subreaper()  # a hook's setsid descendants come back to us and are killed
    # the scope is shared with asyncio.run's task: Secrets read there are scrubbed here
    with redaction.scope():
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
            print(f"error: {_one_line(redaction.scrub(str(exc)))}", file=sys.stderr)
            return 1
        except Exception as exc:  # hostile input must never print a traceback
            detail = _one_line(redaction.scrub(str(exc)))
            print(f"error: unexpected {type(exc).__name__}: {detail}", file=sys.stderr)
            return 1
    print(f"revision: {result.revision}")
    print(f"digest:   {result.digest}")
    print(f"path:     {result.path}")
    print(f"size:     {result.size}")
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())[:2000]


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
