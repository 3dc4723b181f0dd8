"""Windowed scoring of streaming anomaly detectors, in the way streaming anomaly benchmarks score them.

    series = [Series("pump-1", scores, windows=[(1200, 1450)])]       # scores: one per reading
    result = score_at(series, threshold=0.9)                        # one threshold for every series
    best = optimise(series)                                         # the threshold that maximises the total
    result.normalised["standard"], result.null, result.perfect

Written from the published description of windowed scoring (Lavin and Ahmad, "Evaluating real-time anomaly
detection algorithms", 2015); no benchmark code or data is used.

- A detection is a reading whose score is at or above the threshold. Every reading counts, so a detector that
  keeps scoring high through a long episode collects a false positive for each reading outside a window.
- Windows are labelled stretches (inclusive reading indices) in which a detection is right. `onset_windows`
  builds them the usual way from labelled onsets: a total of `fraction` (10 %) of the series' length shared
  equally among its anomalies, each window centred on its onset.
- The first `probation` share of each series (15 %) is the detector's learning time: detections there are
  ignored. Windows that end inside it are dropped.
- Only the earliest detection inside a window counts, as a true positive weighted by the scaled sigmoid
  sigma(y) = 2 / (1 + exp(5 y)) - 1 of its relative position y = -(end - i) / (end - start + 1) (about 0.987
  at the window's first reading, 0 at its last): early detection earns more. Later detections in the same
  window are neither rewarded nor penalised.
- A detection outside every window is a false positive weighted by sigma of its distance after the previous
  window (y = (i - end) / window length > 0, so the penalty grows from 0 to the full weight), or the full weight
  when no window precedes it.
- A window without a detection costs the false-negative weight.

Raw score S = sum(A_tp sigma) - sum(A_fp |sigma|) - A_fn * missed, over all series. It is normalised
100 * (S - S_null) / (S_perfect - S_null): the null detector (never detects) scores 0, the perfect detector (one
detection at the first reading of each window, nothing else) 100. Cost profiles (A_tp, A_fp, A_fn): standard
(1, 0.11, 1), reward_low_fp (1, 0.22, 1), reward_low_fn (1, 0.11, 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from plantguard.errors import InvalidInput

#: (A_tp, A_fp, A_fn) per application profile.
PROFILES: dict[str, tuple[float, float, float]] = {
    "standard": (1.0, 0.11, 1.0),
    "reward_low_fp": (1.0, 0.22, 1.0),
    "reward_low_fn": (1.0, 0.11, 2.0),
}
PROBATION = 0.15
WINDOW_FRACTION = 0.10


def sigmoid(y: float) -> float:
    """The scaled sigmoid 2 / (1 + e^(5y)) - 1: about 0.987 at y = -1, 0 at y = 0, towards -1 for large y."""
    return 2.0 / (1.0 + math.exp(min(5.0 * y, 700.0))) - 1.0


@dataclass
class Series:
    """One scored stream: `scores` per reading, `windows` as (start, end) inclusive reading indices."""
    name: str
    scores: np.ndarray
    windows: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scores = np.nan_to_num(np.asarray(self.scores, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        if self.scores.ndim != 1:
            raise InvalidInput(f"{self.name}: scores must be 1-D")
        n = len(self.scores)
        ws = sorted((int(a), int(b)) for a, b in self.windows)
        for i, (a, b) in enumerate(ws):
            if not 0 <= a <= b < n:
                raise InvalidInput(f"{self.name}: window ({a}, {b}) outside 0..{n - 1}")
            if i and a <= ws[i - 1][1]:
                raise InvalidInput(f"{self.name}: windows overlap at {a}")
        self.windows = ws


def onset_windows(n: int, onsets: list[int], fraction: float = WINDOW_FRACTION) -> list[tuple[int, int]]:
    """Windows centred on each onset, sharing `fraction` of the length equally; overlapping ones are merged."""
    if not onsets:
        return []
    width = max(1, int(fraction * n / len(onsets)))
    out: list[tuple[int, int]] = []
    for o in sorted(onsets):
        a, b = max(0, o - width // 2), min(n - 1, o - width // 2 + width - 1)
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    windows: int = 0
    #: per detected window: reading index of its first detection minus the window's start, over its length
    delays: list[float] = field(default_factory=list)


@dataclass
class Result:
    threshold: float
    raw: dict[str, float]
    null: dict[str, float]
    perfect: dict[str, float]
    normalised: dict[str, float]
    counts: Counts


def _series_raw(s: Series, detected: np.ndarray, probation: float) -> tuple[dict[str, float], dict[str, float],
                                                                            dict[str, float], Counts]:
    n = len(s.scores)
    start = int(math.floor(probation * n))
    windows = [(a, b) for a, b in s.windows if b >= start]
    c = Counts(windows=len(windows))
    raw = dict.fromkeys(PROFILES, 0.0)
    null = {p: -w[2] * len(windows) for p, w in PROFILES.items()}
    perfect = dict.fromkeys(PROFILES, 0.0)
    for a, b in windows:
        length = b - a + 1
        for p, (tp, _fp, _fn) in PROFILES.items():
            perfect[p] += tp * sigmoid(-(b - max(a, start)) / length)
    idx = np.flatnonzero(detected)
    idx = idx[idx >= start]
    starts = np.array([a for a, _ in windows], np.int64)
    ends = np.array([b for _, b in windows], np.int64)
    hit = np.zeros(len(windows), bool)
    # window of each detection, or the last window before it
    k = np.searchsorted(starts, idx, side="right") - 1
    for i, w in zip(idx.tolist(), k.tolist()):
        if w >= 0 and i <= ends[w]:
            if not hit[w]:
                hit[w] = True
                a, b = int(starts[w]), int(ends[w])
                y = -(b - i) / (b - a + 1)
                for p, (tp, _fp, _fn) in PROFILES.items():
                    raw[p] += tp * sigmoid(y)
                c.tp += 1
                c.delays.append((i - a) / (b - a + 1))
            continue
        c.fp += 1
        if w >= 0:
            a, b = int(starts[w]), int(ends[w])
            weight = -sigmoid((i - b) / (b - a + 1))  # in (0, 1): small right after a window
        else:
            weight = 1.0
        for p, (_tp, fp, _fn) in PROFILES.items():
            raw[p] -= fp * weight
    c.fn = int((~hit).sum())
    for p, (_tp, _fp, fn) in PROFILES.items():
        raw[p] -= fn * c.fn
    return raw, null, perfect, c


def score_detections(series: list[Series], detections: list[np.ndarray], *, probation: float = PROBATION,
                     threshold: float = math.nan) -> Result:
    """Score boolean detections (one array per series) with every profile."""
    raw = dict.fromkeys(PROFILES, 0.0)
    null = dict.fromkeys(PROFILES, 0.0)
    perfect = dict.fromkeys(PROFILES, 0.0)
    total = Counts()
    for s, d in zip(series, detections, strict=True):
        r, nl, pf, c = _series_raw(s, np.asarray(d, bool), probation)
        for p in PROFILES:
            raw[p] += r[p]
            null[p] += nl[p]
            perfect[p] += pf[p]
        total.tp += c.tp
        total.fp += c.fp
        total.fn += c.fn
        total.windows += c.windows
        total.delays.extend(c.delays)
    norm = {p: (100.0 * (raw[p] - null[p]) / (perfect[p] - null[p]) if perfect[p] > null[p] else 0.0)
            for p in PROFILES}
    return Result(threshold, raw, null, perfect, norm, total)


def score_at(series: list[Series], threshold: float, *, probation: float = PROBATION) -> Result:
    """Every reading scoring at or above `threshold` is a detection."""
    return score_detections(series, [s.scores >= threshold for s in series], probation=probation,
                            threshold=threshold)


def optimise(series: list[Series], profile: str = "standard", *, probation: float = PROBATION,
             candidates: int = 200) -> Result:
    """The one threshold (for all series) with the best normalised score under `profile`. Candidates are
    quantiles of the pooled scores above zero; a threshold above every score (the null detector) is one of them."""
    if profile not in PROFILES:
        raise InvalidInput(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    pooled = np.concatenate([s.scores for s in series]) if series else np.zeros(0)
    pos = pooled[pooled > 0]
    # the highest scores decide: candidates dense near the top of the distribution
    qs = 1.0 - np.geomspace(1.0, 1e-7, candidates)
    grid = np.unique(np.r_[np.quantile(pos, qs) if len(pos) else [], np.nextafter(pooled.max(initial=0.0), np.inf)])
    best: Result | None = None
    for t in grid.tolist():
        r = score_at(series, t, probation=probation)
        if best is None or r.normalised[profile] > best.normalised[profile]:
            best = r
    assert best is not None
    return best
