"""Shared fixtures. Server fixtures (PostgreSQL, Mosquitto) live in plantguard.testing so benchmarks reuse them."""

from __future__ import annotations

import pytest
from hypothesis import settings

# Deterministic property tests: the same examples on every run (set PLANTGUARD_HYPOTHESIS=explore to vary them).
settings.register_profile("deterministic", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile("explore" if __import__("os").environ.get("PLANTGUARD_HYPOTHESIS") == "explore" else "deterministic")

pytest_plugins = ["plantguard.testing.pg", "plantguard.testing.mosquitto"]


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d
