"""Markers of the deployment tests (registered here so the suite owns them)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dashboard: runs a real Prometheus and evaluates every Grafana panel query "
        "(select with -m dashboard)",
    )
