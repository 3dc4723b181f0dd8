"""The bottling line's field devices, for real, on loopback ports: the line PLC as a Modbus TCP server (pymodbus,
one unit id per PLC device), the filler's and the capper's controllers as an OPC UA server (asyncua, a folder
per device). While the demo runs live, the simulator writes its values into them, and the platform reads them
through its own Modbus and OPC UA connectors, exactly as it would read a plant.

    field = FieldDevices(cfg).start()
    cfg_dict["connectors"] = field.connector_configs()   # what `plantguard assess --config` probes too
    sim.add_sink(field)                                   # live values into registers and nodes
    ...
    field.stop()

Registers: a float point is a float32 in two holding registers (big-endian words), an int or state point an
uint32, a bool an uint16; points follow each other in plant-model order from address 0.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from plantguard.domain.model import PlantConfig
from plantguard.domain.readings import RawBatch
from plantguard.testing.mosquitto import free_port

log = logging.getLogger(__name__)

NAMESPACE = "urn:plantguard:demo"
_REG = {"float": ("float32", 2), "int": ("uint32", 2), "state": ("uint32", 2), "bool": ("uint16", 1)}


@dataclass
class _ModbusDevice:
    path: str
    unit: int
    poll: str
    regs: list[int] = field(default_factory=list)
    points: dict[str, tuple[int, str]] = field(default_factory=dict)  # point id -> (address, modbus data type)


@dataclass
class _UaDevice:
    path: str
    folder: str
    nodes: dict[str, str] = field(default_factory=dict)  # point id -> node id
    kinds: dict[str, str] = field(default_factory=dict)  # point id -> plant data type


def _encode(value: float, dtype: str) -> list[int]:
    if dtype == "float32":
        return list(struct.unpack(">HH", struct.pack(">f", float(value))))
    if dtype == "uint32":
        v = int(min(max(round(value), 0), 2**32 - 1))
        return [v >> 16, v & 0xFFFF]
    return [1 if value else 0]


class FieldDevices:
    def __init__(self, cfg: PlantConfig, host: str = "127.0.0.1", modbus_port: int | None = None,
                 opcua_port: int | None = None) -> None:
        self.host = host
        self.modbus_port = modbus_port or free_port(host)
        self.opcua_port = opcua_port or free_port(host)
        self.endpoint = f"opc.tcp://{host}:{self.opcua_port}/plantguard-demo/"
        self.modbus: dict[str, _ModbusDevice] = {}
        self.opcua: dict[str, _UaDevice] = {}
        self._served: dict[str, tuple[str, str, str]] = {}  # tag -> (kind, device path, point id)
        for path, dev in cfg.iter_devices():
            if dev.protocol == "modbus":
                md = _ModbusDevice(path, unit=len(self.modbus) + 1, poll=str(dev.points[0].period) if dev.points else "1s")
                addr = 0
                for p in dev.points:
                    dtype, n = _REG.get(p.data_type.value, ("float32", 2))
                    md.points[p.id] = (addr, dtype)
                    addr += n
                    self._served[f"{path}/{p.id}"] = ("modbus", path, p.id)
                md.regs = [0] * max(addr, 1)
                self.modbus[path] = md
            elif dev.protocol == "opcua":
                parts = path.split("/")
                ud = _UaDevice(path, folder=f"{parts[3]}.{parts[4]}")
                for p in dev.points:
                    ud.nodes[p.id] = f"ns=2;s={ud.folder}.{p.id}"
                    ud.kinds[p.id] = p.data_type.value
                    self._served[f"{path}/{p.id}"] = ("opcua", path, p.id)
                self.opcua[path] = ud
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._mb_server = None
        self._ua_server = None
        self._ua_vars: dict[str, object] = {}  # tag -> asyncua Node
        self.writes = 0

    # -- what the platform reads -------------------------------------------------------------------------------
    def serves(self, tag: str) -> bool:
        return tag in self._served

    def devices(self) -> list[str]:
        return [*self.modbus, *self.opcua]

    def connector_configs(self) -> list[dict]:
        """The Modbus and OPC UA connector sections that read these devices (read-only, as plantguard is by default)."""
        out = []
        if self.modbus:
            out.append({"type": "modbus", "name": "line-plc", "reconnect_min": 0.5, "reconnect_max": 10,
                        "transport": {"kind": "tcp", "host": self.host, "port": self.modbus_port},
                        "devices": [{"device": d.path, "unit": d.unit, "poll": d.poll, "max_rps": 20,
                                     "points": [{"id": pid, "address": a, "data_type": t} for pid, (a, t) in d.points.items()]}
                                    for d in self.modbus.values()]})
        if self.opcua:
            out.append({"type": "opcua", "name": "filler-capper-opcua", "endpoint": self.endpoint, "reconnect_min": 0.5,
                        "reconnect_max": 10,
                        "devices": [{"device": d.path, "publishing_interval": 500,
                                     "nodes": [{"point": pid, "node_id": nid, "sampling_interval": 250} for pid, nid in d.nodes.items()]}
                                    for d in self.opcua.values()]})
        return out

    # -- lifecycle ----------------------------------------------------------------------------------------------------
    def start(self) -> "FieldDevices":
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_servers())
            except BaseException as e:  # noqa: BLE001 - reported to start()
                errors.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_servers())
            loop.close()

        self._thread = threading.Thread(target=main, name="demo-field-devices", daemon=True)
        self._thread.start()
        if not ready.wait(30) or errors:
            raise RuntimeError(f"the simulated field devices could not start: {errors[0] if errors else 'timeout'}")
        return self

    async def _start_servers(self) -> None:
        from asyncua import Server, ua
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        if self.modbus:
            sims = []
            for d in self.modbus.values():
                async def action(fc, start, address, count, registers, set_values, d=d):
                    if set_values is not None:
                        return None  # writes are not offered: the connector is read-only
                    src = d.regs
                    for i in range(count):
                        if 0 <= address + i < len(src):
                            registers[address - start + i] = src[address + i]
                    return None

                sims.append(SimDevice(d.unit, simdata=[SimData(0, count=len(d.regs), values=0, datatype=DataType.REGISTERS)],
                                      action=action))
            self._mb_server = ModbusTcpServer(sims, address=(self.host, self.modbus_port))
            self._mb_task = asyncio.ensure_future(self._mb_server.serve_forever())
        if self.opcua:
            logging.getLogger("asyncua").setLevel(logging.ERROR)  # its notes on the open test endpoint are not for operators
            srv = Server()
            await srv.init()
            srv.set_endpoint(self.endpoint)
            srv.set_server_name("plantguard demo: filler and capper controllers")
            idx = await srv.register_namespace(NAMESPACE)
            objects = srv.nodes.objects
            for d in self.opcua.values():
                folder = await objects.add_folder(idx, d.folder)
                for pid, nid in d.nodes.items():
                    kind = d.kinds[pid]
                    variant = ua.VariantType.Boolean if kind == "bool" else ua.VariantType.Int64 if kind in ("int", "state") else ua.VariantType.Double
                    init = False if kind == "bool" else 0 if kind in ("int", "state") else 0.0
                    var = await folder.add_variable(ua.NodeId.from_string(nid), f"{d.folder}.{pid}", ua.Variant(init, variant))
                    self._ua_vars[f"{d.path}/{pid}"] = (var, variant)
            await srv.start()
            self._ua_server = srv
        for _ in range(50):  # the Modbus listener binds inside serve_forever
            await asyncio.sleep(0.02)
            if self._mb_server is None or getattr(self._mb_server, "transport", True) is not None:
                break

    async def _stop_servers(self) -> None:
        if self._ua_server is not None:
            try:
                await self._ua_server.stop()
            except Exception:  # noqa: BLE001 - shutting down
                log.debug("OPC UA server stop failed", exc_info=True)
        if self._mb_server is not None:
            try:
                await self._mb_server.shutdown()
            except Exception:  # noqa: BLE001
                log.debug("Modbus server stop failed", exc_info=True)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
        self._thread = None

    # -- the simulator's sink ---------------------------------------------------------------------------------------
    def send(self, batch: RawBatch, live: bool) -> None:
        """Live values of the served points into their registers and nodes (the newest per point of the batch)."""
        if not live or not len(batch):
            return
        newest: dict[str, tuple[int, float]] = {}
        for tag, t, v in zip(batch.points, batch.ts.tolist(), batch.value.tolist()):
            if tag in self._served:
                old = newest.get(tag)
                if old is None or t >= old[0]:
                    newest[tag] = (t, v)
        ua_updates = []
        for tag, (t, v) in newest.items():
            kind, path, pid = self._served[tag]
            if kind == "modbus":
                d = self.modbus[path]
                addr, dtype = d.points[pid]
                words = _encode(v, dtype)
                d.regs[addr:addr + len(words)] = words  # one slice assignment: a poll sees old or new, never half
            else:
                ua_updates.append((tag, t, v))
        self.writes += len(newest)
        if ua_updates and self._loop is not None and self._ua_server is not None:
            fut = asyncio.run_coroutine_threadsafe(self._write_ua(ua_updates), self._loop)
            try:
                fut.result(10)
            except Exception as e:  # noqa: BLE001 - a failed write shows as a stale value, never stops the simulator
                log.warning("writing simulated values to the OPC UA server failed: %s", e)

    async def _write_ua(self, updates) -> None:
        from asyncua import ua

        for tag, t, v in updates:
            var, variant = self._ua_vars[tag]
            value = bool(v) if variant == ua.VariantType.Boolean else int(v) if variant == ua.VariantType.Int64 else float(v)
            src = datetime.fromtimestamp(t / 1e6, tz=timezone.utc)
            await var.write_value(ua.DataValue(ua.Variant(value, variant), SourceTimestamp=src, ServerTimestamp=src))


def split_live(batch: RawBatch, field: FieldDevices) -> RawBatch:
    """The readings of a batch that no field device serves (the wireless sensors), for the other sinks."""
    keep = np.fromiter((not field.serves(t) for t in batch.points), bool, count=len(batch))
    if keep.all():
        return batch
    idx = np.flatnonzero(keep)
    return RawBatch([batch.points[i] for i in idx.tolist()], batch.ts[idx], batch.value[idx], batch.quality[idx],
                    batch.src_ts[idx], batch.source, batch.prefix)
