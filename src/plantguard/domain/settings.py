"""The platform settings of the configuration file: storage, ingest, alarms (webhooks), the API. They need a
restart to change; the plant hierarchy (plantguard.domain.model) changes live."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from plantguard.timeutil import US

from plantguard.domain.fields import DAY_US, DurationValue, _Strict, _duration


class StorageConfig(_Strict):
    backend: Literal["embedded", "postgres"] = "embedded"
    data_dir: str = "./data"
    postgres_dsn: str | None = Field(None, description="e.g. postgresql://user@127.0.0.1:5432/plantguard")
    retention_raw: DurationValue = "30d"
    retention_1m: DurationValue = "365d"
    retention_1h: DurationValue = "3650d"
    memory_limit: str = Field("1GB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
                              description="cache limit of the embedded store (DuckDB's own default is 80% of RAM)")
    key_dir: str | None = Field(None, description="where the keys sealing secrets and learned state live (default "
                                "<data_dir>/keys); back them up apart from the store")

    _v = field_validator("retention_raw", "retention_1m", "retention_1h")(_duration(36_500 * DAY_US, min_us=3600 * US))


class IngestConfig(_Strict):
    unknown_points: Literal["reject", "auto_register"] = "reject"
    max_future: DurationValue = Field("5m", description="readings further in the future than this are rejected")
    max_queue_readings: int = Field(2_000_000, ge=1000, le=100_000_000, description="bound of the ingest queue; producers wait beyond it")
    max_batch_readings: int = Field(200_000, ge=100, le=10_000_000, description="readings the writer takes in one turn")
    max_payload_bytes: int = Field(8 * 1024 * 1024, ge=1024, le=1024**3)
    lag_degraded: DurationValue = Field("30s", description="health is degraded while a write waited longer than this in the queue")
    partition_by: Literal["site", "area", "line", "asset"] = Field(
        "line", description="the unit of learned state (dedupe watermarks, alarm and analytics state) one worker owns")
    spill: Literal["auto", "on", "off"] = Field(
        "auto", description="buffer readings on disk (<data_dir>/spill) while the store is unavailable and replay them in order; auto: with PostgreSQL")
    spill_max_bytes: int = Field(1 << 30, ge=1 << 20, le=1 << 40, description="disk the spill may use; beyond it writes fail (nothing acknowledged is dropped)")

    _v = field_validator("max_future")(_duration(36_500 * DAY_US))
    _lag = field_validator("lag_degraded")(_duration(DAY_US, min_us=100_000))


class Webhook(_Strict):
    url: str
    min_priority: Literal["low", "medium", "high", "urgent"] = "low"
    retries: int = Field(5, ge=0, le=20)
    timeout: float = Field(5.0, gt=0, le=300)


class AlarmConfig(_Strict):
    webhooks: list[Webhook] = Field(default_factory=list)
    webhook_allowed_networks: list[str] = Field(
        default_factory=list, max_length=100,
        description="networks (CIDR) webhooks may reach although they are loopback, link-local or metadata "
                    "addresses, e.g. ['127.0.0.1/32'] for a receiver on this host")
    check_interval: DurationValue = "1s"

    @model_validator(mode="after")
    def _webhook_targets(self):
        import ipaddress

        from plantguard.domain.addresses import check_url

        for n in self.webhook_allowed_networks:
            try:
                ipaddress.ip_network(n, strict=False)
            except ValueError:
                raise ValueError(f"webhook_allowed_networks: {n!r} is not a network (CIDR)") from None
        for i, wh in enumerate(self.webhooks):
            why = check_url(wh.url, self.webhook_allowed_networks, resolve=False)
            if why:
                raise ValueError(f"webhooks[{i}].url: {why} (allow it with alarms.webhook_allowed_networks)")
        return self

    _v = field_validator("check_interval")(_duration(3600 * US, min_us=10_000))


class ApiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    tls_cert: str | None = Field(None, description="PEM certificate (chain) file: serve HTTPS; required to listen beyond loopback")
    tls_key: str | None = Field(None, description="PEM private key file of tls_cert")
    allowed_hosts: list[str] = Field(["127.0.0.1", "localhost", "::1"], max_length=100,
                                     description="host names requests may name (Host header); '*' for any. Refuses DNS rebinding")
