"""Shared fixtures. Server fixtures (PostgreSQL, Mosquitto) live in plantguard.testing so benchmarks reuse them."""

from __future__ import annotations

import pytest

pytest_plugins = ["plantguard.testing.pg", "plantguard.testing.mosquitto"]


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d
