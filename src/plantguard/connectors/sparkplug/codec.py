"""Sparkplug B payloads <-> plain Python values. The only module touching the generated protobuf classes.

Value encoding follows the Sparkplug 3.0 specification: signed integers travel in the unsigned fields as two's
complement (Int8/16/32 in int_value, Int64 in long_value), DateTime is ms since the epoch in long_value, and a
metric with no value carries is_null. Decoding is lenient where producers differ (an Int8 of -1 may arrive as
0xFF or as 0xFFFFFFFF: only the type's own bits count) and strict where a value cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from google.protobuf.message import DecodeError

from plantguard.connectors.sparkplug import sparkplug_b_pb2 as pb


class CodecError(ValueError):
    """A payload or metric that cannot be encoded or decoded; the message says why."""


class DataType(IntEnum):
    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15
    DataSet = 16
    Bytes = 17
    File = 18
    Template = 19


_SIGNED_BITS = {DataType.Int8: 8, DataType.Int16: 16, DataType.Int32: 32, DataType.Int64: 64}
_UNSIGNED_BITS = {DataType.UInt8: 8, DataType.UInt16: 16, DataType.UInt32: 32, DataType.UInt64: 64}
_INT_FIELD = {DataType.Int8: "int_value", DataType.Int16: "int_value", DataType.Int32: "int_value", DataType.Int64: "long_value",
              DataType.UInt8: "int_value", DataType.UInt16: "int_value", DataType.UInt32: "int_value", DataType.UInt64: "long_value"}
_STRING_TYPES = (DataType.String, DataType.Text, DataType.UUID)
NUMERIC_TYPES = frozenset(_SIGNED_BITS) | frozenset(_UNSIGNED_BITS) | {DataType.Float, DataType.Double, DataType.Boolean, DataType.DateTime}


@dataclass(frozen=True, kw_only=True)
class Metric:
    name: str | None = None
    alias: int | None = None
    timestamp: int | None = None  # ms since the epoch
    datatype: int = DataType.Unknown
    value: Any = None
    is_null: bool = False
    is_historical: bool = False
    is_transient: bool = False
    properties: dict[str, Any] = field(default_factory=dict)  # scalar properties only (e.g. Quality)


@dataclass(frozen=True, kw_only=True)
class Payload:
    timestamp: int | None = None  # ms since the epoch
    seq: int | None = None
    metrics: list[Metric] = field(default_factory=list)
    uuid: str | None = None
    body: bytes | None = None


# -- encode ---------------------------------------------------------------------------------------------------
def _put_value(m: pb.Payload.Metric, dt: DataType, value: Any) -> None:
    if dt in _SIGNED_BITS:
        bits = _SIGNED_BITS[dt]
        v = int(value)
        if not -(1 << (bits - 1)) <= v < (1 << (bits - 1)):
            raise CodecError(f"{v} does not fit {dt.name}")
        setattr(m, _INT_FIELD[dt], v & ((1 << (64 if bits == 64 else 32)) - 1))
    elif dt in _UNSIGNED_BITS:
        v = int(value)
        if not 0 <= v < (1 << _UNSIGNED_BITS[dt]):
            raise CodecError(f"{v} does not fit {dt.name}")
        setattr(m, _INT_FIELD[dt], v)
    elif dt is DataType.Float:
        m.float_value = float(value)
    elif dt is DataType.Double:
        m.double_value = float(value)
    elif dt is DataType.Boolean:
        m.boolean_value = bool(value)
    elif dt in _STRING_TYPES:
        m.string_value = str(value)
    elif dt is DataType.DateTime:
        v = int(value)
        if not 0 <= v < (1 << 64):
            raise CodecError(f"DateTime {v} must be ms since the epoch, not negative")
        m.long_value = v
    elif dt in (DataType.Bytes, DataType.File):
        m.bytes_value = bytes(value)
    elif dt is DataType.Unknown:  # data messages may leave the type to the birth: pick the field from the value
        if isinstance(value, bool):
            m.boolean_value = value
        elif isinstance(value, int):
            m.long_value = value & (2**64 - 1)
        elif isinstance(value, float):
            m.double_value = value
        elif isinstance(value, str):
            m.string_value = value
        elif isinstance(value, (bytes, bytearray)):
            m.bytes_value = bytes(value)
        else:
            raise CodecError(f"cannot encode {type(value).__name__} without a data type")
    else:
        raise CodecError(f"cannot encode a value of data type {dt.name}")


def encode_metric(metric: Metric, out: pb.Payload.Metric | None = None) -> pb.Payload.Metric:
    m = out if out is not None else pb.Payload.Metric()
    if metric.name is not None:
        m.name = metric.name
    if metric.alias is not None:
        m.alias = metric.alias
    if metric.timestamp is not None:
        m.timestamp = metric.timestamp
    try:
        dt = DataType(metric.datatype)
    except ValueError:
        raise CodecError(f"unknown data type {metric.datatype}") from None
    if dt is not DataType.Unknown:
        m.datatype = dt
    if metric.is_historical:
        m.is_historical = True
    if metric.is_transient:
        m.is_transient = True
    if metric.is_null or metric.value is None:
        m.is_null = True
    else:
        _put_value(m, dt, metric.value)
    for k, v in metric.properties.items():
        m.properties.keys.append(k)
        pv = m.properties.values.add()
        if isinstance(v, bool):
            pv.type, pv.boolean_value = DataType.Boolean, v
        elif isinstance(v, int):
            pv.type, pv.long_value = DataType.Int64, v & (2**64 - 1)
        elif isinstance(v, float):
            pv.type, pv.double_value = DataType.Double, v
        else:
            pv.type, pv.string_value = DataType.String, str(v)
    return m


def encode_payload(payload: Payload) -> bytes:
    p = pb.Payload()
    if payload.timestamp is not None:
        p.timestamp = payload.timestamp
    if payload.seq is not None:
        p.seq = payload.seq
    if payload.uuid is not None:
        p.uuid = payload.uuid
    if payload.body is not None:
        p.body = payload.body
    for metric in payload.metrics:
        encode_metric(metric, p.metrics.add())
    return p.SerializeToString()


# -- decode ---------------------------------------------------------------------------------------------------
def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _value_of(m: pb.Payload.Metric, dt: int) -> Any:
    which = m.WhichOneof("value")
    if which is None:
        return None
    raw = getattr(m, which)
    if dt in _SIGNED_BITS:
        if which not in ("int_value", "long_value"):
            raise CodecError(f"{DataType(dt).name} metric carries {which}")
        return _signed(raw, _SIGNED_BITS[dt])
    if dt in _UNSIGNED_BITS:
        if which not in ("int_value", "long_value"):
            raise CodecError(f"{DataType(dt).name} metric carries {which}")
        return raw & ((1 << _UNSIGNED_BITS[dt]) - 1)
    if which in ("dataset_value", "template_value", "extension_value"):
        return raw  # structured values are passed on as protobuf objects; the connector does not store them
    return raw


def _scalar_property(pv) -> Any:
    which = pv.WhichOneof("value")
    if which is None or pv.is_null:
        return None
    v = getattr(pv, which)
    if which in ("int_value", "long_value") and pv.type in _SIGNED_BITS:
        return _signed(v, _SIGNED_BITS[DataType(pv.type)])
    return v if which not in ("propertyset_value", "propertysets_value", "extension_value") else None


def decode_metric(m: pb.Payload.Metric, datatype: int | None = None) -> Metric:
    """`datatype`: the type declared in the birth, for data messages that leave it out."""
    dt = m.datatype if m.HasField("datatype") else (datatype if datatype is not None else DataType.Unknown)
    props = {}
    if m.HasField("properties"):
        for k, pv in zip(m.properties.keys, m.properties.values):
            props[k] = _scalar_property(pv)
    return Metric(
        name=m.name if m.HasField("name") else None,
        alias=m.alias if m.HasField("alias") else None,
        timestamp=m.timestamp if m.HasField("timestamp") else None,
        datatype=dt,
        value=None if m.is_null else _value_of(m, dt),
        is_null=bool(m.is_null) or m.WhichOneof("value") is None,
        is_historical=m.is_historical,
        is_transient=m.is_transient,
        properties=props,
    )


def parse_payload(data: bytes) -> pb.Payload:
    """Raw protobuf message; raises CodecError when the bytes are not a Sparkplug B payload."""
    p = pb.Payload()
    try:
        p.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise CodecError(f"not a Sparkplug B payload: {e}") from None
    return p


def decode_payload(data: bytes, datatypes: dict | None = None) -> Payload:
    """`datatypes` maps metric name or alias -> type declared in the birth."""
    p = parse_payload(data)
    types = datatypes or {}
    metrics = []
    for m in p.metrics:
        key = m.name if m.HasField("name") else m.alias
        metrics.append(decode_metric(m, types.get(key)))
    return Payload(
        timestamp=p.timestamp if p.HasField("timestamp") else None,
        seq=p.seq if p.HasField("seq") else None,
        metrics=metrics,
        uuid=p.uuid if p.HasField("uuid") else None,
        body=p.body if p.HasField("body") else None,
    )


def numeric(metric: Metric) -> float | None:
    """The value as a float reading, or None when the metric has no numeric value (null, text, bytes...)."""
    if metric.is_null or metric.value is None:
        return None
    dt = metric.datatype
    if dt in NUMERIC_TYPES:
        return float(metric.value)
    if dt == DataType.Unknown and isinstance(metric.value, (int, float, bool)):
        return float(metric.value)
    return None

