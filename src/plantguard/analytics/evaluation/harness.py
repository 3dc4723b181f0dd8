"""Evaluation of detector wirings with the windowed scorer: synthetic plant streams, SKAB, and false-alarm rates
on normal data. What is evaluated is what the platform runs: `defaults.DEFAULT_POINT` in a RobustZBank (the
vectorised equivalent of `default_point_detector()`), `default_asset_detector()` for assets.

    report = evaluate_streams()                 # labelled synthetic streams (streams.py), windowed scores
    print(format_streams(report))
    far = false_alarms(weeks=1, seeds=5, skab="../shared/datasets/skab/data")
    print(format_false_alarms(far))
    print(format_skab_windowed(evaluate_skab_windowed("../shared/datasets/skab/data")))

Every table prints the null (0) and perfect (100) baselines next to the results, the score at the wiring's own
threshold (what an operator gets) and at the best single threshold for all series (what a benchmark reports).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from plantguard.analytics.anomaly.bank import RobustZBank
from plantguard.analytics.anomaly.defaults import DEFAULT_ASSET_THRESHOLD, DEFAULT_POINT, DEFAULT_WARMUP, \
    default_asset_detector
from plantguard.analytics.evaluation.streams import KINDS, Stream, labelled_streams, normal_stream
from plantguard.analytics.evaluation.windowed import PROFILES, Result, Series, optimise, score_at

WEEK_S = 604_800

#: wirings compared on the synthetic streams: the default, and the former documented default
WIRINGS: dict[str, dict[str, Any]] = {
    "default": DEFAULT_POINT,
    "robust_z protected (former default)": {"threshold": 0.9, "protect": True, "protect_for": None,
                                            "floor_history": 0.0},
}


def run_bank(values: list[np.ndarray], params: dict[str, Any] = DEFAULT_POINT,
             running: list[np.ndarray] | None = None, chunk: int = 4096) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Reported scores and open-episode flags per series, all series in one bank (one slot each), in time
    order. Readings outside `running` are neither scored nor learned (score 0, episode state carried), as with
    `only_when: [running]`."""
    bank = RobustZBank(warmup=DEFAULT_WARMUP, bins=1)
    for _ in values:
        bank.add(**params)
    scores = [np.zeros(len(v)) for v in values]
    flags = [np.zeros(len(v), bool) for v in values]
    n = max((len(v) for v in values), default=0)
    for c in range(0, n, chunk):
        sl, ix, vs = [], [], []
        for k, v in enumerate(values):
            m = np.arange(c, min(c + chunk, len(v)))
            if running is not None:
                m = m[running[k][m]]
            sl.append(np.full(len(m), k, np.int64))
            ix.append(m)
            vs.append(v[m])
        if not any(len(m) for m in ix):
            continue
        slots, idx, vals = np.concatenate(sl), np.concatenate(ix), np.concatenate(vs)
        order = np.argsort(idx, kind="stable")  # time order across series
        s_o, i_o = slots[order], idx[order]
        res = bank.process(s_o, vals[order])
        for k in range(len(values)):
            sel = s_o == k
            scores[k][i_o[sel]] = res.scores[sel]
            flags[k][i_o[sel]] = res.is_anomaly[sel]
    if running is not None:  # carry the episode state over readings that were not analysed
        for k, r in enumerate(running):
            last = np.maximum.accumulate(np.where(r, np.arange(len(r)), -1))
            flags[k] = np.where(last >= 0, flags[k][np.maximum(last, 0)], False)
    return scores, flags


def episodes(flags: np.ndarray) -> np.ndarray:
    """Indices where an episode opens."""
    f = np.asarray(flags, bool)
    return np.flatnonzero(f & ~np.r_[False, f[:-1]])


@dataclass
class StreamsReport:
    wiring: str
    at_threshold: Result
    best: dict[str, Result]
    per_kind: dict[str, dict[str, Any]]
    onset_within_tenth: float  # share of detectable anomalies (detected at all) flagged in the first tenth
    series: int
    readings: int
    runtime_s: float


def _onset_delays(streams: list[Stream], detections: list[np.ndarray]) -> dict[str, list[float]]:
    """Per kind, for each anomaly: first detection after its onset, as a share of its window's length."""
    out: dict[str, list[float]] = {k: [] for k in KINDS}
    for st, det in zip(streams, detections):
        wins = st.windows()
        for o in st.onsets:
            w = next(((a, b) for a, b in wins if a <= o <= b), None)
            if w is None:
                continue
            hits = np.flatnonzero(det[o:w[1] + 1])
            out[st.kind].append(hits[0] / (w[1] - w[0] + 1) if len(hits) else math.nan)
    return out


