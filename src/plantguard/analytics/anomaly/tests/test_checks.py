"""The shared check suite over every detector the registry can import, plus the suite's own helpers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from plantguard.analytics.anomaly import checks, registry
from plantguard.analytics.anomaly.checks import labelled_stream, roc_auc
from plantguard.analytics.anomaly.robust import RobustZScore
from plantguard.analytics.anomaly.threshold import Thresholded
from plantguard.errors import NotFound

CASES = [(name, check.__name__) for name in registry.available() for check in checks.CHECKS]


@pytest.mark.parametrize(("name", "check"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_detector_passes_check(name, check):
    detector = registry.make(name)
    bound = {c.__name__: c for c in checks.yield_checks(detector, min_auc=registry.MIN_AUC.get(name, 0.8))}
    bound[check]()


@pytest.mark.parametrize("check", checks.CHECKS, ids=lambda c: c.__name__)
def test_thresholded_wrapper_passes_checks(check):
    wrapped = Thresholded(RobustZScore(), threshold=0.9, relearn_after=50)
    {c.__name__: c for c in checks.yield_checks(wrapped)}[check.__name__]()


def test_registry_lists_robust_z_and_makes_with_params():
    assert "robust_z" in registry.available()
    det = registry.make("robust_z", alpha=0.05)
    assert isinstance(det, RobustZScore) and det.alpha == 0.05


def test_registry_tolerates_missing_module(monkeypatch):
    monkeypatch.setitem(registry.DETECTORS, "ghost", "plantguard.analytics.anomaly.no_such_module:Ghost")
    assert "ghost" not in registry.available()
    with pytest.raises(NotFound):
        registry.make("ghost")
    with pytest.raises(NotFound):
        registry.make("never-registered")


def test_registry_surfaces_broken_imports_inside_a_detector_module(monkeypatch, tmp_path):
    (tmp_path / "pg_broken_detector.py").write_text("import pg_dependency_that_is_absent\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.DETECTORS, "broken", "pg_broken_detector:Broken")
    with pytest.raises(ModuleNotFoundError):
        registry.load("broken")


def test_fixture_streams_are_deterministic_and_labelled():
    for kind in ("univariate", "multivariate"):
        a, b = labelled_stream(kind), labelled_stream(kind)
        assert a.xs == b.xs and np.array_equal(a.labels, b.labels)
        assert 0.02 < a.labels.mean() < 0.15
        assert not a.labels[: len(a) // 5].any()
    pump = labelled_stream("multivariate")
    assert set(pump.xs[0]) == set(checks.PUMP_SENSORS)
    assert len(labelled_stream("univariate", n=50)) == 50


@given(st.lists(st.tuples(st.integers(0, 5).map(float), st.booleans()), min_size=2, max_size=60)
       .filter(lambda r: 0 < sum(y for _, y in r) < len(r)))
def test_roc_auc_matches_sklearn(rows):
    scores = [s for s, _ in rows]
    labels = [y for _, y in rows]
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_docs_describe_every_check_detector_and_registered_name():
    from pathlib import Path

    import plantguard.analytics.anomaly as anomaly

    docs = (Path(anomaly.__file__).parents[4] / "docs" / "analytics" / "anomaly.md").read_text(encoding="utf-8")
    for name in [c.__name__ for c in checks.CHECKS] + anomaly.__all__ + list(registry.DETECTORS):
        assert name in docs, f"docs/analytics/anomaly.md does not mention {name}"
    assert "## Multivariate and change-point detectors" in docs
