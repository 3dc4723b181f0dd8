"""Settings of the edge gateway: the top-level key `gateway` of the configuration file."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,63}$", description="this gateway's name at the central side")
    central_url: str = Field(description="base URL of the central plantguard, e.g. https://plantguard.example:8000")
    token_file: str | None = Field(None, description="file holding the API token (scope ingest) the gateway sends to the central side; "
                                   "default: the environment variable PLANTGUARD_GATEWAY_TOKEN")
    data_dir: str = Field("./data/gateway", description="directory of the disk queue")
    max_bytes: int = Field(1 << 30, ge=1 << 20, description="byte budget of the disk queue")
    overflow: Literal["drop_oldest", "reject_new"] = Field("drop_oldest", description="what happens when the budget is reached")
    fsync: Literal["always", "interval", "never"] = Field("always", description="when appended batches are fsynced")
    fsync_interval_s: float = Field(1.0, gt=0, description="with fsync: interval, the longest time between fsyncs")
    min_free_bytes: int = Field(256 << 20, ge=0, description="disk space always left free, whatever the budget")
    max_request_bytes: int = Field(4 << 20, ge=64 << 10, description="batches sent per request, in bytes at most")
    request_timeout_s: float = Field(60.0, gt=0, description="wait for the central answer (a durable write) at most")
    backoff_min: float = Field(0.5, gt=0, description="first retry delay, seconds")
    backoff_max: float = Field(30.0, gt=0, description="longest retry delay, seconds")
    status_interval_s: float = Field(60.0, gt=0, description="a status line (queue depth, autonomy) is logged this often")
    health_port: int | None = Field(None, ge=0, le=65535, description="serve GET /health (JSON) on this port; none: off")
    health_host: str = Field("127.0.0.1", description="address of the health endpoint")


TOKEN_ENV = "PLANTGUARD_GATEWAY_TOKEN"


def central_token(s: GatewaySettings) -> str | None:
    """The token for the central side: from token_file, else the environment; None when neither is set."""
    import os
    from pathlib import Path

    if s.token_file:
        return Path(s.token_file).read_text(encoding="utf-8").strip() or None
    return os.environ.get(TOKEN_ENV) or None
