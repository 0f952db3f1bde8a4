"""`externalsource`: the user's command line (docs/user-guide.md).

`cli.py` only builds the argument parser and dispatches: each subcommand is a
`register(subparsers)` function that adds its parser and sets `run`, listed in
`COMMANDS`, so a new subcommand (e.g. `fetch`, in its own module) is one entry
here. `validate` lives here because it is small: it runs the controller's own
`validate_source` on every ExternalSource of the given files (plus the CEL
syntax check the controller does before fetching), so a manifest that passes
here is one the controller accepts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

from controller.api import names, yamlload
from controller.api.validation import Problem, validate_source
from controller.clusterctl import register_get, register_reconcile
from controller.localmode import register_fetch
from hooks.cel import compile_transform
from hooks.spec import HookError

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class InputError(Exception):
    """A file that cannot be read or parsed; printed as one `error:` line."""


def read_documents(path: str) -> list[Any]:
    """Every YAML document of `path` (`-` is stdin), empty ones left out, in bounded time/memory."""
    try:
        return yamlload.load_all(yamlload.read_text(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except yamlload.YamlLimitError as exc:
        raise InputError(f"{path}: {exc}") from None


def check_document(document: Any) -> list[Problem]:
    """The controller's checks of one ExternalSource manifest, CEL syntax included."""
    problems = validate_source(document)
    spec = document.get("spec") if isinstance(document, Mapping) else None
    transform = spec.get("transform") if isinstance(spec, Mapping) else None
    expression = transform.get("cel") if isinstance(transform, Mapping) else None
    cel_ok = not any(p.path.startswith("spec.transform") for p in problems)
    if cel_ok and isinstance(expression, str):
        try:
            compile_transform(expression)
        except HookError as exc:
            problems.append(Problem("spec.transform.cel", exc.message.splitlines()[0]))
    return problems


def _label(document: Mapping[str, Any], index: int) -> str:
    meta = document.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    name = meta.get("name") or f"(document {index})"
    namespace = meta.get("namespace")
    return f"{namespace}/{name}" if namespace else str(name)


def _sources(documents: list[Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for index, doc in enumerate(documents, start=1):
        if isinstance(doc, Mapping) and doc.get("kind") == names.KIND:
            yield index, doc


def run_validate(args: argparse.Namespace) -> int:
    checked, failed = 0, False
    for path in args.file:
        try:
            documents = read_documents(path)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for index, doc in _sources(documents):
            checked += 1
            for problem in check_document(doc):
                failed = True
                print(f"{_label(doc, index)}: {problem}")
    if checked == 0:
        print(f"error: no {names.KIND} found in {', '.join(args.file)}", file=sys.stderr)
        return 1
    if not failed:
        noun = names.KIND if checked == 1 else f"{names.KIND}s"
        print(f"OK: {checked} {noun} valid")
    return 1 if failed else 0


def register_validate(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check ExternalSource manifests offline with the controller's rules",
        description=(
            "Check every ExternalSource in the given YAML files (other kinds are skipped). "
            "Prints one line per problem, '<namespace>/<name>: <field>: <message>', and "
            "exits 1 if there is any."
        ),
    )
    parser.add_argument(
        "-f",
        "--file",
        action="append",
        required=True,
        metavar="FILE",
        help="a YAML file with one or more documents ('-' reads stdin); repeatable",
    )
    parser.set_defaults(run=run_validate)


COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    register_validate,
    register_fetch,
    register_reconcile,
    register_get,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="externalsource",
        description="Work with ExternalSource definitions, offline or in the cluster.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
