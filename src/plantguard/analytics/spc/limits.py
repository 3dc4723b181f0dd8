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


def _individuals_pass(x: np.ndarray, keep: np.ndarray) -> tuple[float, float, int, int]:
    """center, MR-bar, points kept, moving ranges used."""
    n = int(keep.sum())
    center = float(np.where(keep, x, 0.0).sum() / n) if n else math.nan
    pair = keep[1:] & keep[:-1]
    m = int(pair.sum())
    mrbar = float(np.where(pair, np.abs(np.diff(np.where(keep, x, 0.0))), 0.0).sum() / m) if m else math.nan
    return center, mrbar, n, m


def fit_individuals(values, *, L: float = 3.0, max_iter: int = 10) -> Limits:
    """Phase I limits for an individuals / moving-range chart. NaN (or None) entries are missing readings."""
    _positive(L, max_iter)
    x = np.array([math.nan if v is None else v for v in values], dtype=float)
    finite = np.isfinite(x)
    keep = finite.copy()
    x = np.where(keep, x, 0.0)
    center, mrbar, n, m = _individuals_pass(x, keep)
    if m == 0:
        raise InvalidInput(f"insufficient data: {n} valid readings and no two adjacent ones (need a moving range)")
    it = 0
    while it < max_iter:
        sigma = mrbar / D2_MR
        out = keep & (np.abs(x - center) > L * sigma)
        if sigma == 0.0 or not out.any():
            break
        trial = keep & ~out
        c2, mr2, n2, m2 = _individuals_pass(x, trial)
        if m2 == 0:
            break
        keep, center, mrbar, n, m = trial, c2, mr2, n2, m2
        it += 1
    sigma = mrbar / D2_MR
    removed = tuple(int(i) for i in np.flatnonzero(finite & ~keep))
    return Limits("individuals", center, center + L * sigma, center - L * sigma, sigma, "mr_bar/d2", n, removed,
                  it, 1, L, mrbar, D4_MR * mrbar, 0.0)


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
