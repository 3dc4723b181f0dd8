"""Block-read planning and decoding.

Points are data (a frozen PointSpec each). `plan` sorts a device's points per table by address and merges
neighbours into reads of at most `max_block` registers (`max_block_bits` for coils and discrete inputs),
tolerating up to `max_gap` unused registers between two points. One read per block per poll fans out to all
its points: `BlockDecoder` decodes a block's registers with numpy, one vectorised pass per group of points that
share a data type and byte/word order.

Byte order is the order of the two bytes inside each register, word order the order of the registers of a
multi-register value. big/big is the Modbus default ("ABCD"); word little is "CDAB", byte little "BADC",
both little "DCBA".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from plantguard.connectors.modbus.config import BIT_TABLES, DeviceConfig

_NP = {"int16": ">i2", "uint16": ">u2", "int32": ">i4", "uint32": ">u4", "float32": ">f4", "float64": ">f8", "bits": ">u2"}
_STRUCT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f", "float64": ">d", "bits": ">H"}


@dataclass(frozen=True, kw_only=True)
class PointSpec:
    id: str
    table: str
    address: int
    count: int  # registers (bits for coil/discrete)
    data_type: str = "uint16"
    byte_order: str = "big"
    word_order: str = "big"
    bit: int | None = None
    length: int | None = None
    scale: float = 1.0
    offset: float = 0.0
    deadband: float = 0.0
    writable: bool = False

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True)
class Block:
    table: str
    start: int
    count: int
    points: tuple[int, ...]  # indices into the device's point list

    def __str__(self) -> str:
        return f"{self.table} {self.start}-{self.start + self.count - 1}"


def specs_of(d: DeviceConfig) -> list[PointSpec]:
    out = []
    for p in d.points:
        out.append(PointSpec(id=p.id, table=p.table, address=p.address, count=p.registers if p.table not in BIT_TABLES else 1,
                             data_type=p.data_type, byte_order=p.byte_order or "big", word_order=p.word_order or "big",
                             bit=p.bit, length=p.length, scale=p.scale, offset=p.offset,
                             deadband=d.report.deadband if p.deadband is None else p.deadband, writable=p.writable))
    return out


def plan(points: list[PointSpec], *, max_gap: int = 10, max_block: int = 125, max_block_bits: int = 2000) -> list[Block]:
    """Greedy merge per table: a point joins the current block when the gap before it is at most max_gap and
    the block stays within its limit; otherwise it starts the next block. Blocks come out per table in address
    order; every point is in exactly one block."""
    blocks: list[Block] = []
    for table in ("holding", "input", "coil", "discrete"):
        idx = sorted((i for i, p in enumerate(points) if p.table == table), key=lambda i: (points[i].address, points[i].end))
        limit = max_block_bits if table in BIT_TABLES else max_block
        cur: list[int] = []
        start = end = 0
        for i in idx:
            p = points[i]
            if p.count > limit:
                raise ValueError(f"point {p.id!r} spans {p.count} registers, more than one read ({limit})")
            if cur and p.address - end <= max_gap and max(end, p.end) - start <= limit:
                cur.append(i)
                end = max(end, p.end)
                continue
            if cur:
                blocks.append(Block(table, start, end - start, tuple(cur)))
            cur, start, end = [i], p.address, p.end
        if cur:
            blocks.append(Block(table, start, end - start, tuple(cur)))
    return blocks


# -- decoding ---------------------------------------------------------------------------------------------------
def words_to_bytes(words: np.ndarray, byte_order: str, word_order: str) -> np.ndarray:
    """(k, n) registers -> (k, 2n) bytes in big-endian value order."""
    if word_order == "little":
        words = words[:, ::-1]
    w = np.ascontiguousarray(words, dtype=">u2" if byte_order == "big" else "<u2")
    return w.view(np.uint8).reshape(len(words), -1)


def encode_value(spec: PointSpec, value: float) -> list[int]:
    """Engineering value -> the registers (or the one bit) to write; the inverse of decoding."""
    if spec.table in BIT_TABLES:
        return [1 if value else 0]
    if spec.data_type == "bool":
        raise ValueError("a bit inside a register cannot be written alone (read-modify-write would race the PLC)")
    raw = (value - spec.offset) / spec.scale
    code = _STRUCT[spec.data_type]
    if code[-1] not in "fd":
        if abs(raw - round(raw)) > 1e-9:
            raise ValueError(f"{value!r} is not representable as {spec.data_type} with scale {spec.scale:g} and offset {spec.offset:g}")
        raw = int(round(raw))
    try:
        data = struct.pack(code, raw)
    except struct.error as e:
        raise ValueError(f"{value!r} does not fit in {spec.data_type}: {e}") from None
    chunks = [data[i:i + 2] for i in range(0, len(data), 2)]
    if spec.byte_order == "little":
        chunks = [c[::-1] for c in chunks]
    regs = [int.from_bytes(c, "big") for c in chunks]
    return regs[::-1] if spec.word_order == "little" else regs


def decode_string(spec: PointSpec, regs: np.ndarray) -> str:
    b = words_to_bytes(regs.reshape(1, -1), spec.byte_order, "big")[0].tobytes()[: spec.length]
    return b.split(b"\0", 1)[0].decode("latin-1").rstrip()


class BlockDecoder:
    """Decodes one block's registers into float64 values for its numeric points (strings separately)."""

    def __init__(self, block: Block, points: list[PointSpec]) -> None:
        self.block = block
        groups: dict[tuple, list[int]] = {}
        self.strings: list[int] = []
        for i in block.points:
            p = points[i]
            if p.data_type == "string":
                self.strings.append(i)
                continue
            key = ("bit",) if block.table in BIT_TABLES else (
                ("regbit",) if p.data_type == "bool" else (p.data_type, p.byte_order, p.word_order if p.count > 1 else "big"))
            groups.setdefault(key, []).append(i)
        self.groups = []
        for key, idx in groups.items():
            pts = [points[i] for i in idx]
            n = pts[0].count
            offs = np.array([[p.address - block.start + j for j in range(n)] for p in pts], np.intp)
            scale = np.array([p.scale for p in pts])
            offset = np.array([p.offset for p in pts])
            bits = np.array([p.bit or 0 for p in pts], np.uint16)
            self.groups.append((key, np.array(idx, np.intp), offs, scale, offset, bits,
                                bool(np.all(scale == 1.0) and np.all(offset == 0.0))))
        self.numeric = np.concatenate([g[1] for g in self.groups]) if self.groups else np.empty(0, np.intp)
        self.points = points

    def decode(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """values: the block's registers (uint16) or bits (uint8) -> (point indices, float64 values)."""
        out = []
        for key, idx, offs, scale, offset, bits, plain in self.groups:
            if key[0] == "bit":
                v = values[offs[:, 0]].astype(np.float64)
            elif key[0] == "regbit":
                v = ((values[offs[:, 0]] >> bits) & 1).astype(np.float64)
            else:
                dtype, bo, wo = key
                if offs.shape[1] == 1 and bo == "big":
                    raw = values[offs[:, 0]]
                    v = (raw.view(np.int16) if dtype == "int16" else raw).astype(np.float64)
                else:
                    b = words_to_bytes(values[offs], bo, wo)
                    v = b.view(_NP[dtype]).reshape(-1).astype(np.float64)
                if not plain:
                    v = v * scale + offset
            out.append(v)
        return self.numeric, (np.concatenate(out) if out else np.empty(0))

    def decode_strings(self, values: np.ndarray) -> dict[str, str]:
        out = {}
        for i in self.strings:
            p = self.points[i]
            o = p.address - self.block.start
            out[p.id] = decode_string(p, values[o:o + p.count])
        return out
