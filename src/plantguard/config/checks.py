"""The plant model's checks that need a capability's code: detectors that must exist and build with their
parameters, RUL models, shift calendars. The domain walks the document and calls these through its
`ModelChecks` hooks (domain/checks.py), so the domain itself imports no capability."""

from __future__ import annotations

from typing import Any

from plantguard.domain.checks import ModelChecks
from plantguard.errors import ConfigError, ConfigProblem


def _list(d: dict, key: str) -> list:
    v = d.get(key)
    return v if isinstance(v, list) else []


def _shift_problems(s: dict, sp: str) -> list[ConfigProblem]:
    shifts = [x for x in _list(s, "shifts") if isinstance(x, dict)]
    if not shifts and s.get("day_start", "00:00") == "00:00":
        return []
    from plantguard.analytics.shifts import ShiftCalendar

    try:
        ShiftCalendar("UTC", [(x.get("name"), x.get("start"), x.get("end")) for x in shifts], day_start=s.get("day_start", "00:00"))
    except ConfigError as e:
        return [ConfigProblem(f"{sp}.{p.path}" if p.path else sp, p.message) for p in e.problems]
    except Exception as e:  # noqa: BLE001 - fields of the wrong type are reported by the structural pass
        return [] if not isinstance(e, ValueError) else [ConfigProblem(f"{sp}.shifts", str(e))]
    return []


def _detector_problem(name: Any, field: str, kind: str) -> list[ConfigProblem]:
    if not isinstance(name, str):
        return []
    try:
        from plantguard.analytics.anomaly.registry import detector_kinds
    except ImportError:  # pragma: no cover - the registry ships with the package
        return []
    kinds = detector_kinds()
    if name == "default":  # the default wiring exists for points and for assets
        return []
    if name not in kinds:
        return [ConfigProblem(field, f"unknown detector {name!r} (known: {', '.join(sorted(kinds))})")]
    if kinds[name] != kind:
        return [ConfigProblem(field, f"detector {name!r} is {kinds[name]}; a {kind} one is needed here")]
    return []


MAX_PARAM = 1e12  # detector and model parameters: counts, windows and gains far below it; memory is sized from some


def _param_values_problems(params: Any, path: str) -> list[ConfigProblem]:
    if not isinstance(params, dict):
        return []
    out = []
    for k, v in params.items():
        if isinstance(v, bool) or v is None or isinstance(v, str):
            continue
        vals = v if isinstance(v, (list, tuple)) else [v]
        for x in vals:
            if not isinstance(x, (int, float)) or isinstance(x, bool):
                out.append(ConfigProblem(f"{path}.{k}", f"must be a number, a boolean, a string or a list of numbers (got {x!r})"))
                break
            if not (abs(float(x)) <= MAX_PARAM):  # also False for NaN
                out.append(ConfigProblem(f"{path}.{k}", f"must be a finite number of magnitude at most {MAX_PARAM:g} (got {x!r})"))
                break
    return out


def analytics_build_problems(kind: str, settings: dict, path: str) -> list[ConfigProblem]:
    """Builds the detector or model that the runtime would build from these settings and reports why it cannot
    be built (unknown or mistyped parameters, values out of the detector's range). Catches at load what would
    otherwise fail when the model is applied."""
    params = settings.get("params", {})
    out = _param_values_problems(params, f"{path}.params")
    if out or not isinstance(params, dict):
        return out
    try:
        if kind == "point_anomaly":
            detector = settings.get("detector", "default")
            threshold = settings.get("threshold", 0.9)
            if detector == "default":
                from plantguard.analytics.anomaly.bank import RobustZBank
                from plantguard.analytics.anomaly.defaults import bank_params

                RobustZBank().add(**bank_params({**params, "threshold": threshold}))
            elif detector == "robust_z":
                from plantguard.analytics.anomaly.bank import RobustZBank

                RobustZBank().add(threshold=threshold, **{"persistence": 1, **params})
            else:
                from plantguard.analytics.anomaly.registry import load

                load(detector)(**params)
        elif kind == "asset_anomaly":
            from plantguard.analytics.anomaly.registry import load

            detector = settings.get("detector", "default")
            if detector == "default":
                from plantguard.analytics.anomaly.defaults import default_asset_detector

                default_asset_detector(settings.get("threshold", 0.95), **params)
            else:
                load(detector)(**params)
        elif kind == "rul":
            from plantguard.analytics.rul.trend import DegradationTrend

            DegradationTrend(float(settings.get("failure_threshold", 1.0)), **params)
    except Exception as e:  # noqa: BLE001 - whatever the constructor refuses is a problem of these settings
        msg = str(e) or type(e).__name__
        if isinstance(e, TypeError) and "unexpected keyword" in msg:
            msg = f"unknown parameter: {msg.split('argument', 1)[-1].strip()}"
        out.append(ConfigProblem(f"{path}.params", msg))
    return out




class CapabilityChecks(ModelChecks):
    """The analytics capability's checks of the plant model."""

    def site(self, site: dict, path: str) -> list[ConfigProblem]:
        return _shift_problems(site, path)

    def point_anomaly(self, settings: dict, path: str) -> list[ConfigProblem]:
        kind = _detector_problem(settings.get("detector", "default"), f"{path}.detector", "univariate")
        return kind or analytics_build_problems("point_anomaly", settings, path)

    def asset_anomaly(self, settings: dict, path: str) -> list[ConfigProblem]:
        kind = _detector_problem(settings.get("detector", "default"), f"{path}.detector", "multivariate")
        return kind or analytics_build_problems("asset_anomaly", settings, path)

    def rul(self, settings: dict, path: str) -> list[ConfigProblem]:
        return analytics_build_problems("rul", settings, path)


CHECKS = CapabilityChecks()
