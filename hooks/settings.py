"""Process-wide settings of the hooks room, composed into the controller's configuration.

Only the controller side is configured here (where the whitelist file is, how
to reach the sidecar, CEL limits); the sidecar takes its own flags
(`externalsource-hooks-sidecar --help`) because it runs as its own process.
"""

from __future__ import annotations

import attrs

from hooks.cel import DEFAULT_MAX_INPUT_SIZE, DEFAULT_MAX_MEMORY, DEFAULT_TIMEOUT


@attrs.frozen
class HooksSettings:
    whitelist: str = attrs.field(
        default="",
        metadata={
            "flag": "--hooks-whitelist",
            "help": "Path of the hook whitelist YAML file (empty: no whitelist, every hook is "
            "refused with HookNotAllowed).",
        },
    )
    endpoint: str = attrs.field(
        default="http://127.0.0.1:8090",
        metadata={"flag": "--hooks-endpoint", "help": "URL of the hooks sidecar."},
    )
    token_file: str = attrs.field(
        default="/var/run/externalsource/hooks-token",
        metadata={
            "flag": "--hooks-token-file",
            "help": "File holding the bearer token shared with the hooks sidecar.",
        },
    )
    whitelist_reload_interval: float = attrs.field(
        default=5.0,
        metadata={
            "flag": "--hooks-whitelist-reload-interval",
            "help": "How often the whitelist file is checked for changes.",
            "duration": True,
        },
    )
    cel_timeout: float = attrs.field(
        default=DEFAULT_TIMEOUT,
        metadata={
            "flag": "--cel-timeout",
            "help": "Time limit of one spec.transform.cel evaluation.",
            "duration": True,
        },
    )
    cel_max_input_size: int = attrs.field(
        default=DEFAULT_MAX_INPUT_SIZE,
        metadata={
            "flag": "--cel-max-input-size",
            "help": "Largest body in bytes that spec.transform.cel evaluates.",
        },
    )
    cel_max_memory: int = attrs.field(
        default=DEFAULT_MAX_MEMORY,
        metadata={
            "flag": "--cel-max-memory",
            "help": "Address-space limit in bytes of the spec.transform.cel worker process "
            "(RLIMIT_AS); an evaluation that needs more fails with CELEvaluationFailed.",
        },
    )
