"""The hook whitelist: which commands may run, from which absolute path, with which arguments.

One parser and one checker serve both sides: the controller checks early to
report a clear `HookNotAllowed`, and the sidecar checks again because it is
the security boundary (a controller bug or a forged request must not widen
what runs). Commands are referenced by *name* only; a name never contains a
slash, so `../../bin/sh` or `/bin/sh` can never name an executable: the path
that runs is always the whitelist's own absolute path.

Format (YAML, usually a mounted ConfigMap; documented in docs/hooks.md):

    commands:
      jq:
        path: /usr/bin/jq          # absolute, normalized
        maxArgs: 8                 # optional, default 16
        args: ['-[acejnrsSM]+']    # every argument (but the last, with lastArg) fully matches one
        lastArg: '[^-].*'          # optional: the last argument must be present and match this
        refuse: ['\\bimport\\b']     # optional: no argument may contain a match of these
        env: [MODE]                # optional: environment variable names a hook may set

Patterns are RE2 (`google-re2`), not Python `re`: matching is linear in the
argument's length whatever the pattern, so a pattern such as `(a+)+b` cannot
stall the sidecar or the controller's event loop on a long argument (Python's
backtracking took 1.2 s on 25 characters). RE2 has no lookarounds or
backreferences, which is why "must not contain" is its own key (`refuse`),
and why a positional structure (`lastArg`) exists: "options first, exactly one
filter last" is how a whitelist stops `jq -c . FILE` from reading a file.

Environment names that steer the dynamic loader, libc or an interpreter
(`LD_*`, `GLIBC_TUNABLES`, `GCONV_PATH`, `BASH_ENV`, `PYTHON*`, …; see
`RESERVED_ENV_NAMES`/`RESERVED_ENV_PREFIXES`) cannot be listed: each would let
a hook's author run code of their choice inside a whitelisted binary.

Parsing is strict (unknown keys, relative paths and uncompilable regexes are
errors naming the entry) because a typo in a security policy must be loud.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import re2  # type: ignore[import-untyped]
import yaml

from hooks.spec import HOOK_NOT_ALLOWED, HookError

DEFAULT_MAX_ARGS = 16
#: no single argument may be longer than this, whatever the regexes say
MAX_ARG_LENGTH = 8192
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMMAND_KEYS = frozenset({"path", "maxArgs", "args", "lastArg", "refuse", "env"})
#: variables that make a loader, libc, a shell or an interpreter load or run other code
RESERVED_ENV_NAMES = frozenset(
    {
        "PATH",  # fixed by the executor
        "HOME",  # jq sources ~/.jq; shells and tools read rc files from it
        "ENV",
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "IFS",
        "CDPATH",
        "GLIBC_TUNABLES",
        "GCONV_PATH",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "RES_OPTIONS",
        "LOCALDOMAIN",
        "TZDIR",
        "OPENSSL_CONF",
        "OPENSSL_ENGINES",
        "OPENSSL_MODULES",
        "NODE_OPTIONS",
        "NODE_PATH",
        "RUBYOPT",
        "RUBYLIB",
        "PERLLIB",
        "CLASSPATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "TCLLIBPATH",
    }
)
RESERVED_ENV_PREFIXES = (
    "LD_",
    "DYLD_",
    "MALLOC_",
    "BASH_FUNC_",
    "PYTHON",
    "PERL5",
    "PERL_",
    "LUA_",
    "GIT_",
)
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors are raised as WhitelistError, not printed by RE2


class WhitelistError(ValueError):
    """The whitelist file is invalid; the message names the offending entry."""


class WhitelistChecker(Protocol):
    """What the runner and executors need: a `Whitelist` or a `WhitelistManager`."""

    def check(self, command: str, args: Sequence[str], *, env: Iterable[str] = ()) -> str: ...


@attrs.frozen
class CommandRule:
    """One whitelisted command."""

    name: str
    path: str
    max_args: int
    arg_patterns: tuple[Any, ...]  # compiled RE2 patterns
    env_names: frozenset[str]
    last_arg: Any | None = None
    refuse: tuple[Any, ...] = ()


def _not_allowed(message: str) -> HookError:
    return HookError(message, reason=HOOK_NOT_ALLOWED, transient=False)


@attrs.frozen
class Whitelist:
    """An immutable, validated whitelist. Safe to share between threads."""

    commands: Mapping[str, CommandRule]

    @classmethod
    def parse(cls, text: str) -> Whitelist:
        """Parse and validate YAML text; raises `WhitelistError` with a precise message."""
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise WhitelistError(f"whitelist is not valid YAML: {exc}") from None
        except RecursionError:  # 100k-deep nesting: a one-line error, not a crash
            raise WhitelistError("whitelist is nested too deeply") from None
        if not isinstance(document, dict):
            raise WhitelistError("whitelist must be a mapping with a 'commands' key")
        unknown = sorted(set(document) - {"commands"})
        if unknown:
            raise WhitelistError(f"whitelist has unknown top-level keys: {', '.join(unknown)}")
        entries = document.get("commands")
        if entries is None:
            entries = {}
        if not isinstance(entries, dict):
            raise WhitelistError("whitelist 'commands' must be a mapping of name to command")
        for key in entries:
            if not isinstance(key, str):
                raise WhitelistError(
                    f"whitelist command name {key!r} is not a string (quote it in YAML)"
                )
        return cls(commands={k: _parse_command(k, v) for k, v in entries.items()})

    def check(self, command: str, args: Sequence[str], *, env: Iterable[str] = ()) -> str:
        """Return the absolute path to execute, or raise `HookError` (`HookNotAllowed`)."""
        rule = self.commands.get(command)
        if rule is None:
            known = ", ".join(sorted(self.commands)) or "none"
            raise _not_allowed(
                f"command {command!r} is not in the hook whitelist (allowed: {known})"
            )
        if len(args) > rule.max_args:
            raise _not_allowed(
                f"command {command!r} got {len(args)} arguments, the whitelist allows "
                f"at most {rule.max_args}"
            )
        if rule.last_arg is not None and not args:
            raise _not_allowed(f"command {command!r} needs at least one argument")
        for index, arg in enumerate(args, start=1):
            if len(arg) > MAX_ARG_LENGTH or "\0" in arg:
                raise _not_allowed(
                    f"argument {index} of {command!r} is longer than {MAX_ARG_LENGTH} "
                    "characters or contains a NUL byte"
                )
            if rule.last_arg is not None and index == len(args):
                if not rule.last_arg.fullmatch(arg):
                    raise _not_allowed(
                        f"the last argument of {command!r} ({arg!r}) does not match the "
                        "whitelist's lastArg pattern"
                    )
            elif not any(p.fullmatch(arg) for p in rule.arg_patterns):
                where = "before the last " if rule.last_arg is not None else ""
                raise _not_allowed(
                    f"argument {index} of {command!r} ({arg!r}) does not match any allowed "
                    f"pattern {where}of the whitelist"
                )
            for pattern in rule.refuse:
                if found := pattern.search(arg):
                    raise _not_allowed(
                        f"argument {index} of {command!r} contains {found.group(0)!r}, "
                        "which the whitelist refuses"
                    )
        for name in sorted(env):
            if name not in rule.env_names:
                raise _not_allowed(
                    f"environment variable {name!r} is not allowed for command {command!r}"
                )
        return rule.path


def _parse_command(name: str, entry: Any) -> CommandRule:
    where = f"whitelist command {name!r}"
    if not _NAME.fullmatch(name):
        raise WhitelistError(
            f"{where}: a command name may contain only letters, digits, '_', '.', '+', '-' "
            "and must not start with a symbol"
        )
    if not isinstance(entry, dict):
        raise WhitelistError(f"{where}: must be a mapping with 'path' and 'args'")
    unknown = sorted(set(entry) - _COMMAND_KEYS)
    if unknown:
        raise WhitelistError(f"{where}: unknown keys {', '.join(unknown)}")
    path = entry.get("path")
    if not isinstance(path, str) or not path:
        raise WhitelistError(f"{where}: 'path' is required and must be a string")
    if not os.path.isabs(path) or os.path.normpath(path) != path or "\0" in path:
        raise WhitelistError(f"{where}: 'path' must be an absolute, normalized path, got {path!r}")
    max_args = entry.get("maxArgs", DEFAULT_MAX_ARGS)
    if not isinstance(max_args, int) or isinstance(max_args, bool) or max_args < 0:
        raise WhitelistError(f"{where}: 'maxArgs' must be a non-negative integer")
    last_arg = entry.get("lastArg")
    if last_arg is not None and not isinstance(last_arg, str):
        raise WhitelistError(f"{where}: 'lastArg' must be a regular expression (a string)")
    return CommandRule(
        name=name,
        path=path,
        max_args=max_args,
        arg_patterns=_parse_patterns(where, "args", entry.get("args", [])),
        env_names=_parse_env(where, entry.get("env", [])),
        last_arg=None if last_arg is None else _compile(where, "lastArg", last_arg),
        refuse=_parse_patterns(where, "refuse", entry.get("refuse", [])),
    )


def _parse_patterns(where: str, key: str, raw: Any) -> tuple[Any, ...]:
    if not isinstance(raw, list):
        raise WhitelistError(f"{where}: {key!r} must be a list of regular expressions")
    patterns = []
    for index, item in enumerate(raw, start=1):
        if not isinstance(item, str):
            raise WhitelistError(f"{where}: {key}[{index}] must be a string")
        patterns.append(_compile(where, f"{key}[{index}]", item))
    return tuple(patterns)


def _compile(where: str, key: str, pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", errors="replace")
        raise WhitelistError(
            f"{where}: {key} {pattern!r} is not a valid RE2 regular expression: {detail}"
        ) from None


def _parse_env(where: str, raw: Any) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise WhitelistError(f"{where}: 'env' must be a list of variable names")
    for name in raw:
        if not _ENV_NAME.fullmatch(name):
            raise WhitelistError(f"{where}: env name {name!r} is not a valid variable name")
        if name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES):
            raise WhitelistError(
                f"{where}: env name {name!r} is reserved (PATH is fixed; it or its family "
                "would let a hook make the loader, libc, a shell or an interpreter run "
                "other code)"
            )
    return frozenset(raw)
