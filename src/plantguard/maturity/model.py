"""The maturity model for IoT-enabled operations: eight practice areas, levels 1 to 5, and the indicators each
level requires, computed from evidence items (evidence.py) and, where no data can show a practice, from signed
attestations. Pure: the same evidence and attestations give the same levels.

    levels = score(evidence, attestations, at=now)        # {"quality": PracticeScore(level=3, ...), ...}

A level is reached when every indicator of that level and of every level below it is met; level 1 (the practice
is performed, ad hoc) needs nothing. An indicator is met, not met, or missing (its evidence could not be measured:
the capability that records it is absent or has no data); missing is never met. The descriptions are this
project's own words; docs/maturity.md maps each area to the CMMI V2.0 practice areas and the IIC IoT Security
Maturity Model practices it supports.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field

LEVEL_NAMES = {1: "performed", 2: "managed", 3: "defined", 4: "quantitatively managed", 5: "optimizing"}
_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt}


@dataclass(frozen=True)
class Indicator:
    id: str
    level: int
    text: str                          # what the level needs, in plain words
    evidence: str | None = None        # evidence item id
    op: str = ">="
    threshold: float = 0.0
    attest: bool = False               # shown by a signed attestation, not by data

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class PracticeArea:
    id: str
    name: str
    purpose: str
    indicators: tuple[Indicator, ...]


def _verified(area: str) -> Indicator:
    return Indicator(f"{area}.verified", 5, "at least one improvement action in this area verified effective by its KPI",
                     f"improvement.verified.{area}", ">=", 1)


AREAS: tuple[PracticeArea, ...] = (
    PracticeArea("data", "Data and analytics", "Readings arrive complete and on time, so every later decision rests on data that is there.", (
        Indicator("data.completeness", 2, "median data completeness of the points at least 80 %", "data.completeness_median", ">=", 80),
        Indicator("data.complete_points", 3, "at least 80 % of the points deliver 95 % or more of their expected readings", "data.complete_share", ">=", 80),
        Indicator("data.ownership", 3, "each data source has a named owner and the meaning of its points is written down", attest=True),
        Indicator("data.complete_points_4", 4, "at least 95 % of the points deliver 95 % or more of their expected readings", "data.complete_share", ">=", 95),
        _verified("data"))),
    PracticeArea("quality", "Real-time quality", "Critical characteristics are watched by statistics as they are made, and the alarm system stays usable.", (
        Indicator("quality.spc_some", 2, "at least 25 % of the critical points have SPC with spec limits", "quality.spc_coverage", ">=", 25),
        Indicator("quality.spc_all", 3, "at least 80 % of the critical points have SPC with spec limits", "quality.spc_coverage", ">=", 80),
        Indicator("quality.alarm_manageable", 3, "average alarm rate at most 2 per 10 minutes (maximum manageable)", "quality.alarm_rate", "<=", 2),
        Indicator("quality.capable", 4, "at least 80 % of the SPC points capable (Cpk 1.33 or more)", "quality.capable_share", ">=", 80),
        Indicator("quality.alarm_acceptable", 4, "average alarm rate at most 1 per 10 minutes", "quality.alarm_rate", "<=", 1),
        Indicator("quality.no_floods", 4, "under 1 % of the 10-minute periods in alarm flood", "quality.alarm_flood", "<", 1),
        _verified("quality"))),
    PracticeArea("predictive", "Predictive maintenance", "Critical assets are watched for developing faults and warnings come before failures.", (
        Indicator("predictive.some", 2, "at least 25 % of the critical assets have anomaly detection or remaining-life estimates", "predictive.coverage", ">=", 25),
        Indicator("predictive.all", 3, "at least 80 % of the critical assets have anomaly detection or remaining-life estimates", "predictive.coverage", ">=", 80),
        Indicator("predictive.lead", 4, "at least half of the failures were preceded by a predictive alert", "predictive.lead_share", ">=", 50),
        _verified("predictive"))),
    PracticeArea("cyber", "Cyber risk", "Devices are known, their credentials fresh and their weaknesses found and closed in time.", (
        Indicator("cyber.rotated_some", 2, "at least half of the devices with credentials have rotated them within the allowed age", "cyber.credentials_rotated", ">=", 50),
        Indicator("cyber.no_high", 3, "no open critical or high posture finding older than 30 days", "cyber.high_overdue", "<=", 0),
        Indicator("cyber.rotated", 3, "at least 90 % of the devices with credentials within the allowed age", "cyber.credentials_rotated", ">=", 90),
        Indicator("cyber.policy", 3, "an OT security policy names the owners of devices and zones", attest=True),
        Indicator("cyber.fast", 4, "no open finding older than 30 days", "cyber.oldest_finding_days", "<=", 30),
        _verified("cyber"))),
    PracticeArea("continuity", "Business continuity", "Recovery is planned from business impact and proven by drills; incidents are reviewed.", (
        Indicator("continuity.drilled", 2, "at least one drill in the last 90 days", "continuity.drills_90d", ">=", 1),
        Indicator("continuity.reviewed", 3, "at least 80 % of the resolved incidents have a post-incident review", "continuity.reviewed_share", ">=", 80),
        Indicator("continuity.bia", 3, "the business impact analysis is approved by management", attest=True),
        Indicator("continuity.rto_met", 4, "every drill of the last 90 days passed (RTO and RPO met)", "continuity.drills_passed_share", ">=", 100),
        Indicator("continuity.mttr", 4, "MTTR not worse than in the period before", "continuity.mttr_ratio", "<=", 1),
        _verified("continuity"))),
    PracticeArea("people", "People and training", "Each role has the skills it needs and the training records to show it.", (
        Indicator("people.some", 2, "at least half of the people hold every current training their role requires", "people.training_current", ">=", 50),
        Indicator("people.all", 3, "at least 90 % of the people hold every current training their role requires", "people.training_current", ">=", 90),
        Indicator("people.effective", 4, "training effectiveness is measured (tests, observed tasks)", attest=True),
        _verified("people"))),
    PracticeArea("integration", "Phased integration", "New equipment and software enter in phases, each judged by evidence before it expands.", (
        Indicator("integration.gated", 2, "at least one rollout phase judged by a gate", "integration.gates_evaluated", ">=", 1),
        Indicator("integration.only_go", 3, "every promotion followed a passed gate", "integration.promoted_on_go", ">=", 100),
        Indicator("integration.piloted", 4, "at least half of the devices entered through a pilot phase", "integration.devices_piloted", ">=", 50),
        _verified("integration"))),
    PracticeArea("improvement", "Continuous improvement", "Problems become owned actions whose effect is verified by the same statistics.", (
        Indicator("improvement.backlog", 2, "improvement actions are recorded with owners", "improvement.actions", ">=", 1),
        Indicator("improvement.on_time", 3, "at least 80 % of the due actions done on time", "improvement.on_time_share", ">=", 80),
        Indicator("improvement.verified_share", 4, "at least half of the done actions have a verified effect", "improvement.verified_share", ">=", 50),
        Indicator("improvement.effective", 5, "at least half of the verified actions improved their KPI", "improvement.effective_share", ">=", 50))),
)
AREA_IDS = tuple(a.id for a in AREAS)
INDICATORS = {i.id: (a.id, i) for a in AREAS for i in a.indicators}
ATTESTABLE = tuple(i for i, (_, ind) in INDICATORS.items() if ind.attest)


@dataclass
class IndicatorResult:
    id: str
    level: int
    text: str
    status: str                          # met, not_met, missing
    value: float | None = None
    evidence: str | None = None
    threshold: str | None = None
    attestation: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class PracticeScore:
    area: str
    name: str
    level: int
    indicators: list[IndicatorResult] = field(default_factory=list)
    next_actions: list[str] = field(default_factory=list)
    target: int | None = None

    @property
    def gap(self) -> int:
        return max(0, (self.target or 0) - self.level)

    def as_dict(self) -> dict:
        return {"area": self.area, "name": self.name, "level": self.level, "level_name": LEVEL_NAMES[self.level],
                "target": self.target, "gap": self.gap, "next_actions": self.next_actions,
                "indicators": [i.as_dict() for i in self.indicators]}


def valid_attestation(a: dict | None, at: int) -> bool:
    return bool(a) and bool((a.get("signer") or "").strip()) and int(a.get("expires_at") or 0) > at


def score(evidence: dict[str, dict], attestations: dict[str, dict], *, at: int,
          targets: dict[str, int] | None = None) -> dict[str, PracticeScore]:
    """Levels per practice area. `evidence`: id -> {"status": "measured" | "missing", "value": float};
    `attestations`: indicator id -> the newest attestation (signer, expires_at, statement)."""
    out = {}
    for area in AREAS:
        results = []
        for ind in area.indicators:
            if ind.attest:
                a = attestations.get(ind.id)
                ok = valid_attestation(a, at)
                results.append(IndicatorResult(ind.id, ind.level, ind.text, "met" if ok else "missing",
                                               attestation=a if a else None))
                continue
            e = evidence.get(ind.evidence or "")
            thr = f"{ind.op} {ind.threshold:g}"
            if e is None or e.get("status") != "measured" or e.get("value") is None:
                results.append(IndicatorResult(ind.id, ind.level, ind.text, "missing", evidence=ind.evidence, threshold=thr))
                continue
            v = float(e["value"])
            met = _OPS[ind.op](v, ind.threshold)
            results.append(IndicatorResult(ind.id, ind.level, ind.text, "met" if met else "not_met", v, ind.evidence, thr))
        level = 1
        for lv in range(2, 6):
            needed = [r for r in results if r.level == lv]
            if needed and all(r.status == "met" for r in needed):
                level = lv
            else:
                break
        nxt = [r for r in results if r.level == level + 1 and r.status != "met"] if level < 5 else []
        actions = []
        for r in nxt:
            if r.status == "missing" and r.evidence is None:
                actions.append(f"have a named person attest: {r.text} ({r.id})")
            elif r.status == "missing":
                actions.append(f"start measuring {r.evidence}: {r.text}")
            else:
                actions.append(f"{r.text} (now {r.value:g}, needs {r.threshold})")
        out[area.id] = PracticeScore(area.id, area.name, level, results, actions, (targets or {}).get(area.id))
    return out
