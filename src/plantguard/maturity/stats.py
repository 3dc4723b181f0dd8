"""The statistics of a rollout gate: per KPI a Mann-Whitney U test and a bootstrap confidence interval of the
difference, the check's verdict, and the gate's go / no-go. Pure (numpy, scipy).

    c = judge(pilot, baseline, better="lower", critical=True)   # KpiResult(verdict="passed" | "failed" | "inconclusive")
    g = gate([c1, c2, ...], pass_score=95, marginal_score=75)   # GateResult(verdict="go" | "no_go" | "inconclusive")

A check is `inconclusive` when its data is missing, errored (NaN, infinite) or too small (fewer than `min_samples`
on either side): an inconclusive check pauses the rollout and never passes it. Each check asks one of two
questions: `no_worse` (default; fails when the pilot is significantly worse than the baseline beyond the
tolerance) or `better` (passes only when the pilot is significantly better).

The bootstrap resamples each side independently (percentile interval of mean(pilot) - mean(baseline)). Up to
`EXACT_MAX` values a side is resampled value by value. Beyond, the values are sorted into `BINS` equal-count
strata: each resample draws a Poisson(1) weight per value summed by stratum (the Poisson bootstrap, which large
A/B platforms use for the same reason), with the stratum means standing for their values and the spread inside the
strata added as a normal term of the right variance, so a 10,000-value side costs BINS draws per resample instead
of 10,000 and the interval keeps its width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

EXACT_MAX = 2000
BINS = 256
DEFAULT_RESAMPLES = 2000


@dataclass
class KpiResult:
    kpi: str
    verdict: str                      # passed, failed, inconclusive
    reason: str
    critical: bool = False
    n_pilot: int = 0
    n_baseline: int = 0
    mean_pilot: float | None = None
    mean_baseline: float | None = None
    difference: float | None = None   # mean(pilot) - mean(baseline)
    ci_low: float | None = None
    ci_high: float | None = None
    p_worse: float | None = None      # one-sided Mann-Whitney p that the pilot is worse
    p_better: float | None = None
    u: float | None = None
    better: str = "higher"
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class GateResult:
    verdict: str                      # go, no_go, inconclusive (paused: missing data, or a marginal score)
    score: float | None
    reasons: list[str]
    checks: list[KpiResult]
    marginal: bool = False            # every check conclusive, the score between the thresholds: a person decides

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "score": self.score, "reasons": self.reasons, "marginal": self.marginal,
                "checks": [c.as_dict() for c in self.checks]}


def _clean(x) -> tuple[np.ndarray | None, str | None]:
    if x is None:
        return None, "no data"
    a = np.asarray(x, dtype=np.float64).ravel()
    if len(a) == 0:
        return None, "no data"
    if not np.isfinite(a).all():
        return None, f"{int((~np.isfinite(a)).sum())} errored measurement(s) (NaN or infinite)"
    return a, None


def _resampled_means(a: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    n = len(a)
    if n <= EXACT_MAX:
        return a[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    s = np.sort(a)
    edges = np.linspace(0, n, BINS + 1).astype(np.int64)
    cnt = np.diff(edges).astype(np.float64)
    sums = np.add.reduceat(s, edges[:-1])
    means = sums / cnt
    within = float(((s - np.repeat(means, np.diff(edges))) ** 2).sum())
    w = rng.poisson(cnt, size=(resamples, BINS)).astype(np.float64)
    tot = w.sum(axis=1)
    # inside the strata: the weighted deviations from each stratum's mean have mean 0 and variance within/n^2
    noise = rng.standard_normal(resamples) * np.sqrt(within) / n
    return (w @ means) / tot + noise


def bootstrap_diff(pilot, baseline, *, resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95,
                   seed: int = 0) -> tuple[float, float]:
    """Percentile interval of mean(pilot) - mean(baseline)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(pilot, np.float64), np.asarray(baseline, np.float64)
    d = _resampled_means(a, resamples, rng) - _resampled_means(b, resamples, rng)
    lo, hi = np.quantile(d, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(lo), float(hi)


def mann_whitney(pilot, baseline) -> tuple[float, float, float]:
    """(U of the pilot, p that the pilot is stochastically greater, p that it is smaller): scipy's test with
    the normal approximation and tie correction."""
    from scipy.stats import mannwhitneyu

    gt = mannwhitneyu(pilot, baseline, alternative="greater", method="asymptotic")
    lt = mannwhitneyu(pilot, baseline, alternative="less", method="asymptotic")
    return float(gt.statistic), float(gt.pvalue), float(lt.pvalue)


def judge(kpi: str, pilot, baseline, *, better: str = "higher", expect: str = "no_worse", tolerance: float = 0.0,
          critical: bool = False, min_samples: int = 50, alpha: float = 0.05, resamples: int = DEFAULT_RESAMPLES,
          seed: int = 0, error: str | None = None) -> KpiResult:
    """One KPI check. `tolerance`: how much worse the pilot's mean may be (in the KPI's unit) before a
    significant difference fails it. `error`: the measurement failed (the check is inconclusive)."""
    r = KpiResult(kpi, "inconclusive", "", critical=critical, better=better)
    if error:
        r.reason = f"measurement errored: {error}"
        return r
    a, why_a = _clean(pilot)
    b, why_b = _clean(baseline)
    r.n_pilot = 0 if a is None else len(a)
    r.n_baseline = 0 if b is None else len(b)
    if a is None or b is None:
        r.reason = "; ".join(x for x in (why_a and f"pilot: {why_a}", why_b and f"baseline: {why_b}") if x)
        return r
    if len(a) < min_samples or len(b) < min_samples:
        r.reason = f"too few samples: {len(a)} pilot, {len(b)} baseline (at least {min_samples} each)"
        return r
    r.mean_pilot, r.mean_baseline = float(a.mean()), float(b.mean())
    r.difference = r.mean_pilot - r.mean_baseline
    r.ci_low, r.ci_high = bootstrap_diff(a, b, resamples=resamples, confidence=1 - alpha, seed=seed)
    if np.ptp(np.concatenate([a, b])) == 0:  # every value equal: no difference, and no test to run
        r.u, r.p_better, r.p_worse = float(len(a) * len(b) / 2), 1.0, 1.0
    else:
        r.u, p_gt, p_lt = mann_whitney(a, b)
        r.p_better, r.p_worse = (p_gt, p_lt) if better == "higher" else (p_lt, p_gt)
    sign = 1.0 if better == "higher" else -1.0
    # the interval oriented so that positive is an improvement
    imp_lo, imp_hi = sorted((sign * r.ci_low, sign * r.ci_high))
    if expect == "better":
        if r.p_better < alpha and imp_lo > 0:
            r.verdict, r.reason = "passed", f"significantly better (p={r.p_better:.3g}, improvement {imp_lo:.4g} to {imp_hi:.4g})"
        else:
            r.verdict, r.reason = "failed", f"not significantly better (p={r.p_better:.3g}, improvement {imp_lo:.4g} to {imp_hi:.4g})"
        return r
    if r.p_worse < alpha and imp_hi < -tolerance:
        r.verdict = "failed"
        r.reason = f"significantly worse (p={r.p_worse:.3g}; change {imp_lo:.4g} to {imp_hi:.4g}, tolerance {tolerance:g})"
    else:
        r.verdict = "passed"
        r.reason = f"no worse beyond the tolerance (p worse={r.p_worse:.3g}; change {imp_lo:.4g} to {imp_hi:.4g})"
    return r


def gate(checks: list[KpiResult], *, pass_score: float = 95.0, marginal_score: float = 75.0) -> GateResult:
    """The go / no-go. Critical checks are a group of their own: one failing is no-go whatever the others
    say, one inconclusive pauses. Then any inconclusive check pauses; otherwise the score is the share of the
    other checks that passed: at or above `pass_score` go, below `marginal_score` no-go, in between paused for a
    person to look (a marginal result never passes by itself)."""
    if not checks:
        return GateResult("inconclusive", None, ["the gate has no KPI checks"], [])
    crit = [c for c in checks if c.critical]
    minor = [c for c in checks if not c.critical]
    reasons: list[str] = []
    bad_crit = [c for c in crit if c.verdict == "failed"]
    if bad_crit:
        reasons += [f"critical KPI {c.kpi} failed: {c.reason}" for c in bad_crit]
        return GateResult("no_go", _score(minor), reasons, checks)
    inc = [c for c in checks if c.verdict == "inconclusive"]
    if inc:
        reasons += [f"{'critical ' if c.critical else ''}KPI {c.kpi} inconclusive: {c.reason}" for c in inc]
        return GateResult("inconclusive", _score(minor), reasons, checks)
    score = _score(minor)
    failed = [c for c in minor if c.verdict == "failed"]
    reasons += [f"KPI {c.kpi} failed: {c.reason}" for c in failed]
    if score is None or score >= pass_score:
        reasons.insert(0, "every critical KPI passed" + (f"; score {score:.1f} >= {pass_score:g}" if score is not None else ""))
        return GateResult("go", score, reasons, checks)
    if score < marginal_score:
        reasons.insert(0, f"score {score:.1f} below the marginal threshold {marginal_score:g}")
        return GateResult("no_go", score, reasons, checks)
    reasons.insert(0, f"marginal score {score:.1f} (between {marginal_score:g} and {pass_score:g}): a person decides")
    return GateResult("inconclusive", score, reasons, checks, marginal=True)


def _score(minor: list[KpiResult]) -> float | None:
    if not minor:
        return None
    return round(100.0 * sum(c.verdict == "passed" for c in minor) / len(minor), 2)
