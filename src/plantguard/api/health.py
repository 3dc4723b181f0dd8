"""Health (GET /api/health) and Prometheus metrics (GET /metrics, at the root where scrapers look)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from plantguard.api.deps import PlatformDep
from plantguard.api.metrics import render

router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["health"])


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
    problems: list[str] = Field(description="why the status is degraded, one sentence each")
    store: str
    writer_alive: bool
    points: int
    pipeline: PipelineHealth
    sources: dict[str, dict[str, Any]]
    uptime_s: float


@router.get("/health", response_model=HealthPublic, responses={503: {"model": HealthPublic, "description": "degraded"}})
def get_health(platform: PlatformDep, response: Response) -> Any:
    """Liveness of the writer and of every source; 503 when anything is degraded, for load balancers."""
    health = platform.health()
    if health["status"] != "ok":
        response.status_code = 503
    return health


@metrics_router.get("/metrics", response_class=Response,
                    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
def get_metrics(request: Request) -> Response:
    """Prometheus metrics, read from the platform at scrape time."""
    return Response(render(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
