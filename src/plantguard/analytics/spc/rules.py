"""Nelson's eight run rules (Nelson, "The Shewhart control chart: tests for special causes", JQT 16(4), 1984),
evaluated one point at a time with running counters and fixed windows of at most 15 points.

z is the point's distance from the center line in sigmas of the plotted statistic.

    rule  name                    fires at a point when
    1     beyond_3_sigma          |z| > 3
    2     run_same_side           the last 9 points (8 for Western Electric) are all above or all below center
    3     trend                   the last 6 points are strictly increasing or strictly decreasing
    4     alternating             the last 14 points alternate up and down
    5     two_of_three_beyond_2   the point is beyond 2 sigma and so is another of the last 3, same side
    6     four_of_five_beyond_1   the point is beyond 1 sigma and 3 more of the last 5 are, same side
    7     stratification          the last 15 points are all within 1 sigma (|z| < 1)
    8     mixture                 the last 8 points are all beyond 1 sigma (|z| > 1), on both sides

A rule fires at every point that completes its pattern, so a lasting pattern gives one event per point (as the
usual chart software marks it). Rules 5 and 6 require the current point to be in the zone, so one pattern is not
reported again by the following in-zone-free points. A point exactly on the center line belongs to neither side.
Rules 3 and 4 look at differences between consecutive plotted points; a missing reading breaks them (no
difference is taken across a gap), the zone rules carry on across it.

Western Electric (Western Electric Statistical Quality Control Handbook, 1956) maps onto Nelson as
WE1 = Nelson 1, WE2 (2 of 3 beyond 2 sigma) = Nelson 5, WE3 (4 of 5 beyond 1 sigma) = Nelson 6,
WE4 (8 in a row on one side) = Nelson 2 with a run of 8; events carry the Nelson number.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from plantguard.errors import InvalidInput

RULE_NAMES = {1: "beyond_3_sigma", 2: "run_same_side", 3: "trend", 4: "alternating",
              5: "two_of_three_beyond_2", 6: "four_of_five_beyond_1", 7: "stratification", 8: "mixture"}
#: Points a rule looks back over (the window reported in an event).
RULE_SPAN = {1: 1, 2: 9, 3: 6, 4: 14, 5: 3, 6: 5, 7: 15, 8: 8}


@dataclass(frozen=True)
class RuleSet:
    """Which rules run, and the run length of rule 2 (9 for Nelson, 8 for Western Electric)."""
    rules: tuple[int, ...]
    run_length: int = 9

    @staticmethod
    def of(spec: str | Iterable[int] | RuleSet) -> RuleSet:
        if isinstance(spec, RuleSet):
            return spec
        if isinstance(spec, str):
            if spec == "nelson":
                return RuleSet(tuple(range(1, 9)), 9)
            if spec == "western_electric":
                return RuleSet((1, 2, 5, 6), 8)
            if spec == "none":
                return RuleSet((), 9)
            raise InvalidInput(f"unknown rule set {spec!r}: use 'nelson', 'western_electric', 'none' or a list")
        rules = tuple(sorted(set(int(r) for r in spec)))
        if any(r not in RULE_NAMES for r in rules):
            raise InvalidInput(f"rules must be numbers 1..8, got {list(spec)!r}")
        return RuleSet(rules, 9)

    def span(self, rule: int) -> int:
        return self.run_length if rule == 2 else RULE_SPAN[rule]

    @property
    def mask(self) -> int:
        return sum(1 << (r - 1) for r in self.rules)


@dataclass(frozen=True)
class Violation:
    """One rule firing at one point. `indices` are the chart's point indices the rule looked at (oldest first),
    `timestamps` their timestamps when known (same order), `index`/`ts` the point where it fired."""
    rule: int
    name: str
    chart: str
    index: int
    ts: int | float | None
    indices: tuple[int, ...]
    timestamps: tuple[int | float | None, ...]


class NelsonRules:
    """Streaming evaluation of a rule set over one chart's standardised points."""

    def __init__(self, rules: str | Iterable[int] | RuleSet = "nelson", chart: str = "individuals"):
        self.rules = rules
        self.chart = chart
        self._set = RuleSet.of(rules)
        self.reset()

    def reset(self) -> None:
        self._prev_z: float | None = None
        self._above = self._below = 0          # rule 2 run lengths
        self._inc = self._dec = 0              # rule 3: consecutive rising / falling differences
        self._alt = 0                          # rule 4: consecutive alternating differences
        self._last_dir = 0
        self._within = 0                       # rule 7
        self._outside = 0                      # rule 8
        self._recent: deque[float] = deque(maxlen=15)   # z of the last points (rules 5, 6, 8)
        self._idx: deque[int] = deque(maxlen=15)
        self._ts: deque[int | float | None] = deque(maxlen=15)

    def gap(self) -> None:
        """A reading was missing: differences (rules 3 and 4) restart after it."""
        self._prev_z = None
        self._inc = self._dec = self._alt = self._last_dir = 0

    def step(self, z: float, index: int, ts: int | float | None = None) -> list[Violation]:
        s = self._set
        self._recent.append(z)
        self._idx.append(index)
        self._ts.append(ts)
        # rule 2
        if z > 0:
            self._above, self._below = self._above + 1, 0
        elif z < 0:
            self._above, self._below = 0, self._below + 1
        else:
            self._above = self._below = 0
        # rules 3 and 4
        if self._prev_z is not None:
            d = (z > self._prev_z) - (z < self._prev_z)
            self._inc = self._inc + 1 if d > 0 else 0
            self._dec = self._dec + 1 if d < 0 else 0
            if d == 0:
                self._alt = 0
            elif d == -self._last_dir:
                self._alt += 1
            else:
                self._alt = 1
            self._last_dir = d
        self._prev_z = z
        # rules 7 and 8
        self._within = self._within + 1 if abs(z) < 1 else 0
        self._outside = self._outside + 1 if abs(z) > 1 else 0

        fired = []
        for r in s.rules:
            if r == 1:
                hit = abs(z) > 3
            elif r == 2:
                hit = max(self._above, self._below) >= s.run_length
            elif r == 3:
                hit = max(self._inc, self._dec) >= 5
            elif r == 4:
                hit = self._alt >= 13
            elif r == 5:
                w = list(self._recent)[-3:]
                hit = (z > 2 and sum(v > 2 for v in w) >= 2) or (z < -2 and sum(v < -2 for v in w) >= 2)
            elif r == 6:
                w = list(self._recent)[-5:]
                hit = (z > 1 and sum(v > 1 for v in w) >= 4) or (z < -1 and sum(v < -1 for v in w) >= 4)
            elif r == 7:
                hit = self._within >= 15
            else:
                w = list(self._recent)[-8:]
                hit = self._outside >= 8 and any(v > 1 for v in w) and any(v < -1 for v in w)
            if hit:
                n = s.span(r)
                fired.append(Violation(r, RULE_NAMES[r], self.chart, index, ts,
                                       tuple(list(self._idx)[-n:]), tuple(list(self._ts)[-n:])))
        return fired
