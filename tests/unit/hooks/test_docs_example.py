"""The ConfigMap example of docs/hooks.md, executed as written: real sidecar, real jq."""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Callable

import yaml

from hooks.executor import SidecarExecutor
from hooks.runner import HookRunner
from hooks.spec import HookSpec, RetryBudget
from hooks.whitelist import Whitelist
from tests.fixtures.sidecar import SidecarProcess

DOC = pathlib.Path(__file__).parents[3] / "docs" / "hooks.md"


def block(label: str) -> str:
    """The fenced code block that follows `<!-- test: label -->` in docs/hooks.md."""
    match = re.search(rf"<!-- test: {label} -->\n```\w+\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"docs/hooks.md has no block labelled {label!r}"
    return match.group(1)


async def test_jq_turns_the_api_response_into_the_documented_configmap(
    make_hooks_sidecar: Callable[..., SidecarProcess],
) -> None:
    whitelist = block("whitelist")
    sidecar = make_hooks_sidecar(whitelist=whitelist)
    source = yaml.safe_load(block("source"))
    hooks = [
        HookSpec(name=h["name"], command=h["command"], args=tuple(h["args"]))
        for h in source["spec"]["hooks"]["postRequest"]
    ]
    executor = SidecarExecutor(sidecar.url, str(sidecar.token_file))
    try:
        runner = HookRunner(executor, Whitelist.parse(whitelist))
        output = await runner.run_post(block("response").encode(), hooks, RetryBudget(0))
    finally:
        await executor.aclose()

    assert output.decode() == block("expected")
    manifest = yaml.safe_load(output)  # the destinationPath is a .yaml file: must load as YAML
    assert manifest == json.loads(block("expected"))
    assert manifest["kind"] == "ConfigMap"
    assert manifest["data"] == {"dark-mode": "false", "new-ui": "true"}
    assert source["spec"]["destinationPath"].endswith(".yaml")