def evaluate_streams(wiring: str = "default", seeds: tuple[int, ...] = (0, 1, 2), n: int = 20_000) -> StreamsReport:
    """The windowed score of a wiring of WIRINGS on the labelled synthetic streams (every kind per seed)."""
    t0 = time.perf_counter()
    streams = labelled_streams(seeds, n)
    scores, _flags = run_bank([s.values for s in streams], WIRINGS[wiring], [s.running for s in streams])
    series = [Series(s.name, sc, s.windows()) for s, sc in zip(streams, scores)]
    thr = float(WIRINGS[wiring].get("threshold", 0.9))
    at = score_at(series, thr)
    best = {p: optimise(series, p) for p in PROFILES}
    per_kind: dict[str, dict[str, Any]] = {}
    delays = _onset_delays(streams, [sc >= thr for sc in scores])
    for k in KINDS:
        sub = [s for s in series if s.name.startswith(k + "-")]
        r = score_at(sub, thr)
        d = [x for x in delays[k] if not math.isnan(x)]
        per_kind[k] = {"standard": r.normalised["standard"], "tp": r.counts.tp, "fp": r.counts.fp,
                       "fn": r.counts.fn, "median_delay": float(np.median(d)) if d else math.nan}
    found = [x for v in delays.values() for x in v if not math.isnan(x)]
    return StreamsReport(wiring, at, best, per_kind, float(np.mean(np.array(found) <= 0.1)) if found else math.nan,
                         len(series), sum(len(s.scores) for s in series), time.perf_counter() - t0)


def _profiles(r: Result) -> str:
    return "  ".join(f"{r.normalised[p]:6.1f}" for p in PROFILES)


def format_streams(reports: list[StreamsReport]) -> str:
    r0 = reports[0]
    lines = [f"labelled synthetic plant streams: {r0.series} series ({len(KINDS)} kinds x seeds), "
             f"{r0.readings:,} readings; windowed score (standard / low-FP / low-FN), 15 % probation",
             f"{'wiring':<56}{'threshold':>10}  {'std':>6}  {'lowFP':>6}  {'lowFN':>6}   TP  FP  FN",
             f"{'null detector (never alarms)':<56}{'-':>10}  {0.0:6.1f}  {0.0:6.1f}  {0.0:6.1f}",
             f"{'perfect detector':<56}{'-':>10}  {100.0:6.1f}  {100.0:6.1f}  {100.0:6.1f}"]
    for r in reports:
        c = r.at_threshold.counts
        lines.append(f"{r.wiring + ' (own threshold)':<56}{r.at_threshold.threshold:>10.4g}  {_profiles(r.at_threshold)}"
                     f"  {c.tp:3d} {c.fp:3d} {c.fn:3d}")
        for p, b in r.best.items():
            c = b.counts
            lines.append(f"{r.wiring + ' (best for ' + p + ')':<56}{b.threshold:>10.4g}  {_profiles(b)}"
                         f"  {c.tp:3d} {c.fp:3d} {c.fn:3d}")
    lines.append("")
    for r in reports:
        lines.append(f"per kind, {r.wiring} at its own threshold (median onset delay = share of the window after "
                     f"the onset; {100 * r.onset_within_tenth:.0f} % of detected anomalies within the first tenth):")
        for k, d in r.per_kind.items():
            lines.append(f"  {k:<16} score {d['standard']:6.1f}  TP {d['tp']:2d}  FP {d['fp']:3d}  FN {d['fn']:2d}"
                         f"  delay {d['median_delay']:.3f}")
        lines.append(f"  runtime {r.runtime_s:.1f} s")
    return "\n".join(lines)


# -- false alarms on normal data ----------------------------------------------------------------------------
@dataclass
class FalseAlarms:
    per_kind: dict[str, float]          # episodes per point-week of 1 Hz data
    overall: float
    point_weeks: float
    skab: dict[str, float] = field(default_factory=dict)  # per channel: episodes per point-week (anomaly-free file)
    skab_hours: float = 0.0
    runtime_s: float = 0.0


def false_alarms(weeks: float = 1.0, seeds: int = 5, skab: str | Path | None = None,
                 params: dict[str, Any] = DEFAULT_POINT) -> FalseAlarms:
    """Alarm episodes per point per week of 1 Hz normal data: every synthetic kind for `seeds` points of
    `weeks` weeks, and each channel of SKAB's anomaly-free recording when `skab` is given."""
    t0 = time.perf_counter()
    n = int(weeks * WEEK_S)
    streams = [normal_stream(k, n, s) for k in KINDS for s in range(seeds)]
    _scores, flags = run_bank([s.values for s in streams], params, [s.running for s in streams])
    per_kind = {k: 0.0 for k in KINDS}
    for s, f in zip(streams, flags):
        per_kind[s.kind] += len(episodes(f)) / seeds / weeks
    out = FalseAlarms(per_kind, float(np.mean(list(per_kind.values()))), len(streams) * weeks)
    if skab is not None:
        from plantguard.analytics.evaluation.skab import load_skab

        free = [f for f in load_skab(skab) if not f.labelled]
        for f in free:
            cols = [f.X[:, j] for j in range(f.X.shape[1])]
            _s, fl = run_bank(cols, params)
            span = (f.times[-1] - f.times[0] + 1) / WEEK_S
            out.skab_hours += span * WEEK_S / 3600
            for name, fj in zip(f.columns, fl):
                out.skab[name] = out.skab.get(name, 0.0) + len(episodes(fj)) / span
    out.runtime_s = time.perf_counter() - t0
    return out


