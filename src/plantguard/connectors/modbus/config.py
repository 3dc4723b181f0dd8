"""Configuration schema of the Modbus connector (one bus: a TCP endpoint or a serial line, with the devices
behind it) and the cross-field checks run at load time (`check_config`), which report every problem with its
path relative to the connector (``devices[0].points[3].word_order``)."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plantguard.connectors.base import ConnectorConfig
from plantguard.errors import ConfigProblem
from plantguard.timeutil import parse_duration_us

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")]
Table = Literal["holding", "input", "coil", "discrete"]
DataType = Literal["bits", "bool", "int16", "uint16", "int32", "uint32", "float32", "float64", "string"]

REGISTERS = {"bits": 1, "bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}
BIT_TABLES = ("coil", "discrete")
MAX_REGISTERS = 125  # protocol limit of function codes 3 and 4
MAX_BITS = 2000  # protocol limit of function codes 1 and 2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TcpTransport(_Strict):
    kind: Literal["tcp", "rtu_tcp"] = Field("tcp", description="tcp: Modbus TCP; rtu_tcp: RTU frames over a TCP socket (serial-to-Ethernet converter in transparent mode)")
    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)
    connections: int = Field(1, ge=1, le=16, description="sockets to this endpoint (devices are spread over them); many PLCs accept only one or two")


class RtuTransport(_Strict):
    kind: Literal["rtu"] = "rtu"
    serial_port: str = Field(min_length=1, description="e.g. /dev/ttyUSB0")
    baudrate: int = Field(19200, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "E"  # the Modbus over serial line specification's default
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    inter_frame_ms: float | None = Field(None, ge=0, le=1000, description="silence between frames; default 3.5 character times (1.75 ms above 19200 baud)")

    def frame_gap_s(self) -> float:
        if self.inter_frame_ms is not None:
            return self.inter_frame_ms / 1000
        bits_per_char = 1 + self.bytesize + (self.parity != "N") + self.stopbits
        return 0.00175 if self.baudrate > 19200 else 3.5 * bits_per_char / self.baudrate


class ReportConfig(_Strict):
    deadband: float = Field(0.0, ge=0, description="default deadband of the device's points (engineering units)")
    heartbeat: str | float = Field("60s", description="an unchanged value is resent after this long")

    _v = field_validator("heartbeat")(lambda v: (parse_duration_us(v), v)[1])


class PointConfig(_Strict):
    id: Ident
    table: Table = "holding"
    address: int = Field(ge=0, le=65535, description="protocol address, 0-based")
    data_type: DataType = "uint16"
    length: int | None = Field(None, ge=1, le=250, description="string length in characters")
    bit: int | None = Field(None, ge=0, le=15, description="bool in a holding/input register: which bit (0 = least significant)")
    byte_order: Literal["big", "little"] | None = Field(None, description="bytes within each register; default big")
    word_order: Literal["big", "little"] | None = Field(None, description="registers of a multi-register value; default big")
    scale: float = 1.0
    offset: float = 0.0
    deadband: float | None = Field(None, ge=0, description="overrides the device's report deadband")
    writable: bool = False

    @property
    def registers(self) -> int:
        """Span in registers (or bits for coil/discrete)."""
        if self.data_type == "string":
            return math.ceil((self.length or 0) / 2)
        return 1 if self.table in BIT_TABLES else REGISTERS[self.data_type]


class DeviceConfig(_Strict):
    device: str = Field(description="plant-model device path site/area/line/asset/device")
    unit: int = Field(1, ge=0, le=255, description="unit (slave) id")
    poll: str | float = Field("1s", description="poll period, e.g. '100ms', '1s'")
    max_rps: float = Field(20.0, gt=0, description="most requests per second sent to this device")
    max_concurrent: int = Field(1, ge=1, le=16, description="requests in flight at once to this device")
    max_gap: int | None = Field(None, ge=0, le=MAX_REGISTERS, description="overrides the connector's max_gap")
    max_block: int | None = Field(None, ge=1, le=MAX_REGISTERS, description="overrides the connector's max_block")
    report: ReportConfig = Field(default_factory=ReportConfig)
    points: list[PointConfig] = Field(default_factory=list)

    _v = field_validator("poll")(lambda v: (parse_duration_us(v), v)[1])

    @property
    def poll_us(self) -> int:
        return parse_duration_us(self.poll)


class ModbusConfig(ConnectorConfig):
    type: Literal["modbus"] = "modbus"
    transport: Annotated[Union[TcpTransport, RtuTransport], Field(discriminator="kind")]
    timeout_ms: float = Field(200, ge=1, le=60_000, description="answer timeout per request, milliseconds")
    max_gap: int = Field(10, ge=0, le=MAX_REGISTERS, description="unused registers tolerated between points merged into one read")
    max_block: int = Field(MAX_REGISTERS, ge=1, le=MAX_REGISTERS, description="most registers per read (function 3/4)")
    max_block_bits: int = Field(MAX_BITS, ge=1, le=MAX_BITS, description="most bits per read (function 1/2)")
    devices: list[DeviceConfig] = Field(default_factory=list)

    def gap_block(self, d: DeviceConfig) -> tuple[int, int, int]:
        return (self.max_gap if d.max_gap is None else d.max_gap,
                self.max_block if d.max_block is None else d.max_block, self.max_block_bits)


def check_config(cfg: ModbusConfig) -> list[ConfigProblem]:
    """Register maths and cross-field rules; returns every problem found (empty list: valid)."""
    # Long on purpose: a flat list of independent rules, each a few lines, read and reviewed as one checklist.
    probs: list[ConfigProblem] = []
    add = lambda path, msg: probs.append(ConfigProblem(path, msg))  # noqa: E731
    paths: dict[str, int] = {}
    if not cfg.devices:
        add("devices", "configure at least one device")
    if isinstance(cfg.transport, TcpTransport) and cfg.transport.kind == "tcp":
        pass
    for di, d in enumerate(cfg.devices):
        dp = f"devices[{di}]"
        parts = d.device.split("/")
        if len(parts) != 5 or not all(parts):
            add(f"{dp}.device", f"must be a plant device path site/area/line/asset/device (got {d.device!r})")
        if d.device in paths:
            add(f"{dp}.device", f"device {d.device!r} is already polled by devices[{paths[d.device]}]")
        paths.setdefault(d.device, di)
        if isinstance(cfg.transport, RtuTransport) and not 1 <= d.unit <= 247:
            add(f"{dp}.unit", f"a serial-line unit id is 1..247 (0 is broadcast; got {d.unit})")
        if not d.points:
            add(f"{dp}.points", "configure at least one point")
        gap, block, block_bits = cfg.gap_block(d)
        ids: dict[str, int] = {}
        spans: dict[str, list[tuple[int, int, int | None, int]]] = {}
        for pi, p in enumerate(d.points):
            pp = f"{dp}.points[{pi}]"
            if p.id in ids:
                add(f"{pp}.id", f"duplicate point id {p.id!r} (also at {dp}.points[{ids[p.id]}])")
            ids.setdefault(p.id, pi)
            bit_table = p.table in BIT_TABLES
            if bit_table and p.data_type != "bool":
                add(f"{pp}.data_type", f"a {p.table} is one bit: data_type must be bool (got {p.data_type})")
            if p.data_type == "string":
                if p.length is None:
                    add(f"{pp}.length", "a string needs its length (characters)")
            elif p.length is not None:
                add(f"{pp}.length", "only strings have a length")
            if p.bit is not None and (bit_table or p.data_type != "bool"):
                add(f"{pp}.bit", "bit selects one bit of a holding/input register: only for data_type bool on those tables")
            if p.data_type == "bool" and not bit_table and p.bit is None:
                add(f"{pp}.bit", "a bool in a register needs the bit number (0-15); or use table coil/discrete")
            n_regs = p.registers if not bit_table else 1
            if p.word_order is not None and (bit_table or n_regs < 2 or p.data_type == "string"):
                add(f"{pp}.word_order", f"word order only applies to multi-register numbers, not to {p.data_type}" + (f" in a {p.table}" if bit_table else ""))
            if p.byte_order is not None and bit_table:
                add(f"{pp}.byte_order", f"a {p.table} has no bytes to order")
            if p.data_type in ("bool", "bits", "string") and (p.scale != 1.0 or p.offset != 0.0):
                add(f"{pp}.scale", f"scale and offset apply to numbers, not to {p.data_type}")
            if p.scale == 0:
                add(f"{pp}.scale", "scale 0 would make every reading 0")
            if p.writable and p.table in ("input", "discrete"):
                add(f"{pp}.writable", f"{p.table} {'registers' if p.table == 'input' else 'inputs'} are read-only in Modbus")
            if p.writable and p.data_type == "string":
                add(f"{pp}.writable", "writing strings is not supported")
            if p.address + n_regs - 1 > 65535:
                add(f"{pp}.address", f"address {p.address} + {n_regs} {'bits' if bit_table else 'registers'} goes beyond 65535")
            limit = block_bits if bit_table else block
            if n_regs > limit:
                add(f"{pp}.length", f"{n_regs} registers do not fit in one read (max_block {limit})")
            spans.setdefault(p.table, []).append((p.address, p.address + n_regs, p.bit, pi))
        for table, lst in spans.items():
            lst.sort()
            for i, (a, end, bit, pi) in enumerate(lst):
                for b, end2, bit2, pj in lst[i + 1:]:
                    if b >= end:
                        break
                    first, second = min(pi, pj), max(pi, pj)
                    if bit is not None and bit2 is not None and a == b and end == end2:
                        if bit == bit2:
                            add(f"{dp}.points[{second}].bit", f"bit {bit} of {table} {a} is also read by {dp}.points[{first}]")
                        continue
                    what = "duplicate address" if a == b else "overlapping addresses"
                    add(f"{dp}.points[{second}].address", f"{what}: {table} {b}-{end2 - 1} overlaps {dp}.points[{first}] ({table} {a}-{end - 1})")
        if d.points and not probs:
            from plantguard.connectors.modbus.planner import plan, specs_of

            blocks = plan(specs_of(d), max_gap=gap, max_block=block, max_block_bits=block_bits)
            need = len(blocks) / (d.poll_us / 1e6) if d.poll_us else float("inf")
            if need > d.max_rps * 1.0001:
                add(f"{dp}.poll", f"{len(blocks)} reads every {d.poll} need {need:.1f} requests/s, above max_rps {d.max_rps:g}: poll less often or raise max_rps")
        if d.poll_us <= 0:
            add(f"{dp}.poll", "the poll period must be positive")
    return probs
