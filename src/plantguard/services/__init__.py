"""The queries and commands the API, the dashboard and the CLI offer, over one Platform. Those shells call these
services only: none of them touches the store, the pipeline or the registry (tests/test_service_boundary.py).

    svc = Services(platform)
    svc.alarms.acknowledge("…/p0:HI", Actor.user("ann"), note="checking")
    svc.model.replace(doc, Actor.cli())
    svc.telemetry.dead_letters(limit=100)
    svc.status.ingest()            # IngestStatus(readings_per_s=…, lag_ms=…, …)

Results are typed (dataclasses, domain records). Commands take an Actor, recorded with the change.
"""

from __future__ import annotations

from plantguard.services.alarms import AlarmService
from plantguard.services.analytics import AnalyticsService
from plantguard.services.performance import PerformanceService
from plantguard.services.model import ModelService
from plantguard.services.partitions import PartitionService, PartitionSnapshot
from plantguard.services.status import IngestStatus, StatusService
from plantguard.services.telemetry import DeadLetterRow, TelemetryService


class Services:
    def __init__(self, platform, extra: dict | None = None) -> None:
        self.platform = platform
        self.alarms = AlarmService(platform)
        self.model = ModelService(platform)
        self.telemetry = TelemetryService(platform)
        self.status = StatusService(platform)
        self.analytics = AnalyticsService(platform)
        self.performance = PerformanceService(platform)
        self.partitions = PartitionService(platform)
        for name, svc in (extra or {}).items():  # services that capabilities built
            if hasattr(self, name):
                raise ValueError(f"a capability's service {name!r} would hide a platform service")
            setattr(self, name, svc)


__all__ = ["AlarmService", "AnalyticsService", "PerformanceService", "DeadLetterRow", "IngestStatus", "ModelService", "PartitionService", "PartitionSnapshot", "Services", "StatusService",
           "TelemetryService"]
