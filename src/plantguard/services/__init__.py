"""The queries and commands the API, the dashboard and the CLI offer. Those shells depend on `Services` only: its
fields are the platform's own services and the capabilities' services (None where a capability is absent); none of
the shells imports the runtime, the store, the pipeline or a capability's internals (tests/test_service_boundary.py).

    svc.alarms.acknowledge("…/p0:HI", Actor.user("ann"), note="checking")
    svc.model.replace(doc, Actor.cli())
    svc.telemetry.dead_letters(limit=100)
    svc.status.ingest()            # IngestStatus(readings_per_s=…, lag_ms=…, …)
    svc.accounts.login(...)        # the security capability's, when it is there
    svc.of("counter")              # a third-party capability's service

Results are typed (dataclasses, domain records). Commands take an Actor, recorded with the change.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable, Mapping

from plantguard.services.alarms import AlarmService
from plantguard.services.analytics import AnalyticsService
from plantguard.services.model import ModelService
from plantguard.services.partitions import PartitionService, PartitionSnapshot
from plantguard.services.performance import PerformanceService
from plantguard.services.status import IngestStatus, StatusService
from plantguard.services.telemetry import DeadLetterRow, TelemetryService

if TYPE_CHECKING:  # pragma: no cover - the security capability's types, for readers and type checkers
    from plantguard.security.accounts import Accounts
    from plantguard.security.audit import AuditLog
    from plantguard.security.behaviour import BehaviourProcessor
    from plantguard.security.broker import BrokerCredentials
    from plantguard.security.ca import CertificateAuthority
    from plantguard.security.quarantine import Quarantine
    from plantguard.security.service import PostureService, RiskService
    from plantguard.security.writes import WriteGate
    from plantguard.continuity.service import ContinuityService
    from plantguard.maturity.service import MaturityService


@dataclass
class Services:
    # the platform's own
    clock: Callable[[], int]
    model: ModelService
    telemetry: TelemetryService
    status: StatusService
    performance: PerformanceService
    partitions: PartitionService
    alarms: AlarmService                                # .enabled False when the alarm capability is off
    analytics: AnalyticsService                         # .enabled False when the analytics capability is off
    # the security capability's (None without it)
    accounts: "Accounts | None" = None
    audit: "AuditLog | None" = None
    posture: "PostureService | None" = None
    risks: "RiskService | None" = None
    quarantine: "Quarantine | None" = None
    behaviour: "BehaviourProcessor | None" = None
    broker_credentials: "BrokerCredentials | None" = None
    ca: "CertificateAuthority | None" = None
    write_gate: "WriteGate | None" = None
    broker_log: Any = None
    # the continuity capability's (None without it)
    continuity: "ContinuityService | None" = None
    # the maturity capability's (None without it)
    maturity: "MaturityService | None" = None
    # other capabilities' services, by name
    plugins: Mapping[str, Any] = field(default_factory=dict)

    def of(self, name: str) -> Any:
        """A service by name: a field above, or one a third-party capability returned (None if absent)."""
        if name in _FIELDS:
            return getattr(self, name)
        return self.plugins.get(name)

    @classmethod
    def assemble(cls, own: dict[str, Any], built: dict[str, Any], defaults: dict[str, Any]) -> "Services":
        """The platform's services, what the capabilities returned (known names fill their fields, the others go
        to `plugins`) and `defaults` for fields whose capability is off; a capability's service may not take the
        name of a platform service."""
        clash = sorted(set(built) & set(own))
        if clash:
            raise ValueError(f"a capability's service {clash[0]!r} would hide a platform service")
        known = {**defaults, **{k: v for k, v in built.items() if k in _FIELDS}}
        return cls(**own, **known, plugins={k: v for k, v in built.items() if k not in _FIELDS})


_FIELDS = {f.name for f in fields(Services)} - {"plugins"}

__all__ = ["AlarmService", "AnalyticsService", "PerformanceService", "DeadLetterRow", "IngestStatus", "ModelService",
           "PartitionService", "PartitionSnapshot", "Services", "StatusService", "TelemetryService"]
