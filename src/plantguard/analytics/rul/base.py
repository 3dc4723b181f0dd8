"""What every remaining-useful-life model returns: `RulEstimate`.

    est = model.update(ts, value)          # or model.predict(history)
    est.state                               # "insufficient_data" | "healthy" | "degrading" | "failed"
    est.median, est.lower, est.upper        # remaining life in the model's time unit (seconds or cycles)
    est.alert(lead_time=2 * 3600)           # predictive maintenance: the lower bound is inside the lead time

`lower`/`upper` bound a central interval at probability `level` (0.9: 5 % below, 5 % above). `upper` is
`math.inf` when the data cannot bound the life from above (no degradation seen yet). In state
"insufficient_data" every figure is NaN and `alert` is False: a model never alerts on what it has not seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

State = Literal["insufficient_data", "healthy", "degrading", "failed"]
STATES: tuple[str, ...] = ("insufficient_data", "healthy", "degrading", "failed")


@dataclass(frozen=True, slots=True)
class RulEstimate:
    median: float
    lower: float
    upper: float
    level: float = 0.9
    state: State = "degrading"

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"unknown state {self.state!r}; one of {', '.join(STATES)}")
        if not 0.0 < self.level < 1.0:
            raise ValueError("the interval level is a probability in (0, 1)")
        if self.state != "insufficient_data" and not (self.lower <= self.median <= self.upper):
            raise ValueError(f"need lower <= median <= upper, got {self.lower}, {self.median}, {self.upper}")

    @classmethod
    def insufficient(cls, level: float = 0.9) -> RulEstimate:
        nan = math.nan
        return cls(nan, nan, nan, level, "insufficient_data")

    @property
    def known(self) -> bool:
        return self.state != "insufficient_data"

    def alert(self, lead_time: float) -> bool:
        """True when the lower bound of the remaining life is below `lead_time` (same unit as the estimate):
        with probability about (1 - level) / 2 or more the asset fails before maintenance could be done."""
        return self.known and self.lower < lead_time
