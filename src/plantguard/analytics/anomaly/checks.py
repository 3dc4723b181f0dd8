"""The check suite every detector passes, and the labelled fixture streams it uses.

    for check in yield_checks(RobustZScore()):
        check()                      # raises AssertionError with the reason on failure

Each check takes an unfitted detector, works on clones of it and leaves it untouched. The streams are
deterministic (a fixed seed), small enough that the whole suite runs in about a second per detector, and
labelled, so `check_min_quality` can hold every detector to a minimum ROC AUC:

- univariate: a slowly varying process value with Gaussian noise, spikes (6-12 sigma) and short level shifts;
- multivariate: a centrifugal pump whose vibration, motor current, discharge pressure and bearing temperature
  all follow one load, with vibration spikes, a pressure drop, and a broken correlation (current rises while
  pressure does not, as with a worn impeller or a blocked suction).
"""

from __future__ import annotations

import functools
import math
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from plantguard.analytics.anomaly.base import Detector
from plantguard.errors import InvalidInput

PUMP_SENSORS = ("vibration", "current", "pressure", "temperature")


@dataclass(frozen=True)
class LabelledStream:
    kind: str                # "univariate" (xs are floats) or "multivariate" (xs are dicts)
    xs: list                 # readings in time order
    labels: np.ndarray       # bool, True where an anomaly was injected
    ts: np.ndarray           # epoch seconds, one reading a minute

    def __len__(self) -> int:
        return len(self.xs)


def labelled_stream(kind: str = "univariate", n: int = 3000, seed: int = 7) -> LabelledStream:
    """A deterministic labelled stream; anomalies start after the first 20 % so warm-ups see clean data."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    ts = 1_700_000_000.0 + 60.0 * t
    labels = np.zeros(n, dtype=bool)
    start = n // 5
    # anomaly positions: well separated, never in the warm-up
    slots = np.arange(start, max(start, n - 40), 40)
    events = np.sort(rng.choice(slots, size=min(len(slots), n // 120), replace=False))
    if kind == "univariate":
        x = 50.0 + 5.0 * np.sin(2 * np.pi * t / 1440.0) + rng.normal(0.0, 1.0, n)
        for j, e in enumerate(events):
            if j % 3 == 2:  # a short level shift
                x[e:e + 15] += rng.choice([-1.0, 1.0]) * rng.uniform(6.0, 9.0)
                labels[e:e + 15] = True
            else:           # a spike
                x[e] += rng.choice([-1.0, 1.0]) * rng.uniform(6.0, 12.0)
                labels[e] = True
        return LabelledStream(kind, [float(v) for v in x], labels, ts)
    if kind != "multivariate":
        raise InvalidInput(f"kind must be 'univariate' or 'multivariate', got {kind!r}")
    load = 0.6 + 0.15 * np.sin(2 * np.pi * t / 720.0) + 0.05 * np.cumsum(rng.normal(0, 0.02, n))
    heat = np.empty(n)
    acc = load[0]
    for i in range(n):  # bearing temperature lags the load
        acc += 0.05 * (load[i] - acc)
        heat[i] = acc
    data = {
        "vibration": 1.0 + 2.0 * load + rng.normal(0, 0.05, n),
        "current": 5.0 + 20.0 * load + rng.normal(0, 0.25, n),
        "pressure": 1.0 + 5.0 * load + rng.normal(0, 0.06, n),
        "temperature": 35.0 + 20.0 * heat + rng.normal(0, 0.2, n),
    }
    for j, e in enumerate(events):
        kind_j = j % 3
        if kind_j == 0:    # vibration spike
            data["vibration"][e] += rng.uniform(0.6, 1.2)
            labels[e] = True
        elif kind_j == 1:  # pressure drop for 15 readings
            data["pressure"][e:e + 15] -= rng.uniform(0.5, 0.8)
            labels[e:e + 15] = True
        else:              # current follows a higher load than pressure and vibration show
            data["current"][e:e + 15] += rng.uniform(2.0, 3.0)
            labels[e:e + 15] = True
    xs = [{k: float(data[k][i]) for k in PUMP_SENSORS} for i in range(n)]
    return LabelledStream(kind, xs, labels, ts)


def roc_auc(scores: Any, labels: Any) -> float:
    """ROC AUC by the Mann-Whitney rank statistic (ties get average ranks)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise InvalidInput("roc_auc needs both labels")
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0  # 1-based average rank of each tie group
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def run(detector: Detector, xs: Any) -> np.ndarray:
    """Score-then-learn every reading; the scores."""
    out = np.empty(len(xs))
    for i, x in enumerate(xs):
        out[i] = detector.score_one(x)
        detector.learn_one(x)
    return out


