"""The `continuity:` section of the configuration file: the dependency graph up to the business services (with
their business impact analysis), how incidents are opened and correlated, the playbooks, and the drills.

Durations are a number of seconds or text with a unit ('15m', '8h', '2d'); they are held here as seconds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from plantguard.timeutil import US, parse_duration_us

_YEAR_US = 366 * 86400 * US


def _seconds(v: Any) -> float:
    return parse_duration_us(v, max_us=_YEAR_US) / US


Seconds = Annotated[float, BeforeValidator(_seconds)]
NodeId = Annotated[str, Field(min_length=1, max_length=300, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-./]*$",
                              description="letters, digits, '_', '-', '.', '/'; a plant path names that asset or device")]
NodeKind = Literal["service", "process", "asset", "device", "gateway", "network", "power", "platform", "database",
                   "infrastructure"]
MAX_NODES = 200_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Redundancy(_Strict):
    """Members standing in for each other: the group holds while `at_least` of them are up (or exactly `exactly`
    of them are active); below `degraded_below` up members it works without a spare (degraded)."""

    members: list[NodeId] = Field(min_length=1, max_length=1000, description="the nodes standing in for each other")
    at_least: int | None = Field(None, ge=1, description="the group is down when fewer members are up")
    exactly: int | None = Field(None, ge=1, description="exactly this many members must be active (one master of an HA pair)")
    degraded_below: int | None = Field(None, ge=1, description="degraded when fewer members are up (default: all of them)")
    proportional: bool = Field(False, description="capacity is the share of members up (parallel filling heads) instead of full while the rule holds")

    @model_validator(mode="after")
    def _one_rule(self):
        if (self.at_least is None) == (self.exactly is None):
            raise ValueError("a redundancy group has one rule: at_least or exactly")
        return self

    @property
    def need(self) -> int:
        return self.at_least if self.at_least is not None else int(self.exactly or 1)


class Workaround(_Strict):
    """A manual way to keep a node going while what it depends on is down."""

    description: str = Field("", max_length=500, description="what people do (shown with the impact)")
    capacity: float = Field(gt=0, le=1, description="share of normal output the workaround gives")
    limit: Seconds = Field(gt=0, description="how long the workaround can be sustained")


class Node(_Strict):
    id: NodeId = Field(description="unique among services and nodes; other nodes name it in depends_on")
    name: str | None = Field(None, max_length=200, description="display name")
    kind: NodeKind = Field("infrastructure", description="service, process, asset, device, gateway, network, power, platform, database or infrastructure")
    ref: str | None = Field(None, max_length=300, description="plant path of the asset or device this node stands for")
    depends_on: list[NodeId] = Field(default_factory=list, max_length=1000, description="all of these are required")
    redundancy: list[Redundancy] = Field(default_factory=list, max_length=100, description="groups of members standing in for each other, each with its rule")
    buffer: Seconds = Field(0, ge=0, description="how long the node keeps working after what it depends on fails (a gateway's disk buffer, a tank)")
    workaround: Workaround | None = Field(None, description="a manual way to keep going while what it depends on is down")
    recovery: Seconds | None = Field(None, gt=0, description="time to restore the node after it fails (repair, swap)")
    backup_every: Seconds | None = Field(None, gt=0, description="a store: data since its last backup is lost if it is destroyed")
    active_point: str | None = Field(None, max_length=300, description="tag whose non-zero value means the member is active (exactly-n rules)")


class Service(Node):
    """A business service and its business impact analysis (ISO 22301 / ISO/TS 22317 terms)."""

    kind: Literal["service"] = Field("service", description="always service")
    mtpd: Seconds = Field(gt=0, description="maximum tolerable period of disruption")
    rto: Seconds = Field(gt=0, description="recovery time objective: back to the MBCO within this, inside the MTPD")
    rpo: Seconds = Field(0, ge=0, description="recovery point objective: the most data the service may lose")
    mbco: float = Field(0.5, gt=0, le=1, description="minimum business continuity objective, a share of normal output")
    cost_per_hour: float = Field(0, ge=0, le=1e12, description="cost of downtime per hour (any currency)")
    priority: int = Field(3, ge=1, le=5, description="1 is the most important")

    @model_validator(mode="after")
    def _rto_in_mtpd(self):
        if self.rto > self.mtpd:
            raise ValueError(f"rto ({self.rto:g} s) must lie within the mtpd ({self.mtpd:g} s)")
        return self


class IncidentSettings(_Strict):
    open_on_priority: Literal["low", "medium", "high", "urgent"] = Field("high", description="alarms at or above this priority open incidents")
    conditions: list[str] = Field(["OFFLINE", "STALE", "HIHI", "LOLO", "HI", "LO", "ROC", "RUL", "ANOMALY", "SPC"], max_length=50,
                                  description="alarm conditions that open incidents")
    open_after: Seconds = Field(60, ge=0, description="an outage signal opens an incident only once active this long (a blip that clears sooner opens none)")
    root_share: float = Field(0.5, gt=0, le=1, description="share of a node's devices that must signal for it to be taken as the common root")
    resolve_after: Seconds = Field(300, ge=0, description="an incident whose signals have all cleared resolves after this long")
    max_open: int = Field(10_000, ge=10, le=1_000_000, description="open incidents kept in memory")


StepType = Literal["quarantine", "switch", "safe_state", "notify", "work_order", "wait", "verify"]


class Approval(_Strict):
    role: Literal["operator", "engineer", "admin"] = Field("engineer", description="the least role that may approve (or reject)")
    ttl: Seconds = Field(3600, gt=0, description="how long the approval request stays open")
    on_expiry: Literal["skip", "fail", "approve"] = Field("fail", description="what happens when nobody answered in time")


class Step(_Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$", description="unique in the playbook")]
    type: StepType = Field(description="quarantine, switch, safe_state, notify, work_order, wait or verify (docs/continuity.md)")
    params: dict[str, Any] = Field(default_factory=dict, description="the step type's parameters")
    approval: Approval | None = Field(None, description="run only after someone with this role approves")
    timeout: Seconds = Field(60, gt=0, description="the step fails when it takes longer")
    retries: int = Field(0, ge=0, le=10, description="attempts after the first before the step fails")
    compensate: bool = Field(True, description="undo this step when a later one fails (where the step type can be undone)")


class Playbook(_Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$", description="the playbook's name in runs and the API")]
    name: str | None = Field(None, max_length=200, description="display name")
    on: list[Literal["alarm", "predictive", "security", "quarantine", "manual"]] = Field(
        ["manual"], min_length=1, description="the incidents it answers: alarm (outages), predictive, security, quarantine; manual: started by a person")
    nodes: list[NodeId] = Field(default_factory=list, description="incidents rooted at or under these nodes (empty: any)")
    auto_start: bool = Field(False, description="start a run when a matching incident opens (steps with an approval still wait)")
    steps: list[Step] = Field(min_length=1, max_length=100, description="run in order; a failure stops the run and compensates")


class SmtpSettings(_Strict):
    host: str = Field("127.0.0.1", description="SMTP server")
    port: int = Field(25, ge=1, le=65535, description="SMTP port")
    sender: str = Field("plantguard@localhost", description="From address")
    starttls: bool = Field(False, description="upgrade the connection with STARTTLS")
    username: str | None = Field(None, description="log in as this user (with password_env)")
    password_env: str | None = Field(None, description="environment variable holding the SMTP password")


class DrillSettings(_Strict):
    reports_dir: str | None = Field(None, description="where reports are written (default: <data dir>/drills)")


class ContinuitySettings(_Strict):
    """The `continuity:` section."""

    services: list[Service] = Field(default_factory=list, max_length=10_000, description="business services with their business impact analysis")
    nodes: list[Node] = Field(default_factory=list, max_length=MAX_NODES, description="processes, assets, devices, gateways, infrastructure")
    incidents: IncidentSettings = Field(default_factory=IncidentSettings, description="which signals open incidents and how they are correlated")
    playbooks: list[Playbook] = Field(default_factory=list, max_length=1000, description="declarative response plans")
    smtp: SmtpSettings | None = Field(None, description="the mail server notify steps send email through")
    webhook_allowed_networks: list[str] = Field(default_factory=list, description="networks notify webhooks may reach besides public ones")
    drills: DrillSettings = Field(default_factory=DrillSettings, description="drill reports")
