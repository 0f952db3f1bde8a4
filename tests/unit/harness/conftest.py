"""Fixtures of the emulator's own tests: the shared `k8s` emulator plus the Widget test CRD."""

from __future__ import annotations

import pathlib

import pytest

from tests.harness import Emulator

WIDGETS_CRD = pathlib.Path(__file__).parent / "widgets.yaml"


@pytest.fixture
def widgets(k8s: Emulator) -> Emulator:
    """The `k8s` emulator with the Widget CRD (example.com/v1) installed too."""
    k8s.install_crd(WIDGETS_CRD)
    return k8s