def _stream_for(detector: Detector, n: int = 3000) -> LabelledStream:
    return labelled_stream("multivariate" if detector.kind == "multivariate" else "univariate", n=n)


def _same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if not np.array_equal(a, b):
        i = int(np.flatnonzero(a != b)[0])
        raise AssertionError(f"{what}: first difference at reading {i}: {a[i]!r} != {b[i]!r}")


# -- checks ---------------------------------------------------------------------------------------------------
def check_clone(detector: Detector) -> None:
    """clone() gives the same parameters and a fresh, independent state."""
    c = detector.clone()
    assert c is not detector and type(c) is type(detector)
    assert repr(c) == repr(detector), f"{c!r} != {detector!r}"
    before = detector.checkpoint()
    run(c, _stream_for(detector, 500).xs)
    assert detector.checkpoint() == before, "learning on a clone changed the original"
    fresh = c.clone()
    assert not fresh.is_warm, "a clone of a trained detector is already warm"


def check_pickle_roundtrip(detector: Detector) -> None:
    """checkpoint()/restore() and plain pickling mid-stream give identical scores afterwards."""
    xs = _stream_for(detector, 1500).xs
    half = len(xs) // 2
    d = detector.clone()
    run(d, xs[:half])
    restored = Detector.restore(d.checkpoint())
    unpickled = pickle.loads(pickle.dumps(d))
    assert type(restored) is type(d) and restored.is_warm == d.is_warm
    ref = run(d, xs[half:])
    _same(run(restored, xs[half:]), ref, "restored checkpoint")
    _same(run(unpickled, xs[half:]), ref, "unpickled detector")
    try:
        Detector.restore(b"not a checkpoint")
    except InvalidInput:
        pass
    else:
        raise AssertionError("restore accepted a blob without the checkpoint header")


def check_seeded_determinism(detector: Detector) -> None:
    """Two clones (same seed, if the detector has one) score the same stream identically."""
    xs = _stream_for(detector, 1500).xs
    _same(run(detector.clone(), xs), run(detector.clone(), xs), "second run")


def _missing_inputs(detector: Detector, template: Any) -> list:
    if detector.kind != "multivariate":
        return [None, math.nan, float("nan")]
    keys = list(template)
    return [{k: (None if i == 0 else v) for i, (k, v) in enumerate(template.items())},
            {k: (math.nan if i == 1 else v) for i, (k, v) in enumerate(template.items())},
            {k: v for k, v in template.items() if k != keys[-1]},
            {}]


def check_missing_values(detector: Detector) -> None:
    """Missing values never raise, score in [0, 1] (0.0 for a univariate detector) and teach nothing."""
    xs = _stream_for(detector, 1500).xs
    clean, holey = detector.clone(), detector.clone()
    clean_scores, holey_scores = [], []
    for i, x in enumerate(xs):
        if i % 50 == 25:
            for m in _missing_inputs(detector, x):
                s = holey.score_one(m)
                assert 0.0 <= s <= 1.0, f"score {s} for missing input {m!r}"
                if detector.kind != "multivariate":
                    assert s == 0.0, f"univariate score {s} for missing input {m!r}, expected 0.0"
                holey.learn_one(m)
        clean_scores.append(clean.score_one(x))
        holey_scores.append(holey.score_one(x))
        clean.learn_one(x)
        holey.learn_one(x)
    _same(np.array(holey_scores), np.array(clean_scores), "scores after missing inputs")


def check_score_range(detector: Detector) -> None:
    """Scores are finite, in [0, 1], exactly 0.0 before the detector is warm, and not all 0 after."""
    d = detector.clone()
    warm_scores = []
    for i, x in enumerate(_stream_for(detector, 1500).xs):
        s = d.score_one(x)
        assert isinstance(s, float) and 0.0 <= s <= 1.0, f"score {s!r} at reading {i}"
        if not d.is_warm:
            assert s == 0.0, f"score {s} at reading {i} before warm-up ended"
        else:
            warm_scores.append(s)
        d.learn_one(x)
    assert warm_scores and max(warm_scores) > 0.0, "never warm, or only zero scores"


