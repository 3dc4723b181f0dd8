"""Detectors by name, imported lazily so that listing them costs nothing and a missing one breaks nothing.

    from plantguard.analytics.anomaly import registry
    registry.available()                     # names whose module imports, e.g. ["robust_z", "mahalanobis", ...]
    det = registry.make("robust_z", alpha=0.02)

Adding a detector:

1. Write it as a `base.Detector` subclass (constructor arguments stored under their own names, state in
   private attributes, score in [0, 1], 0.0 during warm-up, missing values never raise) with defaults that
   work on the fixture streams of `checks.labelled_stream` (a warm-up well under 1000 readings).
2. Add `"name": "package.module:Class"` to `DETECTORS` below.
3. Nothing else: `analytics/anomaly/tests/test_checks.py` runs the shared check suite (`checks.yield_checks`)
   over every name in `available()`, so the new detector is checked on the next test run. If it is
   legitimately weaker on the fixture stream, set its bar in `MIN_AUC`.
"""

from __future__ import annotations

import importlib
from typing import Any

from plantguard.analytics.anomaly.base import Detector
from plantguard.errors import NotFound

DETECTORS: dict[str, str] = {
    # the platform's default wiring (defaults.py); "default" on an asset is default_asset_detector
    "default": "plantguard.analytics.anomaly.defaults:default_point_detector",
    "robust_z": "plantguard.analytics.anomaly.robust:RobustZScore",
    "mahalanobis": "plantguard.analytics.anomaly.multivariate:StreamingMahalanobis",
    "changepoint": "plantguard.analytics.anomaly.changepoint:CusumChangePoint",
    "likelihood": "plantguard.analytics.anomaly.likelihood:AnomalyLikelihood",
}

#: Minimum ROC AUC each detector must reach on its fixture stream in the shared checks (default 0.8).
MIN_AUC: dict[str, float] = {}


def load(name: str) -> type[Detector]:
    """The detector class registered under `name`; NotFound if unknown or its module does not exist."""
    try:
        target = DETECTORS[name]
    except KeyError:
        raise NotFound(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}") from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # only the detector's own module may be missing; a broken import inside it must surface
        if exc.name is None or not (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise
        raise NotFound(f"detector {name!r}: module {module_name} is not installed") from None
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise NotFound(f"detector {name!r}: {module_name} has no {attr}") from None
    return cls


def available() -> list[str]:
    """Names in `DETECTORS` whose class can be imported, in registration order."""
    out = []
    for name in DETECTORS:
        try:
            load(name)
        except NotFound:
            continue
        out.append(name)
    return out


def make(name: str, **params: Any) -> Detector:
    """A new detector `name` built with `params` (the class's defaults for the rest)."""
    return load(name)(**params)


def detector_kinds() -> dict[str, str]:
    """name -> "univariate" or "multivariate" for every available detector (used to validate the plant model)."""
    return {name: getattr(load(name), "kind", "univariate") for name in available()}
