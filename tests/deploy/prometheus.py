"""A real Prometheus (the Debian `prometheus` binary) as a subprocess, scraping
loopback targets every second, queried through its HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import math
import pathlib
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import yaml

SCRAPE_INTERVAL = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self._session = session

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises on an API error (a malformed expression)."""
        async with self._session.get(f"{self.url}/api/v1/query", params={"query": expr}) as r:
            body = await r.json()
        assert body["status"] == "success", f"{expr}: {body}"
        return list(body["data"]["result"])

    async def wait_for_scrapes(self, count: int) -> None:
        """Wait until every target has been scraped `count` more times (and is up)."""

        async def scrapes() -> float:
            samples = await self.query('count_over_time(up{job="controller"}[1h])')
            return min((float(s["value"][1]) for s in samples), default=0.0)

        start = await scrapes()
        up: list[dict[str, Any]] = []
        for _ in range(int(60 / 0.2)):
            up = await self.query('up{job="controller"}')
            if up and all(s["value"][1] == "1" for s in up) and await scrapes() >= start + count:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"Prometheus did not scrape {count} times: up={up}")


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    values = [float(s["value"][1]) for s in result]
    return [v for v in values if math.isfinite(v)]


@contextlib.asynccontextmanager
async def running_prometheus(
    tmp_path: pathlib.Path, targets: list[str]
) -> AsyncIterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: apt-get install prometheus (./dev test does as root)"
    config = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL:g}s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "controller",
                "scrape_timeout": "900ms",
                "static_configs": [{"targets": targets}],
            }
        ],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = _free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for _ in range(int(30 / 0.1)):
                assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{url}/-/ready") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("Prometheus did not become ready")
            yield Prometheus(url, session)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
