"""The request log, injected faults, discovery, and running the emulator outside pytest fixtures."""

from __future__ import annotations

import json
import pathlib
import warnings

import kr8s
import kr8s.asyncio
import pytest
from kr8s.asyncio import Api

from tests.harness import Emulator, run_emulator, write_kubeconfig
from tests.unit.harness.clients import Widget, make_widget, widget
from tests.unit.harness.conftest import WIDGETS_CRD


async def test_writes_are_logged_with_what_they_touched(widgets: Emulator, kube_api: Api) -> None:
    obj = await make_widget(kube_api, "a")
    await obj.refresh()
    await obj.patch({"status": {"phase": "Ok"}}, subresource="status")
    await obj.delete()

    writes = [
        (w.method, w.verb, w.resource, w.namespace, w.name, w.subresource, w.status)
        for w in widgets.writes()
    ]
    assert writes == [
        ("POST", "create", "widgets", "default", None, None, 201),
        ("PATCH", "patch", "widgets", "default", "a", "status", 200),
        ("DELETE", "delete", "widgets", "default", "a", None, 200),
    ]
    assert widgets.writes()[1].content_type == "application/merge-patch+json"
    assert widgets.writes()[1].body == {"status": {"phase": "Ok"}}
    assert [r.verb for r in widgets.requests if r.resource == "widgets"] == [
        "create",
        "get",
        "patch",
        "delete",
    ]


async def test_clear_log_lets_a_test_assert_no_write_happened(
    widgets: Emulator, kube_api: Api
) -> None:
    obj = await make_widget(kube_api, "a")
    widgets.clear_log()

    await obj.refresh()
    assert widgets.writes() == []
    assert [r.verb for r in widgets.requests] == ["get"]

    await obj.patch({"spec": {"size": 2}})
    assert len(widgets.writes()) == 1


async def test_injected_error_is_one_shot_and_leaves_state_alone(
    widgets: Emulator, kube_api: Api
) -> None:
    obj = await make_widget(kube_api, "a")
    widgets.inject_error(409, verb="patch", resource="widgets", name="a")

    with pytest.raises(kr8s.ServerError) as err:
        await obj.patch({"spec": {"size": 2}})
    assert err.value.status["reason"] == "Conflict"
    assert widgets.get_object("widgets", "default", "a")["spec"]["size"] == 1  # type: ignore[index]

    await obj.patch({"spec": {"size": 2}})
    assert [w.status for w in widgets.writes()] == [201, 409, 200]


@pytest.mark.parametrize("status", [401, 403, 429, 500])
async def test_injected_errors_by_status(widgets: Emulator, kube_api: Api, status: int) -> None:
    widgets.inject_error(
        status, verb="list", resource="widgets.example.com", times=2, retry_after=3
    )

    for _ in range(2):
        async with kube_api.call_api(
            "GET",
            version="example.com/v1",
            namespace="default",
            url="widgets",
            raise_for_status=False,
        ) as response:
            assert response.status_code == status
            assert response.headers["Retry-After"] == "3"
            assert response.json()["details"] == {"retryAfterSeconds": 3}
    async with kube_api.call_api(
        "GET", version="example.com/v1", namespace="default", url="widgets"
    ) as response:
        assert response.status_code == 200


async def test_injected_error_on_watch(widgets: Emulator, kube_api: Api) -> None:
    widgets.inject_error(500, verb="watch")
    with pytest.raises(kr8s.ServerError):
        async with kube_api.call_api(
            "GET",
            version="example.com/v1",
            namespace="default",
            url="widgets",
            params={"watch": "true"},
            stream=True,
        ):
            pass


async def test_discovery_and_version(
    widgets: Emulator, kube_api: Api, kubeconfig: pathlib.Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # kr8s warns about versions outside 1.28-1.35
        checked = await kr8s.asyncio.Api(bypass_factory=True, kubeconfig=str(kubeconfig))
    await checked._session.aclose()
    assert (await kube_api.version())["minor"] == "33"

    resources = {r["name"]: r for r in await kube_api.api_resources()}
    assert resources["widgets"]["kind"] == "Widget"
    assert resources["externalsources"]["shortNames"] == ["exs"]
    assert resources["externalartifacts"]["namespaced"] is True
    assert {"secrets", "leases", "events"} <= set(resources)
    async with kube_api.call_api("GET", version="", base="/apis/example.com/v1") as response:
        listed = [r["name"] for r in response.json()["resources"]]
    assert sorted(listed) == ["widgets", "widgets/status"]

    await make_widget(kube_api, "a")
    found = [w async for w in kube_api.get("wd", namespace="default")]  # by short name
    assert [(w.kind, w.name) for w in found] == [("Widget", "a")]


async def test_unknown_resource_and_subresource(widgets: Emulator, kube_api: Api) -> None:
    await make_widget(kube_api, "a")
    for url in ("gadgets", "widgets/a/scale"):
        async with kube_api.call_api(
            "GET",
            version="example.com/v1",
            namespace="default",
            url=url,
            raise_for_status=False,
        ) as response:
            assert response.status_code == 404


async def test_secrets_are_served(k8s: Emulator, kube_api: Api) -> None:
    secret = kr8s.asyncio.objects.Secret(
        {"metadata": {"name": "token", "namespace": "default"}, "data": {"t": "eA=="}},
        api=kube_api,
    )
    await secret.create()
    await secret.refresh()
    assert secret.raw["data"] == {"t": "eA=="}
    assert k8s.get_object("secrets", "default", "token") is not None


async def test_run_emulator_outside_fixtures(tmp_path: pathlib.Path) -> None:
    async with run_emulator(crds=[WIDGETS_CRD]) as emulator:
        config = write_kubeconfig(tmp_path / "config", str(emulator.url), namespace="default")
        api = await kr8s.asyncio.Api(bypass_factory=True, kubeconfig=str(config))
        try:
            await Widget(widget("a"), api=api).create()
            async with api.call_api("GET", version="example.com/v1", url="widgets") as response:
                assert [i["metadata"]["name"] for i in response.json()["items"]] == ["a"]
            assert api.auth.token == "emulator-token"
            assert emulator.requests[-1].path == "/apis/example.com/v1/widgets"
        finally:
            await api._session.aclose()
    assert emulator.create_object("widgets", widget("b"))["metadata"]["resourceVersion"] == "2"


def test_kubeconfig_fixture_points_at_the_emulator(k8s: Emulator, kubeconfig: pathlib.Path) -> None:
    import yaml  # noqa: PLC0415

    config = yaml.safe_load(kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == str(k8s.url)
    assert config["users"][0]["user"]["token"]
    assert json.dumps(config)
