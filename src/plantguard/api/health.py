"""Health (GET /api/health) and Prometheus metrics (GET /metrics, at the root where scrapers look)."""

from __future__ import annotations

from plantguard.services import Services

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from plantguard.api.deps import ServicesDep
from plantguard.api.metrics import render
from plantguard.api.permissions import principal_of, require
from plantguard.domain.roles import Permission

router = APIRouter(tags=["health"], dependencies=[require(Permission.PUBLIC)])  # a load balancer probes it
metrics_router = APIRouter(tags=["health"], dependencies=[require(Permission.READ)])  # scraped with a token


class PipelineHealth(BaseModel):
    accepted: int
    rejected: int
    duplicates: int
    queued_readings: int
    lag_ms_last: float
    lag_ms_max: float
    lag_ms_now: float = Field(description="how long the oldest reading not yet written has waited")
    lagging: bool = Field(description="lag_ms_now above ingest.lag_degraded: the platform is behind")
    lag_degraded_ms: float
    write_errors: int
    processor_errors: int


class HealthPublic(BaseModel):
    status: str = Field(description="ok, or degraded (then the response status is 503)")
    writer_alive: bool
    uptime_s: float
    # the details only for a credential with the read permission: an anonymous probe learns ok or degraded
    problems: list[str] | None = Field(None, description="why the status is degraded, one sentence each")
    store: str | None = None
    points: int | None = None
    pipeline: PipelineHealth | None = None
    sources: dict[str, dict[str, Any]] | None = None


@router.get("/health", response_model=HealthPublic, response_model_exclude_none=True,
            responses={503: {"model": HealthPublic, "description": "degraded"}})
def get_health(request: Request, svc: ServicesDep, response: Response) -> Any:
    """Liveness of the writer and of every source; 503 when anything is degraded, for load balancers. Without
    a credential only the status, the writer's liveness and the uptime (no addresses, no error texts)."""
    health = svc.status.health()
    if health["status"] != "ok":
        response.status_code = 503
    if not principal_of(request).can(Permission.READ):
        return {k: health[k] for k in ("status", "writer_alive", "uptime_s")}
    return health


@metrics_router.get("/metrics", response_class=Response,
                    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
def get_metrics(request: Request) -> Response:
    """Prometheus metrics, read from the platform at scrape time."""
    return Response(render(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