def format_false_alarms(r: FalseAlarms) -> str:
    lines = [f"false alarms of the default wiring on normal data (alarm episodes per point per week of 1 Hz data; "
             f"aim <= 1): {r.point_weeks:.0f} point-weeks of synthetic normal streams"]
    for k, v in r.per_kind.items():
        lines.append(f"  {k:<16} {v:6.2f}")
    lines.append(f"  {'all kinds':<16} {r.overall:6.2f}")
    if r.skab:
        tot = sum(r.skab.values())
        lines.append(f"SKAB anomaly-free recording ({r.skab_hours:.1f} h), per channel, scaled to a week:")
        for k, v in r.skab.items():
            lines.append(f"  {k:<24} {v:6.2f}")
        lines.append(f"  {'mean over channels':<24} {tot / len(r.skab):6.2f}")
    lines.append(f"runtime {r.runtime_s:.1f} s")
    return "\n".join(lines)


# -- SKAB with the windowed scorer ------------------------------------------------------------------------
@dataclass
class SkabWindowed:
    asset: Result
    asset_best: Result
    points: Result
    points_best: Result
    files: int
    windows: int
    runtime_s: float


def _skab_windows(anomaly: np.ndarray) -> list[tuple[int, int]]:
    """One window per labelled anomaly interval: centred on its onset with the usual 10 % share, stretched to its
    end."""
    a = np.asarray(anomaly, bool)
    starts = np.flatnonzero(a & ~np.r_[False, a[:-1]])
    ends = np.flatnonzero(a & ~np.r_[a[1:], False])
    n = len(a)
    width = max(1, int(0.1 * n / max(1, len(starts))))
    out: list[tuple[int, int]] = []
    for o, e in zip(starts.tolist(), ends.tolist()):
        lo, hi = max(0, o - width // 2), min(n - 1, max(o - width // 2 + width - 1, e + width // 10))
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def evaluate_skab_windowed(path: str | Path, asset_factory: Callable[[], Any] | None = None) -> SkabWindowed:
    """The default asset wiring (all eight channels together) and the default point wiring on every channel (a
    detection when any channel's episode opens) on each labelled SKAB file, streamed from its first row."""
    from plantguard.analytics.evaluation.skab import load_skab

    t0 = time.perf_counter()
    files = [f for f in load_skab(path) if f.labelled]
    factory = asset_factory or default_asset_detector
    asset_series, point_series = [], []
    for f in files:
        det = factory()
        sc = np.zeros(len(f.X))
        for i, row in enumerate(f.X.tolist()):
            sc[i] = det.update(dict(zip(f.columns, row))).score
        wins = _skab_windows(f.anomaly)
        asset_series.append(Series(f.name, sc, wins))
        per, _fl = run_bank([f.X[:, j] for j in range(f.X.shape[1])])
        point_series.append(Series(f.name, np.max(np.stack(per), axis=0), wins))
    return SkabWindowed(score_at(asset_series, DEFAULT_ASSET_THRESHOLD), optimise(asset_series),
                        score_at(point_series, DEFAULT_POINT["threshold"]), optimise(point_series), len(files),
                        sum(len(s.windows) for s in asset_series), time.perf_counter() - t0)


def format_skab_windowed(r: SkabWindowed) -> str:
    lines = [f"SKAB, windowed score ({r.files} files, {r.windows} anomaly windows, streamed from the first row, "
             "15 % probation; standard / low-FP / low-FN)",
             f"{'wiring':<44}{'threshold':>10}  {'std':>6}  {'lowFP':>6}  {'lowFN':>6}   TP  FP  FN",
             f"{'null detector':<44}{'-':>10}  {0.0:6.1f}  {0.0:6.1f}  {0.0:6.1f}",
             f"{'perfect detector':<44}{'-':>10}  {100.0:6.1f}  {100.0:6.1f}  {100.0:6.1f}"]
    for name, res in (("default asset wiring (own threshold)", r.asset), ("default asset wiring (best threshold)",
                                                                          r.asset_best),
                      ("default point wiring, any channel (own)", r.points),
                      ("default point wiring, any channel (best)", r.points_best)):
        c = res.counts
        lines.append(f"{name:<44}{res.threshold:>10.4g}  {_profiles(res)}  {c.tp:3d} {c.fp:3d} {c.fn:3d}")
    lines.append(f"runtime {r.runtime_s:.1f} s")
    return "\n".join(lines)
