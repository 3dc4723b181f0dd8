"""Settings and topic scheme of the MQTT connector.

The user-facing settings are a ``connectors:`` entry of type ``mqtt`` (``MqttConnectorConfig``), like every
other connector, or the older ``mqtt:`` section (``MqttConfig``, the same fields; the MQTT capability turns it
into a connector named ``mqtt``). Both are validated with the rest of the file, errors by field path.
``MqttTuning`` holds the knobs that only benchmarks and tests need to turn.

Topics, under ``topic_prefix`` (default ``plantguard/v1``):
    {prefix}/ingest                                     readings carry full tags 'site/area/line/asset/device/point'
    {prefix}/dev/<site>/<area>/<line>/<asset>/<device>  readings carry point ids relative to that device
"""

from __future__ import annotations

import random

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from plantguard.connectors.base import ConnectorConfig
from plantguard.domain.fields import TAG_SEP
from plantguard.errors import ConfigError, ConfigProblem

__all__ = ["MqttConfig", "MqttConnectorConfig", "MqttTuning", "Topics", "backoff_delay", "check_config"]

DEVICE_LEVELS = 5  # site/area/line/asset/device


class MqttTls(BaseModel):
    """TLS to the broker (its listener on 8883): the CA that signed the broker's certificate and, for mutual TLS,
    this client's own certificate and key (e.g. from `plantguard ca server-cert` / `devices certificate issue`)."""

    model_config = ConfigDict(extra="forbid")
    ca_file: str = Field(description="CA certificate(s) that signed the broker's certificate (PEM)")
    cert_file: str | None = Field(None, description="this client's certificate (PEM), for a listener that requires one")
    key_file: str | None = Field(None, description="its private key (PEM)")

    @field_validator("key_file")
    @classmethod
    def _pair(cls, v, info: ValidationInfo):
        if (v is None) != (info.data.get("cert_file") is None):
            raise ValueError("cert_file and key_file go together")
        return v

    def kwargs(self) -> dict:
        return {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}


class BrokerSettings(BaseModel):
    """How to reach the broker and which topics to take: shared by the `mqtt:` section and a connector entry."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = "plantguard-ingest"
    topic_prefix: str = "plantguard/v1"
    username: str | None = None
    password: str | None = None
    qos: Literal[0, 1] = 1
    tls: MqttTls | None = Field(None, description="connect over TLS (the broker's 8883 listener); default: plaintext")
    reconnect_min: float = Field(0.5, gt=0, le=3600)
    reconnect_max: float = Field(30.0, gt=0, le=3600)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v or any(c in v for c in "#+\0") or v.startswith("/") or v.endswith("/"):
            raise ValueError("must be non-empty, without wildcards (+, #) and without a leading or trailing '/'")
        return v

    @field_validator("reconnect_max")
    @classmethod
    def _reconnect(cls, v: float, info: ValidationInfo) -> float:
        lo = info.data.get("reconnect_min")
        if lo is not None and not lo <= v:
            raise ValueError(f"reconnect_min ({lo:g}) must be positive and at most reconnect_max ({v:g})")
        return v


class MqttConfig(BrokerSettings):
    """The `mqtt:` section: JSON telemetry from a broker (docs/connectors/mqtt.md)."""

    enabled: bool = False


class MqttConnectorConfig(BrokerSettings, ConnectorConfig):
    """A `connectors:` entry of type mqtt: the broker settings plus what every connector entry has."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    type: Literal["mqtt"] = "mqtt"
    max_payload_bytes: int | None = Field(None, gt=0, description="larger payloads become dead letters (default: the ingest limit)")

    def broker(self) -> MqttConfig:
        return MqttConfig(**self.model_dump(include=set(MqttConfig.model_fields)))


class MqttTuning(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keepalive: int = Field(30, ge=5, le=65535, description="seconds between PINGREQs on an idle connection")
    coalesce_readings: int = Field(20_000, ge=0, description="merge consecutive messages into one pipeline batch up to this many readings (0: one batch per message)")
    linger: float = Field(0.002, ge=0, le=1, description="seconds a partial batch may wait for more messages before it is submitted")
    submit_wait: float = Field(0.5, gt=0, description="backpressure wait per attempt; between attempts stop() is noticed")
    stop_timeout: float = Field(10.0, ge=0, description="how long stop() waits for queued messages to be stored and acknowledged")


def check_config(cfg: MqttConfig) -> None:
    """Checks the fields whose meaning is specific to this connector; raises ConfigError listing every problem."""
    problems = []
    p = cfg.topic_prefix
    if not p or p.startswith("/") or p.endswith("/") or "//" in p:
        problems.append(ConfigProblem("mqtt.topic_prefix", f"must be non-empty topic levels joined by '/', without a leading or trailing '/' (got {p!r})"))
    if any(c in p for c in "+#\x00"):
        problems.append(ConfigProblem("mqtt.topic_prefix", f"must not contain the wildcards '+' or '#' (got {p!r})"))
    if not cfg.client_id or len(cfg.client_id.encode()) > 65535:
        problems.append(ConfigProblem("mqtt.client_id", "must be set: the persistent session is bound to it"))
    if not 0 < cfg.reconnect_min <= cfg.reconnect_max:
        problems.append(ConfigProblem("mqtt.reconnect_min", f"must be above 0 and at most reconnect_max ({cfg.reconnect_min} > {cfg.reconnect_max})"))
    if problems:
        raise ConfigError(problems)


class Topics:
    """Topic filters to subscribe to, and topic -> point-name prefix for parse_payload (cached)."""

    def __init__(self, prefix: str, cache_size: int = 65_536) -> None:
        self.prefix = prefix
        self.ingest = f"{prefix}/ingest"
        self.device_root = f"{prefix}/dev/"
        self.filters = [self.ingest, self.device_root + "/".join(["+"] * DEVICE_LEVELS)]
        self._cache: dict[str, str | None] = {}
        self._cache_size = cache_size

    def point_prefix(self, topic: str) -> str | None:
        """None for the ingest topic, else the device path. Raises ValueError for a topic outside the scheme."""
        try:
            return self._cache[topic]
        except KeyError:
            pass
        if topic == self.ingest:
            out = None
        elif topic.startswith(self.device_root):
            out = topic[len(self.device_root):]
            parts = out.split("/")
            if len(parts) != DEVICE_LEVELS or not all(parts):
                raise ValueError(f"topic {topic!r} must name a device as {self.device_root}<site>/<area>/<line>/<asset>/<device>")
            out = TAG_SEP.join(parts)
        else:
            raise ValueError(f"topic {topic!r} is not under {self.prefix!r}")
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[topic] = out
        return out


def backoff_delay(attempt: int, low: float, high: float, rand: random.Random | None = None) -> float:
    """Delay before reconnect attempt `attempt` (1 = first retry): exponential, capped, with jitter.

    The cap doubles from `low` up to `high`; the delay is drawn uniformly from the upper half of the cap
    ("equal jitter"), so delays keep growing while clients that lost the broker together spread out."""
    r = rand or random
    cap = min(high, low * (2.0 ** max(0, attempt - 1)))
    return max(low, r.uniform(cap / 2.0, cap))
