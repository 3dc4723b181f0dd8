"""Process capability: Cp, Cpk (within sigma) and Pp, Ppk (overall sigma) against specification limits,
with confidence intervals (Montgomery, Introduction to Statistical Quality Control, 8.3; NIST/SEMATECH
e-Handbook 6.1.6).

    Cp  = (USL - LSL) / (6 sigma_within)       Cpu = (USL - mean) / (3 sigma)   Cpl = (mean - LSL) / (3 sigma)
    Cpk = min(Cpu, Cpl)                        Pp, Ppu, Ppl, Ppk: the same with sigma_overall
    Cpm = (USL - LSL) / (6 sqrt(sigma_overall^2 + (mean - target)^2))    (two-sided specs with a target)

sigma_within: MR-bar / d2(2) for individual values, R-bar / d2(n) or S-bar / c4(n) for subgroups of n.
sigma_overall: sample standard deviation (ddof = 1) of all values.

Intervals at level 1 - a with n values:
    Cp, Pp     chi-square:  C sqrt(chi2(a/2; n-1) / (n-1)) .. C sqrt(chi2(1-a/2; n-1) / (n-1))
    Cpk, Ppk   Bissell (1990) normal approximation: C -/+ z(1-a/2) sqrt(1 / (9n) + C^2 / (2(n-1)))
The chi-square interval is exact for sigma_overall; for sigma_within it uses n - 1 degrees of freedom as well,
an approximation. With one-sided specs Cp and Pp are None and Cpk/Ppk are the one-sided index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from plantguard.analytics.spc.constants import D2_MR, factors
from plantguard.errors import InvalidInput


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float


@dataclass(frozen=True)
class ProcessCapability:
    n: int
    mean: float
    sigma_within: float
    sigma_overall: float
    sigma_method: str
    lsl: float | None
    usl: float | None
    target: float | None
    cp: float | None
    cpu: float | None
    cpl: float | None
    cpk: float
    pp: float | None
    ppu: float | None
    ppl: float | None
    ppk: float
    cpm: float | None
    cp_ci: Interval | None
    cpk_ci: Interval
    pp_ci: Interval | None
    ppk_ci: Interval


def cp_interval(c: float, n: int, level: float = 0.95) -> Interval:
    """Chi-square interval for Cp or Pp estimated from n values."""
    a = 1.0 - level
    df = n - 1
    return Interval(c * math.sqrt(stats.chi2.ppf(a / 2, df) / df), c * math.sqrt(stats.chi2.ppf(1 - a / 2, df) / df),
                    level)


def cpk_interval(c: float, n: int, level: float = 0.95) -> Interval:
    """Bissell's normal-approximation interval for Cpk or Ppk estimated from n values."""
    z = stats.norm.ppf(1.0 - (1.0 - level) / 2)
    half = z * math.sqrt(1.0 / (9.0 * n) + c * c / (2.0 * (n - 1)))
    return Interval(c - half, c + half, level)


def _indices(mean: float, sigma: float, lsl, usl):
    cpu = (usl - mean) / (3 * sigma) if usl is not None else None
    cpl = (mean - lsl) / (3 * sigma) if lsl is not None else None
    cp = (usl - lsl) / (6 * sigma) if usl is not None and lsl is not None else None
    cpk = min(v for v in (cpu, cpl) if v is not None)
    return cp, cpu, cpl, cpk


def within_sigma(values, subgroup_size: int = 1, method: str = "r") -> tuple[float, str]:
    """Within-subgroup sigma: MR-bar / d2 for individual values (a NaN breaks the moving range), R-bar / d2 or
    S-bar / c4 (method "r" or "s") for a (k, n) array of subgroups (subgroups with NaN are left out)."""
    a = np.asarray(values, dtype=float)
    if subgroup_size == 1 and a.ndim == 1:
        mr = np.abs(np.diff(a))
        mr = mr[np.isfinite(mr)]
        if len(mr) == 0:
            raise InvalidInput("insufficient data: no moving range (need two adjacent valid values)")
        return float(mr.mean()) / D2_MR, "mr_bar/d2"
    if a.ndim != 2 or a.shape[1] != subgroup_size:
        raise InvalidInput(f"subgroups must be a (k, {subgroup_size}) array, got shape {a.shape}")
    a = a[np.isfinite(a).all(axis=1)]
    if len(a) == 0:
        raise InvalidInput("insufficient data: no complete subgroup")
    f = factors(subgroup_size)
    if method == "r":
        return float((a.max(axis=1) - a.min(axis=1)).mean()) / f.d2, "r_bar/d2"
    if method == "s":
        return float(a.std(axis=1, ddof=1).mean()) / f.c4, "s_bar/c4"
    raise InvalidInput(f"method must be 'r' or 's', got {method!r}")


def capability(values, lsl: float | None = None, usl: float | None = None, *, subgroup_size: int = 1,
               method: str = "r", sigma_within: float | None = None, target: float | None = None,
               level: float = 0.95) -> ProcessCapability:
    """Capability indices of `values` (1-D individual values, or a (k, n) array of subgroups) against spec limits.

    Raises InvalidInput when no spec limit is given, USL <= LSL, fewer than 2 valid values, or the spread is 0."""
    if lsl is None and usl is None:
        raise InvalidInput("give at least one specification limit (lsl, usl)")
    if lsl is not None and usl is not None and not usl > lsl:
        raise InvalidInput(f"USL must be greater than LSL, got LSL={lsl!r}, USL={usl!r}")
    if not 0 < level < 1:
        raise InvalidInput(f"level must be in (0, 1), got {level!r}")
    a = np.asarray(values, dtype=float)
    flat = a.ravel()
    flat = flat[np.isfinite(flat)]
    n = len(flat)
    if n < 2:
        raise InvalidInput(f"insufficient data: {n} valid values, need at least 2")
    if sigma_within is None:
        sw, how = within_sigma(a, subgroup_size, method)
    else:
        sw, how = float(sigma_within), "given"
    so = float(flat.std(ddof=1))
    if not (sw > 0 and so > 0):
        raise InvalidInput("zero spread: capability indices are undefined for a constant process")
    mean = float(flat.mean())
    cp, cpu, cpl, cpk = _indices(mean, sw, lsl, usl)
    pp, ppu, ppl, ppk = _indices(mean, so, lsl, usl)
    cpm = None
    if target is not None and lsl is not None and usl is not None:
        cpm = (usl - lsl) / (6 * math.sqrt(so * so + (mean - target) ** 2))
    return ProcessCapability(n, mean, sw, so, how, lsl, usl, target, cp, cpu, cpl, cpk, pp, ppu, ppl, ppk, cpm,
                      cp_interval(cp, n, level) if cp is not None else None, cpk_interval(cpk, n, level),
                      cp_interval(pp, n, level) if pp is not None else None, cpk_interval(ppk, n, level))
