"""Codec round trips for every scalar metric type (property tests), and the wire details producers differ on."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantguard.connectors.sparkplug import codec, sparkplug_b_pb2
from plantguard.connectors.sparkplug.codec import CodecError, DataType, Metric, Payload

T = DataType
VALUES = {
    T.Int8: st.integers(-(2**7), 2**7 - 1), T.Int16: st.integers(-(2**15), 2**15 - 1),
    T.Int32: st.integers(-(2**31), 2**31 - 1), T.Int64: st.integers(-(2**63), 2**63 - 1),
    T.UInt8: st.integers(0, 2**8 - 1), T.UInt16: st.integers(0, 2**16 - 1),
    T.UInt32: st.integers(0, 2**32 - 1), T.UInt64: st.integers(0, 2**64 - 1),
    T.Float: st.floats(width=32, allow_nan=True, allow_infinity=True), T.Double: st.floats(allow_nan=True, allow_infinity=True),
    T.Boolean: st.booleans(), T.String: st.text(), T.DateTime: st.integers(0, 2**64 - 1),
}
metrics = st.sampled_from(sorted(VALUES)).flatmap(lambda dt: st.builds(
    Metric, name=st.one_of(st.none(), st.text(min_size=1)), alias=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    timestamp=st.one_of(st.none(), st.integers(0, 2**64 - 1)), datatype=st.just(int(dt)),
    value=st.one_of(st.none(), VALUES[dt]), is_historical=st.booleans(), is_transient=st.booleans()))


def same(a, b) -> bool:
    return (math.isnan(a) and math.isnan(b)) if isinstance(a, float) and isinstance(b, float) and math.isnan(a) else a == b


@given(st.lists(metrics, max_size=8), st.one_of(st.none(), st.integers(0, 2**64 - 1)), st.one_of(st.none(), st.integers(0, 255)))
def test_payload_round_trip(ms, ts, seq):
    out = codec.decode_payload(codec.encode_payload(Payload(timestamp=ts, seq=seq, metrics=ms)))
    assert out.timestamp == ts and out.seq == seq and len(out.metrics) == len(ms)
    for a, b in zip(ms, out.metrics):
        assert (b.name, b.alias, b.timestamp, b.datatype) == (a.name, a.alias, a.timestamp, a.datatype)
        assert (b.is_historical, b.is_transient) == (a.is_historical, a.is_transient)
        assert b.is_null == (a.value is None)
        assert same(a.value, b.value) and type(a.value) is type(b.value)


@given(st.sampled_from([T.Int8, T.Int16, T.Int32, T.Int64]).flatmap(lambda dt: st.tuples(st.just(dt), VALUES[dt])))
def test_data_messages_use_the_type_declared_in_the_birth(dt_value):
    dt, v = dt_value  # an alias-only data metric without a datatype: the birth's type decides the sign
    wire = codec.encode_payload(Payload(metrics=[Metric(alias=5, datatype=dt, value=v)]))
    p = sparkplug_b_pb2.Payload.FromString(wire)
    p.metrics[0].ClearField("datatype")
    assert codec.decode_payload(p.SerializeToString(), {5: dt}).metrics[0].value == v


def test_signed_values_accept_both_widths_on_the_wire():
    # Int8 -1 as 0xFF (8-bit) or as 0xFFFFFFFF (32-bit two's complement): both read as -1
    for raw in (0xFF, 0xFFFFFFFF):
        p = sparkplug_b_pb2.Payload()
        m = p.metrics.add(name="x", datatype=T.Int8)
        m.int_value = raw
        assert codec.decode_payload(p.SerializeToString()).metrics[0].value == -1
    assert codec.encode_metric(Metric(name="x", datatype=T.Int32, value=-1)).int_value == 0xFFFFFFFF


def test_numeric_values_and_nulls():
    assert codec.numeric(Metric(datatype=T.Boolean, value=True)) == 1.0
    assert codec.numeric(Metric(datatype=T.UInt64, value=2**64 - 1)) == float(2**64 - 1)
    assert math.isinf(codec.numeric(Metric(datatype=T.Double, value=-math.inf)))
    assert codec.numeric(Metric(datatype=T.String, value="12")) is None
    assert codec.numeric(Metric(datatype=T.Double, is_null=True)) is None
    m = codec.decode_payload(codec.encode_payload(Payload(metrics=[Metric(name="x", datatype=T.Double, is_null=True)]))).metrics[0]
    assert m.is_null and m.value is None


def test_properties_travel_with_the_metric():
    m = Metric(name="x", datatype=T.Float, value=1.0, properties={"Quality": 192, "unit": "bar", "ok": True})
    assert codec.decode_payload(codec.encode_payload(Payload(metrics=[m]))).metrics[0].properties == m.properties


@pytest.mark.parametrize("dt,value", [(T.Int8, 128), (T.UInt8, -1), (T.UInt32, 2**32), (T.Int64, 2**63), (T.DateTime, -1)])
def test_out_of_range_values_are_refused(dt, value):
    with pytest.raises(CodecError):
        codec.encode_payload(Payload(metrics=[Metric(name="x", datatype=dt, value=value)]))


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"\x12\x05\x0a\x03ab", b"\x0a"])
def test_garbage_is_a_codec_error(data):
    with pytest.raises(CodecError):
        codec.decode_payload(data)
