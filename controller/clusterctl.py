"""`externalsource reconcile` and `externalsource get`: the cluster side of the command line.

They do for ExternalSources what `flux reconcile source` and `flux get sources`
do for Flux's sources, against the cluster of the current kubeconfig
(`KUBECONFIG`, or `--kubeconfig`/`--context`), with the user's own credentials:

* `reconcile NAME` sets `reconcile.fluxcd.io/requestedAt` to the current time
  (a merge patch, as `flux reconcile` does) and waits until the controller
  reports having handled that very request in `status.lastHandledReconcileAt`
  (the reconciler writes it after success and failure alike), then prints
  the revision, or the Ready condition's message with exit status 1. A timeout
  is a failure too (the controller may not run, or may not watch that namespace).
* `get` lists sources with Ready, revision, suspension, last update and message.

Errors (no kubeconfig, 401/403, no such source, unreachable API server) are one
`error:` line on stderr and exit status 1, never a traceback. kr8s is the
client, with a timeout on every request; its "Kubernetes version is not
supported" warning is dropped (the controller logs it instead).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import sys
import time
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TextIO

import httpx
from kr8s._api import Api
from kr8s._exceptions import APITimeoutError

from controller.api import names
from controller.api.durations import parse_duration
from controller.api.names import GROUP, PLURAL, REQUESTED_AT_ANNOTATION, VERSION

#: one request's deadline (the command's own --timeout bounds the wait as a whole)
REQUEST_TIMEOUT = httpx.Timeout(15.0, connect=10.0)
POLL_INTERVAL = 0.5
KIND = names.KIND


class CommandError(Exception):
    """A problem worth one `error:` line (exit status 1)."""


@contextlib.asynccontextmanager
async def connect(*, kubeconfig: str | None, context: str | None) -> AsyncIterator[Api]:
    """An authenticated kr8s `Api` for the kubeconfig (its own, never kr8s's shared one)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Kubernetes version .* is not supported")
        try:
            api = Api(bypass_factory=True, kubeconfig=kubeconfig, context=context)
            api.timeout = REQUEST_TIMEOUT
            await api
        except Exception as exc:  # kr8s raises many kinds for a bad or absent kubeconfig
            raise CommandError(f"cannot use the kubeconfig: {_describe(exc)}") from exc
        try:
            yield api
        finally:
            session = getattr(api, "_session", None)
            if session is not None:
                await session.aclose()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return _status_message(exc.response)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _status_message(response: httpx.Response) -> str:
    """The API server's Status message of an error response (or the status code)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return f"HTTP {response.status_code}: {message or response.reason_phrase}"


async def _request(
    api: Api,
    method: str,
    *,
    namespace: str | None,
    name: str = "",
    json_body: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """One request on the ExternalSource resource; its JSON body, None on 404."""
    url = f"{PLURAL}/{name}" if name else PLURAL
    extra: dict[str, Any] = {}
    if json_body is not None:
        extra = {
            "json": dict(json_body),
            "headers": {"Content-Type": "application/merge-patch+json"},
        }
    try:
        async with api.call_api(
            method,
            version=VERSION,
            base=f"/apis/{GROUP}",
            namespace=namespace,
            url=url,
            raise_for_status=False,
            **extra,
        ) as response:
            if response.status_code == 404:
                return None
            if response.is_error:
                raise CommandError(f"{method} {url}: {_status_message(response)}")
            body: dict[str, Any] = response.json()
            return body
    except (httpx.HTTPError, APITimeoutError, OSError) as exc:
        raise CommandError(f"{method} {url}: {_describe(exc)}") from exc


def ready_condition(source: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in source.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def _now() -> str:
    """The requestedAt value: RFC 3339 with nanoseconds-style precision, as flux writes it."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


async def reconcile(
    api: Api, *, namespace: str, name: str, timeout: float, out: TextIO
) -> tuple[bool, str]:
    """Request a reconcile and wait for its outcome: (succeeded, revision or message)."""
    where = f"{KIND} {name} in {namespace} namespace"
    source = await _request(api, "GET", namespace=namespace, name=name)
    if source is None:
        raise CommandError(f"{KIND} {namespace}/{name} not found")
    if source.get("spec", {}).get("suspend"):
        raise CommandError(f"{KIND} {namespace}/{name} is suspended: resume it first")
    requested = _now()
    print(f"annotating {where}", file=out, flush=True)
    patch = {"metadata": {"annotations": {REQUESTED_AT_ANNOTATION: requested}}}
    if await _request(api, "PATCH", namespace=namespace, name=name, json_body=patch) is None:
        raise CommandError(f"{KIND} {namespace}/{name} not found")
    print(f"waiting for {KIND} reconciliation", file=out, flush=True)
    deadline = time.monotonic() + timeout
    while True:
        source = await _request(api, "GET", namespace=namespace, name=name)
        if source is None:
            raise CommandError(f"{KIND} {namespace}/{name} was deleted while waiting")
        status = source.get("status", {})
        ready = ready_condition(source)
        handled = status.get("lastHandledReconcileAt") == requested
        if handled and ready is not None and ready.get("status") in ("True", "False"):
            if ready["status"] == "True":
                revision = (status.get("artifact") or {}).get("revision", "")
                return True, revision
            return False, str(ready.get("message") or ready.get("reason") or "not ready")
        if time.monotonic() >= deadline:
            raise CommandError(
                f"timed out after {timeout:g}s waiting for {KIND} {namespace}/{name} to handle "
                f"the request (is the controller running and watching this namespace?)"
            )
        await asyncio.sleep(POLL_INTERVAL)


async def list_sources(api: Api, *, namespace: str | None) -> list[dict[str, Any]]:
    """The sources of `namespace` (None: every namespace), sorted by namespace and name."""
    body = await _request(api, "GET", namespace=namespace)
    items = list((body or {}).get("items", []))
    return sorted(items, key=lambda s: (s["metadata"].get("namespace", ""), s["metadata"]["name"]))


def source_row(source: Mapping[str, Any], *, with_namespace: bool) -> list[str]:
    status = source.get("status", {})
    ready = ready_condition(source) or {}
    artifact = status.get("artifact") or {}
    last_update = artifact.get("lastUpdateTime") or ready.get("lastTransitionTime") or ""
    row = [
        source["metadata"]["name"],
        artifact.get("revision", ""),
        "True" if source.get("spec", {}).get("suspend") else "False",
        ready.get("status", "Unknown"),
        last_update,
        " ".join(str(ready.get("message", "")).split()),
    ]
    return [source["metadata"].get("namespace", ""), *row] if with_namespace else row


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _namespace(api: Api, args: argparse.Namespace) -> str:
    return str(args.namespace or api.auth.namespace or "default")


async def _run_reconcile(args: argparse.Namespace) -> int:
    async with connect(kubeconfig=args.kubeconfig, context=args.context) as api:
        namespace = _namespace(api, args)
        ok, outcome = await reconcile(
            api, namespace=namespace, name=args.name, timeout=args.timeout, out=sys.stdout
        )
    if ok:
        print(f"fetched revision {outcome}")
        return 0
    print(f"error: reconciliation failed: {outcome}", file=sys.stderr)
    return 1


async def _run_get(args: argparse.Namespace) -> int:
    async with connect(kubeconfig=args.kubeconfig, context=args.context) as api:
        namespace = None if args.all_namespaces else _namespace(api, args)
        sources = await list_sources(api, namespace=namespace)
    if not sources:
        where = "any namespace" if namespace is None else f"{namespace} namespace"
        print(f"no {KIND} objects found in {where}", file=sys.stderr)
        return 0
    header = ["NAME", "REVISION", "SUSPENDED", "READY", "LAST UPDATE", "MESSAGE"]
    if namespace is None:
        header = ["NAMESPACE", *header]
    rows = [source_row(s, with_namespace=namespace is None) for s in sources]
    print(table([header, *rows]))
    return 0


def _main(coroutine_function: Any, args: argparse.Namespace) -> int:
    try:
        result: int = asyncio.run(coroutine_function(args))
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


def run_reconcile(args: argparse.Namespace) -> int:
    return _main(_run_reconcile, args)


def run_get(args: argparse.Namespace) -> int:
    return _main(_run_get, args)


def _timeout(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a duration (e.g. 30s, 2m): {text!r}") from exc
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return seconds


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", metavar="FILE", help="kubeconfig file (default: KUBECONFIG)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")


def register_reconcile(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="trigger a reconcile of an ExternalSource in the cluster and wait for it",
        description=(
            "Set reconcile.fluxcd.io/requestedAt on the ExternalSource, wait until the "
            "controller has handled it (status.lastHandledReconcileAt), then print the "
            "revision; exit 1 with the Ready message if the reconcile failed, or on timeout."
        ),
    )
    parser.add_argument("name", help="the ExternalSource's name")
    parser.add_argument(
        "-n", "--namespace", help="its namespace (default: the kubeconfig context's namespace)"
    )
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=60.0,
        metavar="DURATION",
        help="how long to wait for the outcome (default: 1m)",
    )
    _cluster_flags(parser)
    parser.set_defaults(run=run_reconcile)


def register_get(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "get",
        help="list ExternalSources in the cluster with Ready, revision and last update",
        description="List ExternalSources with their Ready status, revision, last update "
        "and message, like `flux get sources`.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", help="the namespace (default: the kubeconfig context's namespace)"
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list sources of every namespace"
    )
    _cluster_flags(parser)
    parser.set_defaults(run=run_get)
