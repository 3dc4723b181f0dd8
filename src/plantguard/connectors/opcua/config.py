"""Configuration of the OPC UA connector: one endpoint (one session), one subscription per plant device, one
monitored item per node. Intervals are in milliseconds, as OPC UA servers and engineering tools state them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from plantguard.connectors.base import ConnectorConfig
from plantguard.errors import ConfigProblem

# Node ids in the OPC UA string form (Part 6, 5.3.1.10): optional namespace index, then one identifier type.
NODE_ID = re.compile(
    r"^(?:ns=(?P<ns>\d+);)?(?:i=(?P<i>\d+)|s=(?P<s>.+)|g=(?P<g>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})"
    r"|b=(?P<b>[A-Za-z0-9+/]+={0,2}))$"
)
POINT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
DEVICE_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}(?:/[A-Za-z0-9][A-Za-z0-9_\-]{0,63}){4}$")
PLACEHOLDER_SECRETS = {"changeme", "change-me", "change_me", "password", "secret", "admin", "default", "opcua", "123456", "xxx"}
POLICIES = ("Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpcUaNode(_Strict):
    point: str = Field(description="point id inside the device (the plant model's Point.id)")
    node_id: str = Field(description="OPC UA node id, e.g. 'ns=2;s=Pump.Speed' or 'ns=2;i=1001'")
    sampling_interval: float = Field(500.0, description="how often the server samples the value, ms")
    deadband: float = Field(0.0, ge=0, description="absolute deadband of the data-change filter (0: every change)")
    queue_size: int = Field(1, ge=1, le=10_000, description="values the server keeps between publish responses")


class OpcUaDevice(_Strict):
    device: str = Field(description="plant device path 'site/area/line/asset/device'")
    publishing_interval: float = Field(1000.0, description="how often the server sends the changes of this device, ms")
    nodes: list[OpcUaNode] = Field(min_length=1)


class OpcUaSecurity(_Strict):
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    policy: Literal["Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = "Basic256Sha256"
    certificate: str | None = Field(None, description="client application instance certificate (DER or PEM)")
    private_key: str | None = Field(None, description="private key of the client certificate (PEM or DER)")
    private_key_password: str | None = None
    server_certificate: str | None = Field(None, description="the server's certificate to trust (pinned); without it "
                                           "the certificate the server presents is accepted as is")


class OpcUaConfig(ConnectorConfig):
    type: Literal["opcua"] = "opcua"
    endpoint: str = Field(description="opc.tcp://host:port/path")
    security: OpcUaSecurity = Field(default_factory=OpcUaSecurity)
    username: str | None = None
    password: str | None = None
    application_uri: str = Field("urn:plantguard:opcua:client", description="must match the URI in the client certificate")
    timeout: float = Field(4.0, gt=0, description="request timeout, seconds")
    watchdog_interval: float = Field(1.0, gt=0, description="how often the session is checked when no data flows, seconds")
    keepalive: float = Field(5.0, gt=0, description="the server sends a keep-alive when a subscription was silent this long, seconds")
    devices: list[OpcUaDevice] = Field(min_length=1)


def check(cfg: OpcUaConfig) -> list[ConfigProblem]:
    """Cross-field checks; every problem with its path relative to the connector entry."""
    out: list[ConfigProblem] = []
    if not re.match(r"^opc\.tcp://[^/:]+(:\d+)?(/.*)?$", cfg.endpoint):
        out.append(ConfigProblem("endpoint", f"must look like opc.tcp://host:port[/path] (got {cfg.endpoint!r})"))
    sec = cfg.security
    if sec.mode != "None":
        for f in ("certificate", "private_key"):
            if not getattr(sec, f):
                out.append(ConfigProblem(f"security.{f}", f"required with security mode {sec.mode}"))
    for f in ("certificate", "private_key", "server_certificate"):
        p = getattr(sec, f)
        if p and not Path(p).is_file():
            out.append(ConfigProblem(f"security.{f}", f"file not found: {p}"))
    if (cfg.username is None) != (cfg.password is None):
        out.append(ConfigProblem("password" if cfg.password is None else "username", "username and password go together"))
    if cfg.password is not None and (cfg.password.strip().lower() in PLACEHOLDER_SECRETS or not cfg.password.strip()):
        out.append(ConfigProblem("password", "placeholder or empty password; set the real one"))
    devices: dict[str, int] = {}
    for di, d in enumerate(cfg.devices):
        dp = f"devices[{di}]"
        if not DEVICE_PATH.match(d.device):
            out.append(ConfigProblem(f"{dp}.device", f"must be a plant device path 'site/area/line/asset/device' (got {d.device!r})"))
        elif d.device in devices:
            out.append(ConfigProblem(f"{dp}.device", f"device {d.device!r} is already at devices[{devices[d.device]}]"))
        devices.setdefault(d.device, di)
        if d.publishing_interval <= 0:
            out.append(ConfigProblem(f"{dp}.publishing_interval", f"must be positive (got {d.publishing_interval:g})"))
        points: dict[str, int] = {}
        nodes: dict[str, int] = {}
        for ni, n in enumerate(d.nodes):
            np_ = f"{dp}.nodes[{ni}]"
            if not POINT_ID.match(n.point):
                out.append(ConfigProblem(f"{np_}.point", f"letters, digits, '_' or '-', at most 64 (got {n.point!r})"))
            elif n.point in points:
                out.append(ConfigProblem(f"{np_}.point", f"duplicate point id {n.point!r} (also at {dp}.nodes[{points[n.point]}])"))
            points.setdefault(n.point, ni)
            if not NODE_ID.match(n.node_id):
                out.append(ConfigProblem(f"{np_}.node_id", f"not a node id like 'ns=2;s=Pump.Speed' or 'ns=2;i=1001' (got {n.node_id!r})"))
            elif n.node_id in nodes:
                out.append(ConfigProblem(f"{np_}.node_id", f"node {n.node_id} is already monitored at {dp}.nodes[{nodes[n.node_id]}]"))
            nodes.setdefault(n.node_id, ni)
            if n.sampling_interval <= 0:
                out.append(ConfigProblem(f"{np_}.sampling_interval", f"must be positive, ms (got {n.sampling_interval:g})"))
    return out
