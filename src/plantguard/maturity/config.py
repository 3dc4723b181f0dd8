"""The `maturity:` section: operator positions and the alarm-performance rules, the evidence period, the target
profiles, the roles' required training, and the phased rollout plans with their gates.

Durations are a number of seconds or text with a unit ('10m', '8h', '90d'); they are held here as seconds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from plantguard.timeutil import US, parse_duration_us

_YEAR_US = 3 * 366 * 86400 * US


def _seconds(v: Any) -> float:
    return parse_duration_us(v, max_us=_YEAR_US) / US


Seconds = Annotated[float, BeforeValidator(_seconds)]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-. ]*$")]
Path_ = Annotated[str, Field(min_length=1, max_length=300)]
# the KPIs a gate can check: each returns samples per bucket of the scope (docs/rollout.md)
KPIS = ("alarm_rate", "completeness", "oee", "availability", "downtime", "defect_rate", "mttr")
KpiName = Annotated[str, Field(min_length=1, max_length=200, description=f"{', '.join(KPIS)} or value:<point id> (the bucket means of that point)")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Position(_Strict):
    """An operator position (a console): the areas and lines one operator answers for."""

    name: Name = Field(description="shown in the alarm-performance report")
    scope: list[Path_] = Field(min_length=1, max_length=1000, description="plant paths (sites, areas, lines) whose alarms this position answers")


class AlarmPerformance(_Strict):
    flood_threshold: int = Field(10, ge=1, le=10_000, description="more alarms than this in 10 minutes is a flood (ISA-18.2: 10)")
    chatter_count: int = Field(3, ge=2, le=100, description="raised this many times within chatter_window is chattering (ISA-18.2: 3 in 1 minute)")
    chatter_window: Seconds = Field(60, gt=0, le=86400, description="the window of chatter_count")
    fleeting: Seconds = Field(5, gt=0, le=86400, description="raised and returned within this (or two of its point's periods, when longer) is fleeting")
    stale_after: Seconds = Field(86400, gt=0, description="active longer than this is a standing (stale) alarm")
    period: Seconds = Field(7 * 86400, gt=0, description="default report period, ending now")


class Evidence(_Strict):
    period: Seconds = Field(30 * 86400, gt=0, description="evidence is measured over this period, ending at the assessment")
    completeness_bucket: Seconds = Field(3600, ge=60, description="received versus expected readings are counted per bucket of this width")
    lead_window: Seconds = Field(7 * 86400, gt=0, description="a predictive alert this long or less before a failure counts as before it")
    drills_window: Seconds = Field(90 * 86400, gt=0, description="drills within this window count")
    max_points: int = Field(2000, ge=1, le=1_000_000, description="critical points whose capability (Cpk) is computed, first by path")


class Target(_Strict):
    site: str = Field("*", max_length=100, description="site id, or * for the default profile")
    levels: dict[str, int] = Field(description="practice area -> target level (1-5)")


class Skill(_Strict):
    name: Name = Field(description="a skill or course")
    valid_for: Seconds | None = Field(None, gt=0, description="a record expires this long after completion (null: never)")


class Role(_Strict):
    name: Name = Field(description="a job role (operator, maintenance technician, OT security...)")
    skills: list[Skill] = Field(default_factory=list, max_length=200, description="the trainings the role requires")


class Person(_Strict):
    name: Name = Field(description="a person (the name training records use)")
    role: Name = Field(description="one of the roles above")


class Training(_Strict):
    roles: list[Role] = Field(default_factory=list, max_length=200, description="roles and their required skills (the skills matrix)")
    people: list[Person] = Field(default_factory=list, max_length=100_000, description="people and their role")


class Scope(_Strict):
    devices: list[Path_] = Field(default_factory=list, max_length=100_000, description="device paths")
    lines: list[Path_] = Field(default_factory=list, max_length=10_000, description="line paths (every device on them)")
    sites: list[str] = Field(default_factory=list, max_length=1000, description="site ids (every device in them)")

    def empty(self) -> bool:
        return not (self.devices or self.lines or self.sites)


class KpiCheck(_Strict):
    kpi: KpiName
    better: Literal["higher", "lower"] | None = Field(None, description="which way is better (default: the KPI's own)")
    expect: Literal["no_worse", "better"] = Field("no_worse", description="no_worse: fail when significantly worse; better: pass only when significantly better")
    tolerance: float = Field(0.0, ge=0, le=1e12, description="how much worse the pilot's mean may be, in the KPI's unit")
    critical: bool = Field(False, description="a critical KPI (safety, scrap): failing it is no-go whatever the others say")
    min_samples: int = Field(50, ge=2, le=10_000_000, description="fewer samples on either side is inconclusive")


class Gate(_Strict):
    kpis: list[KpiCheck] = Field(min_length=1, max_length=500, description="the checks")
    bucket: Seconds = Field(600, ge=1, description="one sample per scope member and bucket of this width")
    window: Seconds | None = Field(None, gt=0, description="judge the last this long of the phase (default: the whole phase so far)")
    pass_score: float = Field(95, ge=0, le=100, description="share of minor checks passed at or above which the gate is go")
    marginal_score: float = Field(75, ge=0, le=100, description="below this the gate is no-go; in between a person decides")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="significance level of the tests (and 1 - confidence of the intervals)")

    @model_validator(mode="after")
    def _thresholds(self):
        if self.marginal_score > self.pass_score:
            raise ValueError("marginal_score must not exceed pass_score")
        return self


class Phase(_Strict):
    name: Name = Field(description="assess, pilot, expand, full...")
    scope: Scope = Field(default_factory=Scope, description="devices, lines or sites this phase brings in")
    baseline: Scope | None = Field(None, description="concurrent control devices or lines to compare with")
    before: Seconds | None = Field(None, gt=0, description="or compare the scope with its own period this long before the phase started")
    shadow: bool = Field(True, description="the scope's devices run in shadow mode until the phase is promoted")
    gate: Gate | None = Field(None, description="exit gate: judged before promotion (none: promotion needs only the approval)")
    approval: Literal["engineer", "admin"] = Field("engineer", description="the least role that may promote the phase")
    min_duration: Seconds = Field(0, ge=0, description="the phase runs at least this long before it may be promoted")

    @model_validator(mode="after")
    def _compare(self):
        if self.gate is not None and self.baseline is None and self.before is None:
            raise ValueError("a gate compares the scope with a baseline or with its own before-period: set baseline or before")
        return self


class Rollout(_Strict):
    name: Name = Field(description="the plan's name in the API and the audit log")
    description: str = Field("", max_length=1000, description="what is rolled out")
    phases: list[Phase] = Field(min_length=1, max_length=20, description="in order")


class MaturitySettings(_Strict):
    """The `maturity:` section."""

    positions: list[Position] = Field(default_factory=list, max_length=1000, description="operator positions (groups of areas or lines) the alarm report is split by")
    alarm_performance: AlarmPerformance = Field(default_factory=AlarmPerformance, description="the rules of the alarm-performance report")
    evidence: Evidence = Field(default_factory=Evidence, description="how the evidence is measured")
    targets: list[Target] = Field(default_factory=list, max_length=1000, description="target profiles: levels per practice area, per site or the default (*)")
    training: Training = Field(default_factory=Training, description="the skills matrix and the people")
    rollouts: list[Rollout] = Field(default_factory=list, max_length=200, description="phased rollout plans")
    attestation_max: Seconds = Field(366 * 86400, gt=0, description="an attestation expires at most this long after it is signed")
