"""Streaming control charts, one reading at a time, O(1) time and memory per reading once limits are set.

    chart = IndividualsMR(baseline=25)           # phase I from the first 25 valid readings, then phase II
    r = chart.update(12.3, ts=1_700_000_000_000_000)
    r.state        # "insufficient_data" | "in_control" | "out_of_control" | "no_variation" | "skipped"
    r.value        # the plotted statistic (None when nothing was plotted)
    r.violations   # tuple of rules.Violation

Limits come either from `limits=` (e.g. `fit_individuals(history)` or `Limits.given(center, sigma)`) or from
the first `baseline` valid readings (subgroups for X-bar charts), which are held only until the limits exist.

Bad input, the same for every chart:
- None / NaN: skipped (state "skipped", `skip_reason="missing"`), counted in `n_missing`, never plotted; the
  moving range and the difference-based rules (3, 4) restart after it.
- ts, when given, must increase: a reading with ts <= the last accepted ts is ignored (state "skipped",
  `skip_reason="out_of_order"`) and counted in `n_out_of_order`. Readings without ts are never ordered.
- A baseline with zero spread gives limits with sigma = 0: every later point has state "no_variation", the
  statistic is still plotted and no rule is evaluated (distances in sigmas do not exist). Set limits explicitly.
- Too little data is the state "insufficient_data", never an exception, in streaming use; the batch `fit_*`
  functions raise InvalidInput instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plantguard.analytics.spc.limits import Limits, fit_xbar_r, fit_xbar_s, individuals_limits, phase1_rows
from plantguard.analytics.spc.rules import NelsonRules, RuleSet, Violation
from plantguard.errors import InvalidInput

INSUFFICIENT_DATA = "insufficient_data"
IN_CONTROL = "in_control"
OUT_OF_CONTROL = "out_of_control"
NO_VARIATION = "no_variation"
SKIPPED = "skipped"
STATES = (INSUFFICIENT_DATA, IN_CONTROL, OUT_OF_CONTROL, NO_VARIATION, SKIPPED)


@dataclass(frozen=True)
class SpcResult:
    state: str
    value: float | None = None
    index: int | None = None
    ts: int | float | None = None
    violations: tuple[Violation, ...] = ()
    detail: dict[str, float] = field(default_factory=dict)
    skip_reason: str | None = None


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float | np.floating) and math.isnan(x))


def _limit_event(chart: str, index: int, ts, indices=None, stamps=None) -> Violation:
    return Violation(1, "beyond_limits", chart, index, ts, indices or (index,), stamps or (ts,))


class _Streaming:
    """Reading admission shared by every chart: ordering, missing values, counters."""

    def _init_stream(self) -> None:
        self._last_ts = None
        self.n_missing = 0
        self.n_out_of_order = 0
        self._n_points = 0          # accepted valid readings (point index of the next one)

    def _admit(self, x, ts) -> SpcResult | None:
        if ts is not None:
            if self._last_ts is not None and ts <= self._last_ts:
                self.n_out_of_order += 1
                return SpcResult(SKIPPED, ts=ts, skip_reason="out_of_order")
            self._last_ts = ts
        if _missing(x):
            self.n_missing += 1
            self._on_gap()
            return SpcResult(SKIPPED, ts=ts, skip_reason="missing")
        return None

    def _on_gap(self) -> None:
        pass


class _IndividualBaseline(_Streaming):
    """Holds the first `baseline` valid readings (with gaps as NaN) until phase I can run."""

    def _take(self, x, ts) -> tuple[SpcResult | None, float, int]:
        """Admits one reading of a chart on individual values: (result to return at once, or None; value; index).
        A skipped reading, or one collected for the baseline, ends the update with that result."""
        skipped = self._admit(x, ts)
        if skipped is not None:
            return skipped, math.nan, -1
        x = float(x)
        index = self._n_points
        self._n_points += 1
        if self._limits is None:
            self._collect(x)
            return SpcResult(INSUFFICIENT_DATA, None, index, ts), x, index
        return None, x, index

    def _init_baseline(self, limits: Limits | None, baseline: int, L: float, max_iter: int) -> None:
        if limits is None and (not isinstance(baseline, int) or baseline < 2):
            raise InvalidInput(f"baseline must be an integer >= 2 readings, got {baseline!r}")
        self._limits = limits
        self._phase1 = (L, max_iter)
        self._buf: list[float] | None = None if limits is not None else []
        self._buf_gap: list[bool] | None = None if limits is not None else []
        self._gap_pending = False
        self._init_stream()

    @property
    def limits(self) -> Limits | None:
        return self._limits

    def _collect(self, x: float) -> bool:
        """True once the baseline is complete and limits were fitted. A baseline in which no two readings are
        adjacent (every one followed by a gap) gives no moving range: it is dropped and collection restarts."""
        self._buf.append(float(x))
        self._buf_gap.append(self._gap_pending and len(self._buf) > 1)
        self._gap_pending = False
        if len(self._buf) < self.baseline:
            return False
        L, max_iter = self._phase1
        center, mrbar, n, it, keep = phase1_rows(np.array([self._buf]), np.array([self._buf_gap]),
                                                 np.array([max_iter]), L)
        first = self._n_points - len(self._buf)
        self._buf, self._buf_gap = [], []
        if not np.isfinite(mrbar[0]):
            return False
        self._limits = individuals_limits(float(center[0]), float(mrbar[0]), int(n[0]), int(it[0]),
                                          tuple(first + int(i) for i in np.flatnonzero(~keep[0])), L)
        self._buf = self._buf_gap = None
        return True

    def _buffer_gap(self) -> None:
        self._gap_pending = True


class IndividualsMR(_IndividualBaseline):
    """Individuals (X) chart with its moving-range (MR) chart. Nelson rules run on the X chart; the MR chart
    signals when a moving range exceeds D4 * MR-bar."""

    chart = "individuals"

    def __init__(self, baseline: int = 25, limits: Limits | None = None, rules: str | Iterable[int] | RuleSet =
                 "nelson", L: float = 3.0, max_iter: int = 10):
        self.baseline = baseline
        self.rules = rules
        self.L = L
        self.max_iter = max_iter
        self._rules = NelsonRules(rules, "individuals")
        self._init_baseline(limits, baseline, L, max_iter)
        self._prev: float | None = None
        self._prev_ts = None

    def _on_gap(self) -> None:
        self._prev = None
        self._rules.gap()
        self._buffer_gap()

    def update(self, x: float | None, ts: int | float | None = None) -> SpcResult:
        skipped = self._admit(x, ts)
        if skipped is not None:
            return skipped
        x = float(x)
        index = self._n_points
        self._n_points += 1
        prev, prev_ts = self._prev, self._prev_ts
        self._prev, self._prev_ts = x, ts
        if self._limits is None:
            self._collect(x)
            return SpcResult(INSUFFICIENT_DATA, x, index, ts)
        lim = self._limits
        mr = abs(x - prev) if prev is not None else math.nan
        detail = {"mr": mr}
        if lim.sigma == 0.0:
            return SpcResult(NO_VARIATION, x, index, ts, (), detail)
        z = (x - lim.center) / lim.sigma
        found = self._rules.step(z, index, ts)
        if mr > lim.spread_ucl:
            found.append(_limit_event("moving_range", index, ts, (index - 1, index), (prev_ts, ts)))
        return SpcResult(OUT_OF_CONTROL if found else IN_CONTROL, x, index, ts, tuple(found), detail)


class _Xbar(_Streaming):
    """X-bar chart with an R or S chart, fed reading by reading; a point is plotted per complete subgroup."""

    spread = "r"

    def __init__(self, subgroup_size: int = 5, baseline: int = 20, limits: Limits | None = None,
                 rules: str | Iterable[int] | RuleSet = "nelson", L: float = 3.0, max_iter: int = 10):
        self.subgroup_size = subgroup_size
        self.baseline = baseline
        self.rules = rules
        self.L = L
        self.max_iter = max_iter
        if limits is None and (not isinstance(baseline, int) or baseline < 1):
            raise InvalidInput(f"baseline must be an integer >= 1 subgroups, got {baseline!r}")
        if limits is not None and limits.subgroup_size != subgroup_size:
            raise InvalidInput(f"limits are for subgroups of {limits.subgroup_size}, chart uses {subgroup_size}")
        self._fit = fit_xbar_r if self.spread == "r" else fit_xbar_s
        self._fit([[0.0] * subgroup_size], max_iter=0)      # validates the subgroup size early
        self._limits = limits
        self._rules = NelsonRules(rules, "xbar")
        self._pending: list[float] = []
        self._pending_ts: list = []
        self._base: list[list[float]] | None = None if limits is not None else []
        self._init_stream()
        self._state = INSUFFICIENT_DATA if limits is None else IN_CONTROL

    @property
    def limits(self) -> Limits | None:
        return self._limits

    def update(self, x: float | None, ts: int | float | None = None) -> SpcResult:
        skipped = self._admit(x, ts)
        if skipped is not None:
            return skipped
        self._pending.append(float(x))
        self._pending_ts.append(ts)
        if len(self._pending) < self.subgroup_size:
            return SpcResult(self._state, ts=ts)
        group, self._pending, self._pending_ts = self._pending, [], []
        return self._plot(group, ts)

    def update_subgroup(self, values: Iterable[float], ts: int | float | None = None) -> SpcResult:
        """Plot one complete subgroup at once (readings already pending are kept for the next subgroup)."""
        group = [float(v) for v in values]
        if len(group) != self.subgroup_size:
            raise InvalidInput(f"subgroup has {len(group)} values, chart uses {self.subgroup_size}")
        if ts is not None:
            if self._last_ts is not None and ts <= self._last_ts:
                self.n_out_of_order += 1
                return SpcResult(SKIPPED, ts=ts, skip_reason="out_of_order")
            self._last_ts = ts
        if any(math.isnan(v) for v in group):
            self.n_missing += 1
            return SpcResult(SKIPPED, ts=ts, skip_reason="missing")
        return self._plot(group, ts)

    def _plot(self, group: list[float], ts) -> SpcResult:
        a = np.asarray(group)
        mean = float(a.mean())
        disp = float(a.max() - a.min()) if self.spread == "r" else float(a.std(ddof=1))
        index = self._n_points
        self._n_points += 1
        detail = {self.spread: disp}
        if self._limits is None:
            self._base.append(group)
            if len(self._base) >= self.baseline:
                self._limits = self._fit(self._base, L=self.L, max_iter=self.max_iter)
                self._base = None
                self._state = IN_CONTROL
            return SpcResult(INSUFFICIENT_DATA, mean, index, ts, (), detail)
        lim = self._limits
        if lim.sigma == 0.0:
            self._state = NO_VARIATION
            return SpcResult(NO_VARIATION, mean, index, ts, (), detail)
        found = self._rules.step((mean - lim.center) / lim.sigma_stat, index, ts)
        if disp > lim.spread_ucl or disp < lim.spread_lcl:
            found.append(_limit_event("range" if self.spread == "r" else "s", index, ts))
        self._state = OUT_OF_CONTROL if found else IN_CONTROL
        return SpcResult(self._state, mean, index, ts, tuple(found), detail)


class XbarR(_Xbar):
    """X-bar and R charts (sigma from R-bar / d2). Suited to small subgroups (n <= 10)."""
    spread = "r"


class XbarS(_Xbar):
    """X-bar and S charts (sigma from S-bar / c4). Preferred for larger subgroups (n > 10)."""
    spread = "s"


class EWMA(_IndividualBaseline):
    """Exponentially weighted moving average chart: z_t = lam x_t + (1 - lam) z_{t-1}, z_0 = center.

    Limits center +/- L sigma sqrt(lam / (2 - lam)) (asymptotic, as in the NIST e-Handbook 6.3.2.4), or with
    `exact_limits` the time-varying factor sqrt(lam / (2 - lam) (1 - (1 - lam)^(2t))) (Montgomery 9.2).
    center and sigma are given, or estimated like an individuals chart from the first `baseline` readings."""

    chart = "ewma"

    def __init__(self, lam: float = 0.2, L: float = 3.0, center: float | None = None, sigma: float | None = None,
                 baseline: int = 25, exact_limits: bool = False, max_iter: int = 10):
        if not 0 < lam <= 1:
            raise InvalidInput(f"lam must be in (0, 1], got {lam!r}")
        self.lam = lam
        self.L = L
        self.center = center
        self.sigma = sigma
        self.baseline = baseline
        self.exact_limits = exact_limits
        self.max_iter = max_iter
        if (center is None) != (sigma is None):
            raise InvalidInput("give both center and sigma, or neither (then they come from the baseline)")
        lim = Limits.given(center, sigma, L=L) if center is not None else None
        self._init_baseline(lim, baseline, 3.0, max_iter)
        self._z = lim.center if lim else None
        self._t = 0

    def _collect(self, x: float) -> bool:
        # phase I uses 3-sigma individuals limits (set in _init_baseline): L belongs to the EWMA limits
        done = super()._collect(x)
        if done:
            self._z = self._limits.center
        return done

    def _on_gap(self) -> None:
        self._buffer_gap()

    def half_width(self, t: int | None = None) -> float:
        sig = self._limits.sigma
        f = self.lam / (2.0 - self.lam)
        if self.exact_limits and t is not None:
            f *= 1.0 - (1.0 - self.lam) ** (2 * t)
        return self.L * sig * math.sqrt(f)

    def update(self, x: float | None, ts: int | float | None = None) -> SpcResult:
        early, x, index = self._take(x, ts)
        if early is not None:
            return early
        self._z = self.lam * x + (1.0 - self.lam) * self._z
        self._t += 1
        z = self._z
        c = self._limits.center
        half = self.half_width(self._t)
        detail = {"ucl": c + half, "lcl": c - half}
        if self._limits.sigma == 0.0:
            return SpcResult(NO_VARIATION, z, index, ts, (), detail)
        found = (_limit_event("ewma", index, ts),) if abs(z - c) > half else ()
        return SpcResult(OUT_OF_CONTROL if found else IN_CONTROL, z, index, ts, found, detail)


class CUSUM(_IndividualBaseline):
    """Tabular two-sided CUSUM in sigma units (Montgomery 9.1; NIST e-Handbook 6.3.2.3.1):

        C+_t = max(0, C+_{t-1} + (x_t - center) / sigma - k),  C-_t = max(0, C-_{t-1} - (x_t - center) / sigma - k)

    signalling when a sum exceeds h. k = 0.5, h = 5 detect a one-sigma shift (in-control ARL about 465).
    `headstart` (fast initial response, Lucas and Crosier 1982) starts both sums there, typically h / 2; with
    `reset_on_signal` a sum that signalled restarts at the headstart. value = C+, detail has both sums."""

    chart = "cusum"

    def __init__(self, k: float = 0.5, h: float = 5.0, headstart: float = 0.0, center: float | None = None,
                 sigma: float | None = None, baseline: int = 25, reset_on_signal: bool = False,
                 max_iter: int = 10):
        if not (k >= 0 and h > 0 and 0 <= headstart < h):
            raise InvalidInput(f"need k >= 0, h > 0 and 0 <= headstart < h, got k={k!r}, h={h!r}, "
                               f"headstart={headstart!r}")
        if (center is None) != (sigma is None):
            raise InvalidInput("give both center and sigma, or neither (then they come from the baseline)")
        self.k = k
        self.h = h
        self.headstart = headstart
        self.center = center
        self.sigma = sigma
        self.baseline = baseline
        self.reset_on_signal = reset_on_signal
        self.max_iter = max_iter
        lim = Limits.given(center, sigma) if center is not None else None
        self._init_baseline(lim, baseline, 3.0, max_iter)
        self._hi = self._lo = float(headstart)

    def _on_gap(self) -> None:
        self._buffer_gap()

    def update(self, x: float | None, ts: int | float | None = None) -> SpcResult:
        early, x, index = self._take(x, ts)
        if early is not None:
            return early
        lim = self._limits
        if lim.sigma == 0.0:
            return SpcResult(NO_VARIATION, self._hi, index, ts, (), {"upper": self._hi, "lower": self._lo})
        z = (x - lim.center) / lim.sigma
        self._hi = max(0.0, self._hi + z - self.k)
        self._lo = max(0.0, self._lo - z - self.k)
        detail = {"upper": self._hi, "lower": self._lo}
        found = []
        if self._hi > self.h:
            found.append(_limit_event("cusum_upper", index, ts))
            if self.reset_on_signal:
                self._hi = float(self.headstart)
        if self._lo > self.h:
            found.append(_limit_event("cusum_lower", index, ts))
            if self.reset_on_signal:
                self._lo = float(self.headstart)
        return SpcResult(OUT_OF_CONTROL if found else IN_CONTROL, detail["upper"], index, ts, tuple(found), detail)
