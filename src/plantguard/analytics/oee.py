"""OEE (availability x performance x quality) with the six big losses, from machine state and part counters.

    cfg = OeeConfig(categories=SIM_STATE_CATEGORIES, ideal_rate_per_h=21600)
    res = compute_oee(states=(ts, codes), good=(ts, values), bad=(ts, values), period=Period("A", t0, t1), config=cfg)
    res.availability, res.performance, res.quality, res.oee, res.losses.breakdowns_s

Inputs are point histories as arrays: `(ts, value)` or `(ts, value, quality)` with ts in int64 epoch microseconds
UTC and quality 0 good / 1 uncertain / 2 bad (any object with .ts/.value/.quality attributes also works).
Histories should start before the period (the last state and counter sample before it give the state and the
counter baseline at its start). docs/analytics/oee.md gives the formulas and the bad-input rules; in short:

- State samples are a step function: a code holds until the next sample, at most `max_gap_s`; after that the time
  is "unknown". Unknown time is reported apart and left out of planned production time, never taken as running.
  NaN or bad-quality state samples, codes not in the mapping, and time before the first sample are unknown too.
- Counters only ever add: a drop is a reset (the PLC restarted at 0, so the new value is the increment) or, when
  `counter_modulus` is set, a rollover. Each increment is booked at the timestamp of the sample that shows it.
  NaN, negative and bad-quality counter samples are dropped and counted.
- Out-of-order samples are sorted, duplicate timestamps keep the last sample given; both are counted in `issues`.
- Performance above 1 is reported as computed and flagged: it means the ideal rate or the counters are wrong,
  and clipping it would hide that. The loss identity holds exactly, so "reduced speed" is negative then.
- status "insufficient_data" (known-state coverage below `min_coverage`, or no counter data) and "not_planned"
  (no planned production time) leave the ratios None: there is no number rather than a made-up one.

The identity  planned production time = fully productive time + the six losses  holds for every result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from plantguard.analytics.shifts import Period
from plantguard.errors import ConfigError, ConfigProblem, InvalidInput

US = 1_000_000

RUNNING, IDLE, UNPLANNED_STOP, SETUP, PLANNED_STOP, UNKNOWN = (
    "running", "idle", "unplanned_stop", "setup", "planned_stop", "unknown")
CATEGORIES = (RUNNING, IDLE, UNPLANNED_STOP, SETUP, PLANNED_STOP, UNKNOWN)
_CAT = {c: i for i, c in enumerate(CATEGORIES)}
_RUN, _IDLE, _FAULT, _SETUP, _PLANNED, _UNKNOWN = range(6)
# time buckets: a fault is a breakdown or, when shorter than minor_stop_max_s, a minor stop
_B_RUN, _B_IDLE, _B_SHORT_FAULT, _B_BREAKDOWN, _B_SETUP, _B_PLANNED, _B_UNKNOWN = range(7)

#: The state codes of the simulated plant (plantguard.sim.signals): a stopped line is a scheduled stop.
SIM_STATE_CATEGORIES: Mapping[int, str] = {0: PLANNED_STOP, 1: RUNNING, 2: IDLE, 3: UNPLANNED_STOP}

STATUS_OK, STATUS_NOT_PLANNED, STATUS_INSUFFICIENT = "ok", "not_planned", "insufficient_data"


@dataclass(frozen=True, kw_only=True)
class OeeConfig:
    """How a machine's state codes and counters are read. Exactly one of ideal_rate_per_h / ideal_cycle_s."""

    categories: Mapping[int, str]
    ideal_rate_per_h: float | None = None
    ideal_cycle_s: float | None = None
    max_gap_s: float | None = 300.0  # None: a state holds until the next sample however late (report by exception)
    minor_stop_max_s: float = 300.0
    startup_window_s: float = 300.0
    counter_modulus: float | None = None  # e.g. 2**32 for a wrapping PLC counter; None: every drop is a reset
    min_coverage: float = 0.5  # share of the period with a known state below which the status is insufficient_data

    def __post_init__(self) -> None:
        p: list[ConfigProblem] = []
        if not isinstance(self.categories, Mapping) or not self.categories:
            p.append(ConfigProblem("categories", "a non-empty mapping state code -> category"))
        else:
            for code, cat in self.categories.items():
                if isinstance(code, bool) or not isinstance(code, (int, np.integer)):
                    p.append(ConfigProblem(f"categories.{code}", "state codes are integers"))
                if cat not in CATEGORIES:
                    p.append(ConfigProblem(f"categories.{code}", f"unknown category {cat!r}; one of {', '.join(CATEGORIES)}"))
        if (self.ideal_rate_per_h is None) == (self.ideal_cycle_s is None):
            p.append(ConfigProblem("ideal_rate_per_h", "give exactly one of ideal_rate_per_h and ideal_cycle_s"))
        for name in ("ideal_rate_per_h", "ideal_cycle_s", "max_gap_s", "counter_modulus"):
            v = getattr(self, name)
            if v is not None and not (_num(v) and v > 0):
                p.append(ConfigProblem(name, "must be a positive number"))
        for name in ("minor_stop_max_s", "startup_window_s"):
            v = getattr(self, name)
            if not (_num(v) and v >= 0):
                p.append(ConfigProblem(name, "must be a number >= 0"))
        if not (_num(self.min_coverage) and 0 <= self.min_coverage <= 1):
            p.append(ConfigProblem("min_coverage", "must be between 0 and 1"))
        if p:
            raise ConfigError(p)

    @property
    def cycle_s(self) -> float:
        return float(self.ideal_cycle_s) if self.ideal_cycle_s is not None else 3600.0 / float(self.ideal_rate_per_h)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class SixLosses:
    """The six big losses as time, in seconds. Quality losses are bad units times the ideal cycle time."""

    breakdowns_s: float = 0.0  # unplanned stops of at least minor_stop_max_s (availability)
    setup_s: float = 0.0  # setup / changeover / adjustment time (availability)
    minor_stops_s: float = 0.0  # idle, starved, blocked, and unplanned stops shorter than minor_stop_max_s (performance)
    reduced_speed_s: float = 0.0  # running time not turned into output at the ideal rate (performance; < 0: data problem)
    defects_s: float = 0.0  # bad units outside startup windows x ideal cycle (quality)
    startup_rejects_s: float = 0.0  # bad units within startup_window_s after a stop x ideal cycle (quality)

    @property
    def total_s(self) -> float:
        return sum(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class OeeResult:
    """OEE of one period. Times in seconds; counts in units; ratios None unless status is "ok"."""

    label: str
    start_us: int
    end_us: int
    status: str
    period_s: float
    planned_stop_s: float
    unknown_s: float
    coverage: float  # share of the period with a known state
    planned_production_s: float  # period - planned stops - unknown
    run_time_s: float  # planned production - breakdowns - setup (includes minor stops, as in TPM)
    running_s: float  # time in the running state
    net_run_s: float  # total units x ideal cycle
    fully_productive_s: float  # good units x ideal cycle
    total: float
    good: float
    bad: float
    startup_bad: float
    losses: SixLosses
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    flags: tuple[str, ...] = ()
    issues: Mapping[str, int] = field(default_factory=dict)  # input repairs: sorted, deduplicated, dropped, resets


# -- input cleaning ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cleaned:
    """A history sorted by time with unique timestamps, and what had to be done to get there."""

    ts: np.ndarray
    value: np.ndarray
    out_of_order: int = 0
    duplicates: int = 0
    dropped: int = 0  # NaN / negative / bad-quality samples removed (counters only)

    def issues(self, prefix: str) -> dict[str, int]:
        d = {"out_of_order": self.out_of_order, "duplicates": self.duplicates, "dropped": self.dropped}
        return {f"{prefix}.{k}": v for k, v in d.items() if v}


def _unpack(series: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if series is None:
        return np.empty(0, np.int64), np.empty(0), None
    if isinstance(series, Cleaned):
        return series.ts, series.value, None
    if hasattr(series, "ts") and hasattr(series, "value"):
        parts = (series.ts, series.value, getattr(series, "quality", None))
    elif isinstance(series, (tuple, list)) and len(series) in (2, 3):
        parts = (series[0], series[1], series[2] if len(series) == 3 else None)
    else:
        raise InvalidInput(f"{name}: expected (ts, value) or (ts, value, quality) arrays")
    try:
        ts = np.asarray(parts[0])
        val = np.asarray(parts[1], dtype=np.float64)
        q = None if parts[2] is None else np.asarray(parts[2], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{name}: values must be numbers ({e})") from None
    if ts.ndim != 1 or val.shape != ts.shape or (q is not None and q.shape != ts.shape):
        raise InvalidInput(f"{name}: ts, value and quality must be 1-D arrays of the same length")
    if ts.size and not np.issubdtype(ts.dtype, np.integer):
        try:
            tsf = ts.astype(np.float64)
        except (TypeError, ValueError):
            raise InvalidInput(f"{name}: timestamps must be integer epoch microseconds") from None
        if not np.all(np.isfinite(tsf)):
            raise InvalidInput(f"{name}: timestamps must be finite")
        ts = tsf
    return ts.astype(np.int64), val, q


def clean_series(series: Any, name: str = "series", *, counter: bool = False) -> Cleaned:
    """Sort by time (stable), keep the last of equal timestamps. For counters, drop NaN, negative and bad-quality
    samples; for states, turn NaN and bad-quality samples into NaN codes (unknown state from then on)."""
    ts, val, q = _unpack(series, name)
    val = val.copy()
    dropped = 0
    if q is not None:
        val[q >= 2] = np.nan
    if counter:
        keep = np.isfinite(val) & (val >= 0)
        dropped = int(np.count_nonzero(~keep))
        ts, val = ts[keep], val[keep]
    out_of_order = int(np.count_nonzero(np.diff(ts) < 0)) if ts.size > 1 else 0
    if out_of_order:
        order = np.argsort(ts, kind="stable")
        ts, val = ts[order], val[order]
    last = np.ones(ts.size, bool)
    if ts.size > 1:
        last[:-1] = ts[1:] != ts[:-1]
    duplicates = int(ts.size - np.count_nonzero(last))
    return Cleaned(ts[last], val[last], out_of_order, duplicates, dropped)


# -- state timeline ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timeline:
    """Contiguous intervals [start, end) of one category each (indices into CATEGORIES), merged, in time order.
    Time outside every interval (before the first sample) is unknown."""

    start: np.ndarray
    end: np.ndarray
    cat: np.ndarray
    unmapped_samples: int = 0

    def overlap(self, a: int, b: int) -> tuple[np.ndarray, slice]:
        """Overlap in microseconds of each interval with [a, b), for the intervals that can overlap it."""
        i0 = int(np.searchsorted(self.end, a, side="right"))
        i1 = int(np.searchsorted(self.start, b, side="left"))
        s = slice(i0, max(i0, i1))
        return np.clip(np.minimum(self.end[s], b) - np.maximum(self.start[s], a), 0, None), s


def build_timeline(states: Any, categories: Mapping[int, str], horizon_us: int, max_gap_s: float | None) -> tuple[Timeline, Cleaned]:
    """State samples -> merged category intervals up to horizon_us (the last sample holds until then, or for at
    most max_gap_s)."""
    c = clean_series(states, "states")
    ts, code = c.ts, c.value
    if ts.size == 0:
        e = np.empty(0, np.int64)
        return Timeline(e, e, np.empty(0, np.int8)), c
    lut = {int(k): _CAT[v] for k, v in categories.items()}
    cat = np.full(ts.size, _UNKNOWN, np.int8)
    integral = np.isfinite(code) & (np.floor(code) == code)
    unmapped = int(np.count_nonzero(np.isfinite(code) & ~integral))
    for k in np.unique(code[integral]):
        m = code == k
        if int(k) in lut:
            cat[m] = lut[int(k)]
        else:
            unmapped += int(np.count_nonzero(m))
    nxt = np.append(ts[1:], max(int(horizon_us), int(ts[-1])))
    hold = nxt if max_gap_s is None else np.minimum(nxt, ts + int(round(max_gap_s * US)))
    # interleave (sample, hold end, KNOWN category) and (hold end, next sample, UNKNOWN)
    start = np.column_stack([ts, hold]).ravel()
    end = np.column_stack([hold, nxt]).ravel()
    cats = np.column_stack([cat, np.full(ts.size, _UNKNOWN, np.int8)]).ravel()
    keep = end > start
    start, end, cats = start[keep], end[keep], cats[keep]
    if start.size:
        first = np.ones(start.size, bool)
        first[1:] = cats[1:] != cats[:-1]
        idx = np.flatnonzero(first)
        ends = np.append(start[idx[1:]], end[-1])
        start, end, cats = start[idx], ends, cats[idx]
    return Timeline(start.astype(np.int64), end.astype(np.int64), cats, unmapped), c


def _buckets(tl: Timeline, minor_stop_max_s: float) -> np.ndarray:
    b = np.array([_B_RUN, _B_IDLE, _B_BREAKDOWN, _B_SETUP, _B_PLANNED, _B_UNKNOWN], np.int8)[tl.cat]
    short = (tl.cat == _FAULT) & ((tl.end - tl.start) < minor_stop_max_s * US)
    b[short] = _B_SHORT_FAULT
    return b


def _startup_windows(tl: Timeline, window_s: float) -> np.ndarray:
    """Start times of the running intervals that follow a known stop (any known category but running)."""
    if tl.cat.size < 2 or window_s <= 0:
        return np.empty(0, np.int64)
    after_stop = (tl.cat[1:] == _RUN) & (tl.cat[:-1] != _RUN) & (tl.cat[:-1] != _UNKNOWN) & (tl.start[1:] == tl.end[:-1])
    return tl.start[1:][after_stop]


# -- counters ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Increments:
    """Counter increments booked at the timestamps of the samples that show them."""

    ts: np.ndarray
    inc: np.ndarray
    reset_ts: np.ndarray  # timestamps of the samples where a drop was read as a reset or rollover
    first_ts: int | None  # first usable sample: the counter baseline
    issues: dict[str, int]

    @property
    def cum(self) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(self.inc)])

    def between(self, a: int, b: int, cum: np.ndarray | None = None) -> float:
        cum = self.cum if cum is None else cum
        i0, i1 = np.searchsorted(self.ts, [a, b], side="left")
        return float(cum[i1] - cum[i0])


def counter_increments(series: Any, name: str = "counter", modulus: float | None = None) -> Increments:
    """Monotonic counter samples -> non-negative increments. A drop is a reset to 0 (the new value is what was
    counted since) or, with `modulus`, a wrap (modulus - previous + new)."""
    c = clean_series(series, name, counter=True)
    if c.ts.size == 0:
        e = np.empty(0, np.int64)
        return Increments(e, np.empty(0), e, None, c.issues(name))
    d = np.diff(c.value)
    drop = d < 0
    inc = d.copy()
    if modulus is None:
        inc[drop] = c.value[1:][drop]
    else:
        inc[drop] = (modulus - c.value[:-1][drop]) + c.value[1:][drop]
        inc = np.maximum(inc, 0.0)  # a value above the modulus is garbage: count nothing rather than a negative
    issues = c.issues(name)
    if drop.any():
        issues[f"{name}.resets"] = int(np.count_nonzero(drop))
    return Increments(c.ts[1:], inc, c.ts[1:][drop], int(c.ts[0]), issues)


def _merge_increments(parts: Sequence[Increments]) -> Increments:
    if len(parts) == 1:
        return parts[0]
    ts = np.concatenate([p.ts for p in parts])
    order = np.argsort(ts, kind="stable")
    firsts = [p.first_ts for p in parts]
    issues: dict[str, int] = {}
    for p in parts:
        for k, v in p.issues.items():
            issues[k] = issues.get(k, 0) + v
    return Increments(ts[order], np.concatenate([p.inc for p in parts])[order],
                      np.sort(np.concatenate([p.reset_ts for p in parts])),
                      None if any(f is None for f in firsts) else max(firsts), issues)


# -- OEE ------------------------------------------------------------------------------------------------------------
def _as_period(p: Any) -> Period:
    if isinstance(p, Period):
        return p
    if isinstance(p, (tuple, list)) and len(p) in (2, 3):
        if len(p) == 3:
            return Period(str(p[0]), int(p[1]), int(p[2]))
        return Period("", int(p[0]), int(p[1]))
    raise InvalidInput("a period is a Period or (start_us, end_us) or (label, start_us, end_us)")


def oee_by(periods: Sequence[Period], states: Any, good: Any, bad: Any, config: OeeConfig) -> list[OeeResult]:
    """OEE for each period (shifts, days, hours from ShiftCalendar.periods, or any). `bad` may be one history or a
    list of histories whose increments are added (a line's rejects from every machine)."""
    if not isinstance(config, OeeConfig):
        raise InvalidInput("config must be an OeeConfig")
    periods = [_as_period(p) for p in periods]
    if not periods:
        return []
    horizon = max(p.end_us for p in periods)
    tl, sc = build_timeline(states, config.categories, horizon, config.max_gap_s)
    buckets = _buckets(tl, config.minor_stop_max_s)
    windows = _startup_windows(tl, config.startup_window_s)
    g = counter_increments(good, "good", config.counter_modulus)
    bad_list = list(bad) if isinstance(bad, list) else [bad]
    b = _merge_increments([counter_increments(s, "bad" if len(bad_list) == 1 else f"bad[{i}]", config.counter_modulus)
                           for i, s in enumerate(bad_list)])
    # bad increments inside a startup window: all windows have the same length, so the latest one started is the
    # only one that can still be open
    if windows.size and b.ts.size:
        j = np.searchsorted(windows, b.ts, side="right") - 1
        in_start = (j >= 0) & (b.ts < windows[np.maximum(j, 0)] + int(round(config.startup_window_s * US)))
    else:
        in_start = np.zeros(b.ts.size, bool)
    b_start = Increments(b.ts, np.where(in_start, b.inc, 0.0), b.reset_ts, b.first_ts, {})
    issues = {**sc.issues("states"), **g.issues, **b.issues}
    if tl.unmapped_samples:
        issues["states.unmapped_codes"] = tl.unmapped_samples
    gcum, bcum, scum = g.cum, b.cum, b_start.cum
    return [_one(p, tl, buckets, g, b, gcum, bcum, scum, config, issues) for p in periods]


def compute_oee(states: Any, good: Any, bad: Any, period: Any, config: OeeConfig) -> OeeResult:
    """OEE of one period. See oee_by."""
    return oee_by([_as_period(period)], states, good, bad, config)[0]


def _one(p: Period, tl: Timeline, buckets: np.ndarray, g: Increments, b: Increments, gcum, bcum, scum,
         cfg: OeeConfig, issues: dict[str, int]) -> OeeResult:
    a, z = p.start_us, p.end_us
    ov, s = tl.overlap(a, z)
    t = np.bincount(buckets[s], weights=ov.astype(np.float64), minlength=7) / US
    period_s = (z - a) / US
    known = float(t[:_B_UNKNOWN].sum())
    unknown = period_s - known  # includes time before the first state sample
    planned_stop = float(t[_B_PLANNED])
    ppt = float(t[_B_RUN] + t[_B_IDLE] + t[_B_SHORT_FAULT] + t[_B_BREAKDOWN] + t[_B_SETUP])
    breakdowns, setup = float(t[_B_BREAKDOWN]), float(t[_B_SETUP])
    minor = float(t[_B_IDLE] + t[_B_SHORT_FAULT])
    running = float(t[_B_RUN])
    run_time = running + minor
    good_n, bad_n = g.between(a, z, gcum), b.between(a, z, bcum)
    startup_bad = b.between(a, z, scum)
    total = good_n + bad_n
    cyc = cfg.cycle_s
    net_run = total * cyc
    fpt = good_n * cyc
    losses = SixLosses(breakdowns_s=breakdowns, setup_s=setup, minor_stops_s=minor,
                       reduced_speed_s=running - net_run, defects_s=(bad_n - startup_bad) * cyc,
                       startup_rejects_s=startup_bad * cyc)
    coverage = known / period_s
    flags: list[str] = []
    resets = int(np.count_nonzero((g.reset_ts >= a) & (g.reset_ts < z))
                 + np.count_nonzero((b.reset_ts >= a) & (b.reset_ts < z)))
    period_issues = dict(issues)
    for k in [k for k in period_issues if k.endswith(".resets")]:
        del period_issues[k]
    if resets:
        flags.append("counter_reset")
        period_issues["counter_resets"] = resets
    if unknown > 0:
        flags.append("unknown_time")
    if tl.unmapped_samples:
        flags.append("unmapped_state_codes")
    no_counter = g.first_ts is None or b.first_ts is None or g.first_ts >= z or b.first_ts >= z
    if not no_counter and (g.first_ts > a or b.first_ts > a):
        flags.append("counter_baseline_missing")  # counts between the period start and the first sample are lost
    if ppt == 0 and total > 0:
        flags.append("counts_without_planned_time")
    if losses.reduced_speed_s < -cyc:
        flags.append("output_above_ideal_rate")
    status = STATUS_OK
    if tl.start.size == 0 or coverage == 0 or coverage < cfg.min_coverage:
        status = STATUS_INSUFFICIENT
    elif ppt > 0 and no_counter:
        status = STATUS_INSUFFICIENT
        flags.append("no_counter_data")
    elif ppt == 0:
        status = STATUS_NOT_PLANNED
    av = perf = qual = oee = None
    if status == STATUS_OK:
        av = min(1.0, run_time / ppt)  # run time is part of planned time; float sums can overshoot by an ulp
        if run_time > 0:
            perf = net_run / run_time
            if perf > 1:
                flags.append("performance_above_1")
        elif total > 0:
            flags.append("counts_without_run_time")
        qual = good_n / total if total > 0 else None
        oee = fpt / ppt if (run_time > 0 or total == 0) else None
    return OeeResult(label=p.label, start_us=a, end_us=z, status=status, period_s=period_s,
                     planned_stop_s=planned_stop, unknown_s=unknown, coverage=coverage, planned_production_s=ppt,
                     run_time_s=run_time, running_s=running, net_run_s=net_run, fully_productive_s=fpt,
                     total=total, good=good_n, bad=bad_n, startup_bad=startup_bad, losses=losses, availability=av,
                     performance=perf, quality=qual, oee=oee, flags=tuple(flags), issues=period_issues)


# -- lines and rollups -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MachineData:
    """One machine's histories: state codes, good counter, bad counter."""

    states: Any
    good: Any
    bad: Any


def line_oee_by(periods: Sequence[Period], machines: Sequence[MachineData], config: OeeConfig, *,
                counting_machine: int = -1) -> list[OeeResult]:
    """A line's OEE: the state and good counter of the counting machine (by default the last one in flow order:
    its good count is finished product), the bad counters of every machine added (a reject anywhere is lost line
    output), and the line's ideal rate in `config` (the rated speed of its bottleneck)."""
    if not machines:
        raise InvalidInput("line_oee_by: at least one machine")
    try:
        m = machines[counting_machine]
    except IndexError:
        raise InvalidInput(f"line_oee_by: no machine at index {counting_machine}") from None
    return oee_by(periods, m.states, m.good, [x.bad for x in machines], config)


def combine(results: Sequence[OeeResult], label: str | None = None, min_coverage: float = 0.5) -> OeeResult:
    """Roll results of adjacent or disjoint periods (shifts of a day, days of a week) into one: times, counts and
    losses are added and the ratios recomputed from the sums, never averaged."""
    if not results:
        raise InvalidInput("combine: no results")
    add = lambda name: float(sum(getattr(r, name) for r in results))  # noqa: E731
    losses = SixLosses(**{f.name: float(sum(getattr(r.losses, f.name) for r in results)) for f in fields(SixLosses)})
    period_s, unknown = add("period_s"), add("unknown_s")
    ppt, run_time, net_run, fpt = add("planned_production_s"), add("run_time_s"), add("net_run_s"), add("fully_productive_s")
    total, good = add("total"), add("good")
    coverage = (period_s - unknown) / period_s
    flags = list(dict.fromkeys(f for r in results for f in r.flags))
    if any(r.status == STATUS_INSUFFICIENT for r in results):
        flags.append("includes_insufficient_periods")  # their times and counts are in the sums
    issues: dict[str, int] = {}
    for r in results:
        for k, v in r.issues.items():
            issues[k] = max(issues.get(k, 0), v) if k != "counter_resets" else issues.get(k, 0) + v
    ok = [r for r in results if r.status == STATUS_OK]
    if coverage < min_coverage or (not ok and any(r.status == STATUS_INSUFFICIENT for r in results)):
        status = STATUS_INSUFFICIENT
    elif ppt == 0:
        status = STATUS_NOT_PLANNED
    else:
        status = STATUS_OK
    av = perf = qual = oee = None
    if status == STATUS_OK:
        av = min(1.0, run_time / ppt)  # run time is part of planned time; float sums can overshoot by an ulp
        perf = net_run / run_time if run_time > 0 else None
        qual = good / total if total > 0 else None
        oee = fpt / ppt if (run_time > 0 or total == 0) else None
    base = results[0]
    return replace(base, label=base.label if label is None else label, start_us=min(r.start_us for r in results),
                   end_us=max(r.end_us for r in results), status=status, period_s=period_s,
                   planned_stop_s=add("planned_stop_s"), unknown_s=unknown, coverage=coverage,
                   planned_production_s=ppt, run_time_s=run_time, running_s=add("running_s"), net_run_s=net_run,
                   fully_productive_s=fpt, total=total, good=good, bad=add("bad"), startup_bad=add("startup_bad"),
                   losses=losses, availability=av, performance=perf, quality=qual, oee=oee, flags=tuple(flags),
                   issues=issues)
