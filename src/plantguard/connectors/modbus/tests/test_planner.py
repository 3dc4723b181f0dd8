"""Planner, codec and configuration checks: unit and property tests (no server needed)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantguard.connectors.modbus.config import ModbusConfig, check_config
from plantguard.connectors.modbus.planner import BlockDecoder, PointSpec, encode_value, plan
from plantguard.connectors.registry import validate
from plantguard.errors import ConfigError

FMT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}
NREG = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}


def pt(i, address, count=1, table="holding", **kw):
    return PointSpec(id=f"p{i}", table=table, address=address, count=count, **kw)


def test_plan_merges_neighbours_within_gap_and_limit():
    pts = [pt(0, 0), pt(1, 1, 2), pt(2, 13), pt(3, 30), pt(4, 100, 4), pt(5, 0, table="coil"), pt(6, 8, table="coil")]
    blocks = plan(pts, max_gap=10, max_block=125)
    assert [(b.table, b.start, b.count, b.points) for b in blocks] == [
        ("holding", 0, 14, (0, 1, 2)), ("holding", 30, 1, (3,)), ("holding", 100, 4, (4,)), ("coil", 0, 9, (5, 6))]
    assert [str(b) for b in plan(pts, max_gap=100, max_block=50)][:2] == ["holding 0-30", "holding 100-103"]


def test_plan_rejects_a_point_larger_than_a_read():
    with pytest.raises(ValueError):
        plan([pt(0, 0, 126)], max_block=125)


points_st = st.lists(st.tuples(st.sampled_from(["holding", "input", "coil", "discrete"]), st.integers(0, 3000),
                               st.sampled_from([1, 2, 4, 10])), min_size=1, max_size=60)


@settings(max_examples=300)
@given(points_st, st.integers(0, 30), st.integers(10, 125), st.integers(1, 2000))
def test_plan_properties(raw, max_gap, max_block, max_bits):
    pts = [pt(i, a, 1 if t in ("coil", "discrete") else c, table=t) for i, (t, a, c) in enumerate(raw)]
    blocks = plan(pts, max_gap=max_gap, max_block=max_block, max_block_bits=max_bits)
    seen = sorted(i for b in blocks for i in b.points)
    assert seen == list(range(len(pts)))  # every point exactly once
    by_table: dict[str, list] = {}
    for b in blocks:
        limit = max_bits if b.table in ("coil", "discrete") else max_block
        assert 1 <= b.count <= limit
        assert 0 <= b.start and b.start + b.count <= 65536
        members = sorted((pts[i] for i in b.points), key=lambda p: p.address)
        assert all(p.table == b.table and b.start <= p.address and p.end <= b.start + b.count for p in members)
        assert members[0].address == b.start and max(p.end for p in members) == b.start + b.count  # no wasted edges
        end = members[0].end
        for p in members[1:]:  # gaps inside a block never exceed max_gap
            assert p.address - end <= max_gap
            end = max(end, p.end)
        by_table.setdefault(b.table, []).append(b)
    for table, bl in by_table.items():  # consecutive blocks could not have been merged
        limit = max_bits if table in ("coil", "discrete") else max_block
        for a, b in zip(bl, bl[1:]):
            nxt_end = max(pts[i].end for i in b.points if pts[i].address == b.start)
            assert b.start - (a.start + a.count) > max_gap or max(a.start + a.count, nxt_end) - a.start > limit


def device_registers(dtype, value, bo, wo):
    """Independent encoder: what a device holding `value` has in its registers (struct, not the codec)."""
    data = struct.pack(">" + FMT[dtype], value)
    chunks = [data[i:i + 2] for i in range(0, len(data), 2)]
    if bo == "little":
        chunks = [c[::-1] for c in chunks]
    regs = [int.from_bytes(c, "big") for c in chunks]
    return regs[::-1] if wo == "little" else regs


def value_st(dtype):
    return {"int16": st.integers(-2**15, 2**15 - 1), "uint16": st.integers(0, 2**16 - 1), "int32": st.integers(-2**31, 2**31 - 1),
            "uint32": st.integers(0, 2**32 - 1), "float64": st.floats(allow_nan=False, allow_infinity=False),
            "float32": st.floats(width=32, allow_nan=False, allow_infinity=False)}[dtype]


@settings(max_examples=400)
@given(st.data(), st.sampled_from(list(FMT)), st.sampled_from(["big", "little"]), st.sampled_from(["big", "little"]),
       st.integers(0, 5), st.sampled_from([(1.0, 0.0), (0.1, -40.0), (2.0, 5.0)]))
def test_decode_matches_struct_for_every_order(data, dtype, bo, wo, lead, so):
    values = [data.draw(value_st(dtype)) for _ in range(3)]
    scale, offset = so
    n = NREG[dtype]
    pts, regs = [], [0] * lead
    for i, v in enumerate(values):
        pts.append(PointSpec(id=f"p{i}", table="holding", address=len(regs), count=n, data_type=dtype, byte_order=bo,
                             word_order=wo if n > 1 else "big", scale=scale, offset=offset))
        regs += device_registers(dtype, v, bo, wo)
    (block,) = plan(pts, max_gap=10, max_block=125)
    idx, out = BlockDecoder(block, pts).decode(np.array(regs[block.start:], np.uint16))
    got = dict(zip(idx.tolist(), out.tolist()))
    for i, v in enumerate(values):
        assert got[i] == pytest.approx(float(v) * scale + offset, rel=1e-12, abs=1e-9)
        if so == (1.0, 0.0):  # the write encoder is the exact inverse
            assert encode_value(pts[i], v) == device_registers(dtype, v, bo, wo)


def test_bits_bools_and_strings():
    pts = [PointSpec(id="b3", table="holding", address=0, count=1, data_type="bool", bit=3),
           PointSpec(id="b15", table="holding", address=0, count=1, data_type="bool", bit=15),
           PointSpec(id="raw", table="holding", address=1, count=1, data_type="bits"),
           PointSpec(id="name", table="holding", address=2, count=3, data_type="string", length=5)]
    (block,) = plan(pts)
    regs = np.array([0b1000_0000_0000_1000, 0xBEEF, *(int.from_bytes(b, "big") for b in (b"PU", b"MP", b"1\0"))], np.uint16)
    dec = BlockDecoder(block, pts)
    idx, out = dec.decode(regs)
    assert dict(zip(idx.tolist(), out.tolist())) == {0: 1.0, 1: 1.0, 2: 0xBEEF}
    assert dec.decode_strings(regs) == {"name": "PUMP1"}
    coil = [PointSpec(id="c", table="coil", address=7, count=1, data_type="bool")]
    (cb,) = plan(coil)
    assert BlockDecoder(cb, coil).decode(np.array([1], np.uint8))[1].tolist() == [1.0]
    assert encode_value(coil[0], True) == [1]


def base_cfg(points, **dev):
    return {"type": "modbus", "name": "plc", "transport": {"kind": "tcp", "host": "127.0.0.1", "port": 502},
            "devices": [{"device": "s1/a1/l1/pump1/plc1", "unit": 1, "poll": "1s", "points": points, **dev}]}


def test_every_config_error_is_reported_with_its_path():
    points = [
        {"id": "ok", "address": 0, "data_type": "float32"},
        {"id": "ok", "address": 10},                                        # duplicate id
        {"id": "w1", "address": 20, "word_order": "little"},                # word order on a single register
        {"id": "s", "address": 30, "data_type": "string"},                  # string without length
        {"id": "c", "table": "coil", "address": 0, "data_type": "int16"},   # coil with a numeric type
        {"id": "far", "address": 65535, "data_type": "float64"},            # beyond 65535
        {"id": "ov", "address": 1, "data_type": "uint16"},                  # overlaps the float32 at 0-1
        {"id": "dup", "address": 0, "table": "input"},
        {"id": "dup2", "address": 0, "table": "input"},                     # duplicate address
        {"id": "ro", "address": 5, "table": "input", "writable": True},     # input registers are read-only
        {"id": "bb", "address": 40, "data_type": "bool"},                   # bool in a register without bit
        {"id": "bo", "table": "discrete", "address": 9, "data_type": "bool", "byte_order": "little"},
    ]
    doc = base_cfg(points)
    doc["devices"].append({"device": "bad-path", "unit": 2, "points": [{"id": "x", "address": 0}]})
    with pytest.raises(ConfigError) as e:
        validate([doc])
    paths = {p.path: p.message for p in e.value.problems}
    dp = "connectors[0].devices[0].points"
    for path in [f"{dp}[1].id", f"{dp}[2].word_order", f"{dp}[3].length", f"{dp}[4].data_type", f"{dp}[5].address",
                 f"{dp}[6].address", f"{dp}[8].address", f"{dp}[9].writable", f"{dp}[10].bit", f"{dp}[11].byte_order",
                 "connectors[0].devices[1].device"]:
        assert path in paths, (path, sorted(paths))
    assert "duplicate address" in paths[f"{dp}[8].address"] and "overlapping" in paths[f"{dp}[6].address"]


def test_structural_errors_have_paths_and_rate_is_checked():
    with pytest.raises(ConfigError) as e:
        validate([{**base_cfg([{"id": "x", "address": -1, "table": "flash"}]), "timeout_ms": 0, "max_block": 200}])
    paths = {p.path for p in e.value.problems}
    assert {"connectors[0].devices[0].points[0].address", "connectors[0].devices[0].points[0].table",
            "connectors[0].timeout_ms", "connectors[0].max_block"} <= paths
    cfg = ModbusConfig.model_validate(base_cfg([{"id": f"p{i}", "address": i * 200} for i in range(5)], poll="100ms", max_rps=10))
    (prob,) = check_config(cfg)
    assert prob.path == "devices[0].poll" and "50.0 requests/s" in prob.message
    assert check_config(ModbusConfig.model_validate(base_cfg([{"id": "x", "address": 0, "data_type": "float32", "word_order": "little"}]))) == []
