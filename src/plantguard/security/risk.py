"""The risk register: likelihood x impact per device, each on a 1-5 scale, recomputed from the posture audit.

    likelihood = 1 + the weight of its most severe open finding (low 1 .. critical 4)
                   + 0.25 per further finding + 0.5 per security event in the last day, at most 5
    impact     = from inventory.criticality (none given: 2; low 1, medium 2, high 4, safety 5)
                   + 0.5 when its points feed analytics (anomaly, remaining life) + 0.5 per alarm-bearing point
                   (at most 1), at most 5
    score      = likelihood x impact (1..25): low below 6, medium below 12, high below 20, critical from 20

Each recomputation that changes a device's score is kept (`risk_history`), so a trend can be shown and exported.
The weights are deliberately simple and written down: a risk register must be explainable to an auditor.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

SEV_WEIGHT = {"info": 0.0, "low": 1.0, "medium": 2.0, "high": 3.0, "critical": 4.0}
CRITICALITY = {None: 2.0, "low": 1.0, "medium": 2.0, "high": 4.0, "safety": 5.0}


@dataclass(frozen=True)
class Dependents:
    points: int = 0
    analysed: bool = False
    alarmed_points: int = 0


@dataclass
class RiskEntry:
    device: str
    likelihood: float
    impact: float
    score: float
    level: str
    findings: int
    top_finding: str | None
    reasons: list[str] = field(default_factory=list)
    previous: float | None = None  # the score before this recomputation (trend)

    @property
    def trend(self) -> str:
        if self.previous is None:
            return "new"
        return "up" if self.score > self.previous else "down" if self.score < self.previous else "steady"


def level_of(score: float) -> str:
    return "critical" if score >= 20 else "high" if score >= 12 else "medium" if score >= 6 else "low"


def compute(findings_by_device: dict[str, list], criticality: dict[str, str | None], dependents: dict[str, Dependents],
            events: dict[str, int] | None = None) -> list[RiskEntry]:
    """One entry per device of `criticality` (every device of the inventory), highest score first."""
    events = events or {}
    out = []
    for device, crit in criticality.items():
        fs = findings_by_device.get(device, [])
        worst = max(fs, key=lambda f: SEV_WEIGHT[f.severity], default=None)
        lk = 1.0 + (SEV_WEIGHT[worst.severity] if worst else 0.0) + 0.25 * max(0, len(fs) - 1) + 0.5 * events.get(device, 0)
        d = dependents.get(device, Dependents())
        im = CRITICALITY.get(crit, 2.0) + (0.5 if d.analysed else 0.0) + min(1.0, 0.5 * d.alarmed_points)
        lk, im = min(5.0, lk), min(5.0, im)
        score = round(lk * im, 2)
        reasons = []
        if worst:
            reasons.append(f"{len(fs)} finding(s), the worst {worst.severity}: {worst.title}")
        if events.get(device):
            reasons.append(f"{events[device]} security event(s) in the last day")
        reasons.append(f"criticality {crit or 'not set (counted as medium)'}")
        if d.analysed:
            reasons.append("feeds analytics (anomaly or remaining life)")
        if d.alarmed_points:
            reasons.append(f"{d.alarmed_points} point(s) with alarms")
        out.append(RiskEntry(device, round(lk, 2), round(im, 2), score, level_of(score), len(fs),
                             worst.check if worst else None, reasons))
    out.sort(key=lambda e: (-e.score, e.device))
    return out


def to_csv(entries: list[RiskEntry]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["device", "score", "level", "likelihood", "impact", "findings", "top_finding", "trend", "reasons"])
    for e in entries:
        w.writerow([e.device, e.score, e.level, e.likelihood, e.impact, e.findings, e.top_finding or "", e.trend, "; ".join(e.reasons)])
    return buf.getvalue()
