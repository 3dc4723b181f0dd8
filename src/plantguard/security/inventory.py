"""The facts the posture audit reads, gathered from the running platform: the plant model's devices and their
inventory, the connectors that read each one (with their protocol settings), the writable points, the broker
credentials, each device's last reading, and the identity recorded when the device was first audited."""

from __future__ import annotations

import json
from collections import defaultdict

from plantguard.domain.fields import us_of
from plantguard.security.posture import DeviceFacts


def _links(model) -> dict[str, list[dict]]:
    from plantguard.connectors.registry import validate

    out: dict[str, list[dict]] = defaultdict(list)
    writable: dict[str, list[str]] = defaultdict(list)
    try:
        connectors = validate(model.connectors)
    except Exception:  # noqa: BLE001 - the platform validated them at start; an audit must not fail on them
        connectors = []
    for _cls, c in connectors:
        t = c.type
        if t == "modbus":
            tr = c.transport
            ep = f"{tr.host}:{tr.port}" if hasattr(tr, "host") else getattr(tr, "serial_port", "")
            for d in c.devices:
                out[d.device].append({"type": "modbus", "name": c.name, "endpoint": ep})
                writable[d.device] += [f"{d.device}/{p.id}" for p in d.points if getattr(p, "writable", False)]
        elif t == "opcua":
            for d in c.devices:
                out[d.device].append({"type": "opcua", "name": c.name, "endpoint": c.endpoint, "security_mode": c.security.mode,
                                      "server_certificate": c.security.server_certificate})
        elif t == "sparkplug":
            for d in c.devices:
                out[d.path].append({"type": "sparkplug", "name": c.name, "endpoint": f"{c.host}:{c.port}", "tls": c.tls is not None,
                                    "client_id": c.client_id})
        elif t == "mqtt":
            out["*mqtt"].append({"type": "mqtt", "name": c.name, "endpoint": f"{c.host}:{c.port}", "tls": c.tls is not None,
                                 "client_id": c.client_id})
    mq = model.section("mqtt")
    if mq is not None and getattr(mq, "enabled", False):
        out["*mqtt"].append({"type": "mqtt", "name": "mqtt", "endpoint": f"{mq.host}:{mq.port}", "tls": mq.tls is not None, "client_id": mq.client_id})
    return out, writable


def gather(model, index, latest, *, broker=None, ca=None, first_seen: dict[str, dict] | None = None) -> list[DeviceFacts]:
    """`model`: the plant model and settings; `index`: its PlantIndex; `latest(tags)`: the newest readings."""
    links, writable = _links(model)
    mqtt_links = links.pop("*mqtt", [])
    creds: dict[str, list[dict]] = defaultdict(list)
    if broker is not None:
        for c in broker.credentials():
            creds[c.device].append({"username": c.username, "created_at": c.created_at, "expires_at": c.expires_at,
                                    "revoked_at": c.revoked_at, "suspended": c.suspended, "kind": "password"})
    if ca is not None:
        for c in ca.certificates():
            ends = min(c.not_after, c.expires_at) if c.expires_at is not None else c.not_after
            creds[c.device].append({"username": f"certificate {c.serial}", "created_at": c.created_at, "expires_at": ends,
                                    "revoked_at": c.revoked_at, "suspended": c.suspended, "kind": "certificate",
                                    "key_type": c.key_type, "key_bits": c.key_bits})
    out = []
    refs = list(index.devices())
    tags = [f"{r.path}/{p.id}" for r in refs for p in r.device.points]
    latest = latest(tags) if tags else {}
    for r in refs:
        dev = r.device
        own = list(links.get(r.path, []))
        if dev.protocol == "mqtt" and not own:
            own += mqtt_links  # a device that reaches plantguard over the MQTT topics
        seen = [latest.get(f"{r.path}/{p.id}") for p in dev.points]
        last = max((x["ts"] for x in seen if x), default=None)
        periods = [us_of(p.period) for p in dev.points if p.period is not None]
        inv = dev.inventory.model_dump(exclude_none=True) if dev.inventory is not None else {}
        out.append(DeviceFacts(r.path, inv, own, writable.get(r.path, []), dev.mode == "shadow",
                               min(periods) if periods else None, int(last) if last is not None else None,
                               creds.get(r.path, []), (first_seen or {}).get(r.path)))
    return out


IDENTITY_KEYS = ("vendor", "product", "model", "firmware", "serial")


def first_seen(store) -> dict[str, dict]:
    return {d: json.loads(j) for d, j in store.fetch("SELECT device, identity FROM device_identity")}


def remember_identities(store, facts: list[DeviceFacts], now: int) -> int:
    """Records the identity of devices audited for the first time (with at least one identity field)."""
    import numpy as np

    known = {d for (d,) in store.fetch("SELECT device FROM device_identity")}
    devs, idents = [], []
    for f in facts:
        ident = {k: f.inventory[k] for k in IDENTITY_KEYS if f.inventory.get(k)}
        if f.path not in known and ident:
            devs.append(f.path)
            idents.append(json.dumps(ident))
    if devs:
        store.insert_columns("device_identity", {"device": np.array(devs, dtype=object), "first_seen_at": np.full(len(devs), now, np.int64),
                                                 "identity": np.array(idents, dtype=object)})
    return len(devs)