def check_constant_signal(detector: Detector) -> None:
    """A constant signal gives finite scores, and a later move scores higher than the constant does."""
    template = _stream_for(detector, 10).xs[0]
    const = template if detector.kind == "multivariate" else 50.0
    d = detector.clone()
    scores = run(d, [const] * 1000)
    assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1)), "constant signal scores"
    assert d.is_warm, "not warm after 1000 identical readings"
    moved = {k: v * 1.05 for k, v in const.items()} if isinstance(const, dict) else const * 1.05
    s_moved, s_const = d.score_one(moved), d.score_one(const)
    assert math.isfinite(s_moved) and s_moved > s_const, f"move scored {s_moved}, constant {s_const}"


def level_shift_stream(n_features: int = 4, seed: int = 11, shifts: tuple[int, ...] = (800, 1400, 2000, 2600),
                       size: float = 3.0, n: int = 3200) -> tuple[list[dict[str, float]], list[int]]:
    """Correlated pump-like features whose mean moves by `size` standard deviations at each of `shifts`
    (alternately up and back), for change-point detectors."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0.0, 1.0, n)
    x = common[:, None] * 0.6 + rng.normal(0.0, 0.8, (n, n_features))
    level = np.zeros(n)
    for k, at in enumerate(shifts):
        level[at:] = size if k % 2 == 0 else 0.0
    x = x + level[:, None]
    return [{f"x{j}": float(v) for j, v in enumerate(row)} for row in x], list(shifts)


def check_change_detection(detector: Detector, max_delay: int = 60, min_found: float = 0.75, max_false: int = 2) -> None:
    """For change-point detectors (they expose `change_points`): at least `min_found` of the level shifts are
    detected within `max_delay` readings, with at most `max_false` detections elsewhere."""
    det = detector.clone()
    xs, shifts = level_shift_stream()
    x0 = xs[0] if det.kind == "multivariate" else None
    for x in xs:
        det.score_one(x if x0 is not None else x["x0"])
        det.learn_one(x if x0 is not None else x["x0"])
    found = [any(at <= c < at + max_delay for c in det.change_points) for at in shifts]
    false = [c for c in det.change_points if not any(at <= c < at + max_delay for at in shifts)]
    assert sum(found) >= min_found * len(shifts), f"found {sum(found)} of {len(shifts)} shifts: {det.change_points}"
    assert len(false) <= max_false, f"{len(false)} false change points: {false}"


def check_min_quality(detector: Detector, stream: LabelledStream | None = None, min_auc: float = 0.8) -> None:
    """ROC AUC of score-then-learn scores against the stream's labels is at least `min_auc`. A change-point
    detector re-learns each new regime, so its per-reading score does not follow collective labels: it is held
    to check_change_detection instead."""
    if stream is None and hasattr(detector, "change_points"):
        check_change_detection(detector)
        return
    stream = _stream_for(detector) if stream is None else stream
    auc = roc_auc(run(detector.clone(), stream.xs), stream.labels)
    assert auc >= min_auc, f"ROC AUC {auc:.3f} < {min_auc} on the {stream.kind} fixture stream"


def check_protection_does_not_starve(detector: Detector, max_delay: int = 60, min_found: float = 0.75) -> None:
    """Keeping anomalies out of what is learned (Thresholded(protect=True)) must never starve a detector of the
    updates its own algorithm needs: a change-point detector, wrapped so, still declares the level shifts it
    finds bare (its CUSUM accumulates on exactly the readings that score high). Other detectors: nothing to check."""
    if not hasattr(detector, "change_points"):
        return
    from plantguard.analytics.anomaly.threshold import Thresholded

    th = Thresholded(detector.clone(), threshold=0.9, protect=True)
    xs, shifts = level_shift_stream()
    multi = th.kind == "multivariate"
    for x in xs:
        th.update(x if multi else x["x0"])
    cps = th.detector.change_points
    found = [any(at <= c < at + max_delay for c in cps) for at in shifts]
    assert sum(found) >= min_found * len(shifts), f"protected: found {sum(found)} of {len(shifts)} shifts: {cps}"


CHECKS: tuple[Callable[..., None], ...] = (check_clone, check_pickle_roundtrip, check_seeded_determinism,
                                           check_missing_values, check_score_range, check_constant_signal,
                                           check_min_quality, check_protection_does_not_starve)


def yield_checks(detector: Detector, *, min_auc: float = 0.8) -> Iterator[Callable[[], None]]:
    """Every check bound to `detector`, each with a `__name__`, ready to call or to parametrize a test."""
    for check in CHECKS:
        bound = functools.partial(check, detector, min_auc=min_auc) if check is check_min_quality \
            else functools.partial(check, detector)
        functools.update_wrapper(bound, check)
        yield bound
