"""Browse and import: walk a server's address space from Objects and produce (a) plant-model points (id from
the browse path, unit from EngineeringUnits, range from EURange, data type from DataType) and (b) the
connector's node list for one device.

    python -m plantguard.connectors.opcua.browse opc.tcp://plc:4840 --device site/area/line/asset/device
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys

import yaml

from plantguard.connectors.opcua.client import OpcUaError, Session, VariableInfo
from plantguard.connectors.opcua.config import OpcUaConfig

# OPC UA built-in types -> plant-model data types; anything else (text, structures, arrays) is skipped.
DATA_TYPES = {
    "Boolean": "bool",
    **{t: "int" for t in ("SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Integer", "UInteger")},
    **{t: "float" for t in ("Float", "Double", "Number", "Decimal")},
}


def point_id(path: list[str], used: set[str]) -> str:
    """A plant-model point id from a browse path: 'Pump/Motor.Speed' -> 'Pump_Motor_Speed', unique in `used`."""
    base = re.sub(r"[^A-Za-z0-9_\-]+", "_", "_".join(path)).strip("_-") or "point"
    if not base[0].isalnum():
        base = "p" + base
    base = base[:60]
    pid, k = base, 2
    while pid in used:
        pid, k = f"{base}_{k}", k + 1
    used.add(pid)
    return pid


def import_variables(variables: list[VariableInfo], *, device: str, sampling_interval: float = 500.0,
                     publishing_interval: float = 1000.0, truncated: bool = False) -> dict:
    points: list[dict] = []
    nodes: list[dict] = []
    skipped: list[str] = []
    used: set[str] = set()
    for v in variables:
        where = f"{'/'.join(v.path)} ({v.node_id})"
        dtype = DATA_TYPES.get(v.data_type)
        if dtype is None:
            skipped.append(f"{where}: data type {v.data_type or 'unknown'} is not numeric")
            continue
        if v.value_rank >= 0:
            skipped.append(f"{where}: arrays are not imported")
            continue
        pid = point_id(v.path, used)
        p: dict = {"id": pid, "name": "/".join(v.path), "data_type": dtype}
        if v.unit:
            p["unit"] = v.unit
        if v.eu_range and v.eu_range[0] < v.eu_range[1]:
            p["range"] = {"low": v.eu_range[0], "high": v.eu_range[1]}
        p["period"] = f"{max(sampling_interval, publishing_interval) / 1000:g}s"
        points.append(p)
        nodes.append({"point": pid, "node_id": v.node_id, "sampling_interval": sampling_interval})
    return {"points": points,
            "connector": {"devices": [{"device": device, "publishing_interval": publishing_interval, "nodes": nodes}]},
            "skipped": skipped, "truncated": truncated}


async def browse(cfg: OpcUaConfig, *, device: str, max_depth: int = 6, max_nodes: int = 2000,
                 sampling_interval: float = 500.0, publishing_interval: float = 1000.0) -> dict:
    """Connects with the connector's settings (endpoint, security), walks, and imports. Raises OpcUaError."""
    session = await Session.open(cfg)
    try:
        variables, truncated = await session.walk(max_depth=max_depth, max_nodes=max_nodes)
    finally:
        await session.close()
    return import_variables(variables, device=device, sampling_interval=sampling_interval,
                            publishing_interval=publishing_interval, truncated=truncated)


def to_yaml(result: dict) -> str:
    head = ["# plant model: the points of the device (paste under its `points:`)"]
    tail = ["# connector: paste under the opcua connector's `devices:`"]
    notes = [f"# skipped {s}" for s in result["skipped"]]
    if result["truncated"]:
        notes.append("# the walk stopped at its depth or node limit; raise --max-depth / --max-nodes for more")
    return "\n".join(head + [yaml.safe_dump({"points": result["points"]}, sort_keys=False).rstrip()] + tail
                     + [yaml.safe_dump({"devices": result["connector"]["devices"]}, sort_keys=False).rstrip()] + notes) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m plantguard.connectors.opcua.browse",
                                 description="Walk an OPC UA server from Objects and print plant points and connector nodes as YAML.")
    ap.add_argument("endpoint", help="opc.tcp://host:port[/path]")
    ap.add_argument("--device", required=True, help="plant device path site/area/line/asset/device")
    ap.add_argument("--max-depth", type=int, default=6, help="levels below Objects to walk (default 6)")
    ap.add_argument("--max-nodes", type=int, default=2000, help="nodes to visit at most (default 2000)")
    ap.add_argument("--sampling-interval", type=float, default=500.0, help="ms, for every imported node (default 500)")
    ap.add_argument("--publishing-interval", type=float, default=1000.0, help="ms, for the device (default 1000)")
    ap.add_argument("--security-mode", choices=["None", "Sign", "SignAndEncrypt"], default="None", help="message security mode")
    ap.add_argument("--policy", default="Basic256Sha256", help="security policy (default Basic256Sha256)")
    ap.add_argument("--certificate", help="client certificate file")
    ap.add_argument("--private-key", help="client private key file")
    ap.add_argument("--server-certificate", help="server certificate to trust")
    ap.add_argument("--username", help="user name; the password is read from PLANTGUARD_OPCUA_PASSWORD")
    a = ap.parse_args(argv)
    try:
        cfg = OpcUaConfig.model_validate({
            "type": "opcua", "name": "browse", "endpoint": a.endpoint,
            "security": {"mode": a.security_mode, "policy": a.policy, "certificate": a.certificate,
                         "private_key": a.private_key, "server_certificate": a.server_certificate},
            "username": a.username, "password": os.environ.get("PLANTGUARD_OPCUA_PASSWORD") if a.username else None,
            "devices": [{"device": a.device, "nodes": [{"point": "x", "node_id": "i=2258"}]}],
        })
        result = asyncio.run(browse(cfg, device=a.device, max_depth=a.max_depth, max_nodes=a.max_nodes,
                                    sampling_interval=a.sampling_interval, publishing_interval=a.publishing_interval))
    except (OpcUaError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(to_yaml(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
