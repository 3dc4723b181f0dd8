"""Configuration of the Sparkplug B connector (one entry under ``connectors:``) and its mapping rules.

    connectors:
      - type: sparkplug
        name: plant-spb
        host: broker.local
        client_id: plantguard-spb
        groups: [Plant1]
        primary_host_id: plantguard        # optional: publish STATE as the primary host application
        devices:
          - {group: Plant1, edge_node: Line3, device: Filler, path: s1/a1/l3/filler/plc1,
             metrics: {"Motor/Speed": speed}}
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from plantguard.connectors.mqtt.config import MqttTls
from plantguard.connectors.base import ConnectorConfig
from plantguard.domain.fields import TAG_SEP
from plantguard.errors import ConfigProblem

NAMESPACE = "spBv1.0"
IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
DEVICE_LEVELS = 5  # site/area/line/asset/device
_SPB_FORBIDDEN = set("/+#")
CONTROL_PREFIXES = ("Node Control/", "Device Control/")  # commands, not measurements


class DeviceMapping(BaseModel):
    """An edge node (device omitted: the node's own metrics) or one of its devices -> a plant device."""

    model_config = ConfigDict(extra="forbid")

    group: str
    edge_node: str
    device: str | None = Field(None, description="Sparkplug device id; omit for the edge node's own metrics")
    path: str = Field(description="plant device path site/area/line/asset/device")
    metrics: dict[str, str] = Field(default_factory=dict, description="metric name -> point id")
    unmapped_metrics: Literal["sanitize", "ignore"] = Field(
        "sanitize", description="metrics not listed: 'sanitize' stores them under the sanitised metric name, 'ignore' drops them")


class SparkplugConfig(ConnectorConfig):
    type: Literal["sparkplug"] = "sparkplug"
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls: MqttTls | None = Field(None, description="connect over TLS (the broker's 8883 listener); default: plaintext")
    client_id: str = Field("plantguard-sparkplug", min_length=1, max_length=128)
    keepalive: int = Field(30, ge=5, le=65535)
    groups: list[str] = Field(min_length=1, description="Sparkplug group ids to subscribe to (spBv1.0/<group>/#)")
    primary_host_id: str | None = Field(None, description="publish STATE birth/death under this host id (Sparkplug 3.0)")
    qos: Literal[1] = Field(1, description="subscription QoS; 1 so nothing is lost before it is stored")
    devices: list[DeviceMapping] = Field(default_factory=list)
    rebirth_interval: float = Field(5.0, gt=0, description="at most one rebirth request per edge node per this many seconds")
    stop_timeout: float = Field(10.0, ge=0, description="how long stop() waits for taken messages to be stored and acknowledged")


def sanitize(metric_name: str) -> str | None:
    """Default rule: 'Motor 1/Speed (rpm)' -> 'Motor_1_Speed_rpm'; None when nothing usable is left."""
    s = re.sub(r"[^A-Za-z0-9_\-]+", "_", metric_name).strip("_-")
    s = re.sub(r"_+", "_", s)[:64].rstrip("_-")
    return s if s and IDENT.match(s) else None


def _spb_id_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    bad = sorted(_SPB_FORBIDDEN & set(value))
    if bad:
        return f"must not contain {' '.join(repr(c) for c in bad)} (got {value!r})"
    return None


def check_config(cfg: SparkplugConfig) -> list[ConfigProblem]:
    """Every problem with its field path, relative to the connector entry."""
    problems: list[ConfigProblem] = []
    for i, g in enumerate(cfg.groups):
        msg = _spb_id_problem(g)
        if msg:
            problems.append(ConfigProblem(f"groups[{i}]", msg))
        elif g == "STATE":
            problems.append(ConfigProblem(f"groups[{i}]", "'STATE' is reserved by Sparkplug for host application state"))
    if len(set(cfg.groups)) != len(cfg.groups):
        problems.append(ConfigProblem("groups", "duplicate group id"))
    if cfg.primary_host_id is not None and (msg := _spb_id_problem(cfg.primary_host_id)):
        problems.append(ConfigProblem("primary_host_id", msg))
    if cfg.reconnect_min > cfg.reconnect_max:
        problems.append(ConfigProblem("reconnect_min", f"must be at most reconnect_max ({cfg.reconnect_min} > {cfg.reconnect_max})"))
    if cfg.password is not None and cfg.username is None:
        problems.append(ConfigProblem("password", "a password needs a username"))
    seen: dict[tuple, int] = {}
    paths: dict[str, int] = {}
    for i, d in enumerate(cfg.devices):
        at = f"devices[{i}]"
        if d.group not in cfg.groups:
            problems.append(ConfigProblem(f"{at}.group", f"{d.group!r} is not in groups ({', '.join(cfg.groups)})"))
        for fld in ("edge_node", "device"):
            v = getattr(d, fld)
            if v is not None and (msg := _spb_id_problem(v)):
                problems.append(ConfigProblem(f"{at}.{fld}", msg))
        key = (d.group, d.edge_node, d.device)
        if key in seen:
            problems.append(ConfigProblem(at, f"maps the same Sparkplug {'device' if d.device else 'edge node'} as devices[{seen[key]}]"))
        seen.setdefault(key, i)
        parts = d.path.split(TAG_SEP)
        if len(parts) != DEVICE_LEVELS or not all(IDENT.match(p) for p in parts):
            problems.append(ConfigProblem(f"{at}.path", f"must be a plant device path site/area/line/asset/device of ids (got {d.path!r})"))
        elif d.path in paths:
            problems.append(ConfigProblem(f"{at}.path", f"already used by devices[{paths[d.path]}]: two sources must not write the same points"))
        paths.setdefault(d.path, i)
        owner: dict[str, str] = {}
        for name, point in d.metrics.items():
            if not IDENT.match(point):
                problems.append(ConfigProblem(f"{at}.metrics.{name}", f"point id must be letters, digits, '_' or '-', at most 64 (got {point!r})"))
            elif point in owner:
                problems.append(ConfigProblem(f"{at}.metrics.{name}", f"point {point!r} is also the target of metric {owner[point]!r}"))
            owner.setdefault(point, name)
    return problems
