"""Phase I: control limits from a baseline period, with out-of-control points removed and the limits recomputed.

Each fit repeats: estimate center and sigma from the points kept, compute the limits, drop the points beyond them;
until nothing more is dropped or `max_iter` passes have removed points. A pass that would leave too little data
to estimate sigma is not applied. Removed points are reported by their position in the input.

    individuals   center = mean, sigma = MR-bar / d2(2), limits center +/- L sigma; MR chart UCL = D4(2) MR-bar.
                  A moving range needs two adjacent points both kept: missing (NaN) or removed points break it.
    X-bar / R     center = grand mean, sigma = R-bar / d2(n), limits center +/- L sigma / sqrt(n) (= A2 R-bar
                  for L = 3); R chart D3 R-bar .. D4 R-bar. Subgroups containing NaN are left out.
    X-bar / S     sigma = S-bar / c4(n), limits center +/- L sigma / sqrt(n) (= A3 S-bar); S chart B3 .. B4 S-bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from plantguard.analytics.spc.constants import D2_MR, D4_MR, factors
from plantguard.errors import InvalidInput


@dataclass(frozen=True)
class Limits:
    """Frozen control limits of one chart. `sigma` is the process sigma of individual values; the plotted
    statistic's sigma is sigma / sqrt(subgroup_size). `spread_*` describe the dispersion chart (MR, R or S)."""
    chart: str
    center: float
    ucl: float
    lcl: float
    sigma: float
    sigma_method: str
    n_used: int
    removed: tuple[int, ...] = ()
    iterations: int = 0
    subgroup_size: int = 1
    L: float = 3.0
    spread_center: float = math.nan
    spread_ucl: float = math.nan
    spread_lcl: float = math.nan

    @property
    def no_variation(self) -> bool:
        return self.sigma == 0.0

    @property
    def sigma_stat(self) -> float:
        """Sigma of the plotted statistic (individual value or subgroup mean)."""
        return self.sigma / math.sqrt(self.subgroup_size)

    @staticmethod
    def given(center: float, sigma: float, *, L: float = 3.0, subgroup_size: int = 1) -> Limits:
        """Limits from a known (target) center and sigma, e.g. from an earlier study."""
        center, sigma = float(center), float(sigma)
        if not (math.isfinite(center) and math.isfinite(sigma)) or sigma < 0:
            raise InvalidInput(f"center and sigma must be finite and sigma >= 0, got {center!r}, {sigma!r}")
        if subgroup_size == 1:
            spread_c, spread_u, spread_l = sigma * D2_MR, sigma * D2_MR * D4_MR, 0.0
            chart = "individuals"
        else:
            f = factors(subgroup_size)
            spread_c, spread_u, spread_l = sigma * f.d2, sigma * f.d2 * f.D4, sigma * f.d2 * f.D3
            chart = "xbar_r"
        half = L * sigma / math.sqrt(subgroup_size)
        return Limits(chart, center, center + half, center - half, sigma, "given", 0, (), 0, subgroup_size, L,
                      spread_c, spread_u, spread_l)


def _positive(L: float, max_iter: int) -> None:
    if not (L > 0 and math.isfinite(L)):
        raise InvalidInput(f"L must be a positive number, got {L!r}")
    if not (isinstance(max_iter, int) and max_iter >= 0):
        raise InvalidInput(f"max_iter must be an integer >= 0, got {max_iter!r}")


