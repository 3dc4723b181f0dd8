"""Shared fixtures for the anomaly detector tests."""

from __future__ import annotations

import pytest

from plantguard.analytics.anomaly.checks import labelled_stream


@pytest.fixture(scope="session")
def uni_stream():
    return labelled_stream("univariate")


@pytest.fixture(scope="session")
def pump_stream():
    return labelled_stream("multivariate")
