"""Control chart constants for subgroups of size n = 2..25.

c4 and d2 are computed from their definitions; d3 has no closed form and is tabled. The derived factors follow
Montgomery, Introduction to Statistical Quality Control (Appendix VI), and the NIST/SEMATECH e-Handbook of
Statistical Methods, section 6.3.2 (tables of c4, d2, d3 and the A2/A3/B3/B4/D3/D4 factors):

    c4(n) = sqrt(2 / (n - 1)) * Gamma(n / 2) / Gamma((n - 1) / 2)       E[s] = c4 * sigma
    d2(n) = integral of 1 - Phi(x)^n - (1 - Phi(x))^n over the real line  E[R] = d2 * sigma
    d3(n) = standard deviation of R / sigma (tabled)
    A2 = 3 / (d2 sqrt(n)), D3 = max(0, 1 - 3 d3 / d2), D4 = 1 + 3 d3 / d2
    A3 = 3 / (c4 sqrt(n)), B3 = max(0, 1 - 3 sqrt(1 - c4^2) / c4), B4 = 1 + 3 sqrt(1 - c4^2) / c4
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from scipy import integrate, special, stats

from plantguard.errors import InvalidInput

MIN_N, MAX_N = 2, 25

# d3 for n = 2..25 to four decimals (ASTM E2587 table; Montgomery Appendix VI prints three), so D3 and D4
# reproduce the published three-decimal factors.
_D3_TABLE = (0.8525, 0.8884, 0.8798, 0.8641, 0.8480, 0.8332, 0.8198, 0.8078, 0.7971, 0.7873, 0.7785, 0.7704,
             0.7630, 0.7562, 0.7499, 0.7441, 0.7386, 0.7335, 0.7287, 0.7242, 0.7199, 0.7159, 0.7121, 0.7084)


def _check(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or not MIN_N <= n <= MAX_N:
        raise InvalidInput(f"subgroup size must be an integer in {MIN_N}..{MAX_N}, got {n!r}")


@lru_cache(maxsize=None)
def c4(n: int) -> float:
    _check(n)
    # log-gamma keeps the ratio finite for every n
    return math.sqrt(2.0 / (n - 1)) * math.exp(special.gammaln(n / 2) - special.gammaln((n - 1) / 2))


@lru_cache(maxsize=None)
def d2(n: int) -> float:
    _check(n)
    val, _ = integrate.quad(lambda x: 1.0 - stats.norm.cdf(x) ** n - stats.norm.sf(x) ** n,
                            -math.inf, math.inf, epsabs=1e-12, epsrel=1e-12)
    return val


def d3(n: int) -> float:
    _check(n)
    return _D3_TABLE[n - MIN_N]


@dataclass(frozen=True)
class Factors:
    """All chart factors for one subgroup size."""
    n: int
    c4: float
    d2: float
    d3: float
    A2: float
    A3: float
    B3: float
    B4: float
    D3: float
    D4: float


@lru_cache(maxsize=None)
def factors(n: int) -> Factors:
    _check(n)
    _c4, _d2, _d3 = c4(n), d2(n), d3(n)
    b = 3.0 * math.sqrt(1.0 - _c4 * _c4) / _c4
    return Factors(n=n, c4=_c4, d2=_d2, d3=_d3, A2=3.0 / (_d2 * math.sqrt(n)), A3=3.0 / (_c4 * math.sqrt(n)),
                   B3=max(0.0, 1.0 - b), B4=1.0 + b, D3=max(0.0, 1.0 - 3.0 * _d3 / _d2), D4=1.0 + 3.0 * _d3 / _d2)


#: d2 for moving ranges of two consecutive values (individuals charts), and D4 for the moving-range chart.
D2_MR = d2(2)
D4_MR = factors(2).D4