def phase1_rows(X: np.ndarray, gap: np.ndarray, max_iter: np.ndarray, L: float = 3.0):
    """Phase I of the individuals chart for K baselines at once (the streaming bank and the reference charts
    share it, so both give bit-identical limits).

    X: (K, W) valid readings in arrival order; gap[:, j]: a missing reading came between X[:, j-1] and X[:, j].
    Returns center, MR-bar, points kept, passes applied, kept mask; MR-bar is NaN where no moving range exists."""
    K, W = X.shape
    pair_ok = np.zeros((K, max(W - 1, 0)), dtype=bool) if W < 2 else ~gap[:, 1:]

    def one_pass(keep):
        n = keep.sum(axis=1)
        xk = np.where(keep, X, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            center = xk.sum(axis=1) / n
            pair = keep[:, 1:] & keep[:, :-1] & pair_ok
            m = pair.sum(axis=1)
            mrbar = np.where(pair, np.abs(np.diff(xk, axis=1)), 0.0).sum(axis=1) / m
        return center, np.where(m > 0, mrbar, np.nan), n

    keep = np.ones((K, W), dtype=bool)
    center, mrbar, n = one_pass(keep)
    it = np.zeros(K, dtype=np.int64)
    active = np.isfinite(mrbar)
    while active.any():
        sigma = mrbar / D2_MR
        out = keep & (np.abs(X - center[:, None]) > (L * sigma)[:, None])
        act = active & (it < max_iter) & (sigma > 0) & out.any(axis=1)
        if not act.any():
            break
        trial = keep & ~(out & act[:, None])
        c2, mr2, n2 = one_pass(trial)
        ok = act & np.isfinite(mr2)
        keep = np.where(ok[:, None], trial, keep)
        center, mrbar, n = np.where(ok, c2, center), np.where(ok, mr2, mrbar), np.where(ok, n2, n)
        it += ok
        active = ok
    return center, mrbar, n, it, keep


def fit_individuals(values, *, L: float = 3.0, max_iter: int = 10) -> Limits:
    """Phase I limits for an individuals / moving-range chart. NaN (or None) entries are missing readings."""
    _positive(L, max_iter)
    x = np.array([math.nan if v is None else v for v in values], dtype=float)
    finite = np.isfinite(x)
    pos = np.flatnonzero(finite)
    gap = np.zeros(len(pos), dtype=bool)
    gap[1:] = np.diff(pos) > 1
    center, mrbar, n, it, keep = phase1_rows(x[pos][None, :], gap[None, :], np.array([max_iter]), L)
    if not np.isfinite(mrbar[0]):
        raise InvalidInput(f"insufficient data: {len(pos)} valid readings and no two adjacent ones "
                           "(need a moving range)")
    return individuals_limits(float(center[0]), float(mrbar[0]), int(n[0]), int(it[0]),
                              tuple(int(i) for i in pos[~keep[0]]), L)


def individuals_limits(center: float, mrbar: float, n_used: int, iterations: int, removed: tuple[int, ...],
                       L: float = 3.0) -> Limits:
    sigma = mrbar / D2_MR
    return Limits("individuals", center, center + L * sigma, center - L * sigma, sigma, "mr_bar/d2", n_used,
                  removed, iterations, 1, L, mrbar, D4_MR * mrbar, 0.0)


def _subgroups(subgroups) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(subgroups, dtype=float)
    if a.ndim != 2:
        raise InvalidInput(f"subgroups must be a 2-D array (subgroups x size), got shape {a.shape}")
    return a, np.isfinite(a).all(axis=1)


def _fit_subgroups(subgroups, spread: str, L: float, max_iter: int) -> Limits:
    _positive(L, max_iter)
    a, complete = _subgroups(subgroups)
    n = a.shape[1]
    f = factors(n)
    xbar = a.mean(axis=1)
    if spread == "r":
        disp = a.max(axis=1) - a.min(axis=1)
        to_sigma, lo_f, hi_f, method = f.d2, f.D3, f.D4, "r_bar/d2"
    else:
        disp = a.std(axis=1, ddof=1)
        to_sigma, lo_f, hi_f, method = f.c4, f.B3, f.B4, "s_bar/c4"
    keep = complete.copy()
    if keep.sum() < 1:
        raise InvalidInput("insufficient data: no complete subgroup")
    it = 0
    while True:
        center, dbar = float(xbar[keep].mean()), float(disp[keep].mean())
        sigma = dbar / to_sigma
        half = L * sigma / math.sqrt(n)
        if it >= max_iter or sigma == 0.0:
            break
        out = keep & ((np.abs(xbar - center) > half) | (disp > hi_f * dbar) | (disp < lo_f * dbar))
        if not out.any() or (keep & ~out).sum() < 1:
            break
        keep &= ~out
        it += 1
    removed = tuple(int(i) for i in np.flatnonzero(complete & ~keep))
    return Limits("xbar_" + spread, center, center + half, center - half, sigma, method, int(keep.sum()), removed,
                  it, n, L, dbar, hi_f * dbar, lo_f * dbar)


def fit_xbar_r(subgroups, *, L: float = 3.0, max_iter: int = 10) -> Limits:
    """Phase I limits for X-bar and R charts from a (k, n) array of subgroups, 2 <= n <= 25."""
    return _fit_subgroups(subgroups, "r", L, max_iter)


def fit_xbar_s(subgroups, *, L: float = 3.0, max_iter: int = 10) -> Limits:
    """Phase I limits for X-bar and S charts from a (k, n) array of subgroups, 2 <= n <= 25."""
    return _fit_subgroups(subgroups, "s", L, max_iter)
