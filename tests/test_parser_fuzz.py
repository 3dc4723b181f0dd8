"""Every parser of outside input, fuzzed with hypothesis: ingest JSON (HTTP and MQTT), Sparkplug B protobuf, the
gateway batch codec and frames, CSV import rows. None may raise anything but its documented refusal, and what a
parser accepts is whole: every reading it returns is well formed (nothing half-parsed reaches the store).

`make test` runs a small sample per parser; `make fuzz` runs PLANTGUARD_FUZZ_EXAMPLES (25,000) per parser, over
100,000 cases in all."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from plantguard.connectors.csv.importer import CsvOptions, read_csv
from plantguard.connectors.gateway import codec as gw
from plantguard.connectors.sparkplug import codec as spb
from plantguard.domain.readings import RawBatch
from plantguard.errors import InvalidInput, PlantguardError
from plantguard.ingest.parse import parse_columns, parse_payload

N = int(os.environ.get("PLANTGUARD_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=20), st.just("2026-01-01T00:00:00Z"), st.just(1e308), st.just(-0.0))
keys = st.sampled_from(["readings", "point", "p", "ts", "t", "value", "v", "quality", "q", "src_ts", "x", ""])
docs = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=5), st.dictionaries(keys, kids, max_size=6)),
                    max_leaves=30)
# the standard library writes what orjson refuses (integers beyond 64 bits, NaN and Infinity as bare words)
raw_json = st.one_of(docs.map(lambda d: json.dumps(d).encode()),
                     st.binary(max_size=300), st.text(max_size=300).map(str.encode))


def well_formed(b: RawBatch) -> None:
    n = len(b)
    assert len(b.ts) == len(b.value) == len(b.quality) == len(b.src_ts) == n
    assert b.ts.dtype == np.int64 and b.value.dtype == np.float64
    assert all(isinstance(p, str) and p for p in b.points)


@FUZZ
@given(raw_json, st.sampled_from([None, "s/a/l/x/d"]))
def test_ingest_json_never_raises_but_its_refusal(raw, prefix):
    try:
        batch, dead = parse_payload(raw, "fuzz", prefix, max_bytes=4096)
    except InvalidInput:
        return
    well_formed(batch)
    assert all(d.reason for d in dead)
    try:
        parse_columns(raw, "fuzz", prefix, 4096)
    except InvalidInput:
        pass


@FUZZ
@given(st.binary(max_size=400))
def test_sparkplug_payloads_never_raise_but_codec_errors(data):
    try:
        p = spb.decode_payload(data)
    except spb.CodecError:
        return
    for m in p.metrics:
        spb.numeric(m)  # any value the codec decodes can be asked for its number


@FUZZ
@given(st.binary(max_size=400))
def test_gateway_batches_and_frames_never_raise_but_invalid_input(data):
    try:
        b, dead = gw.decode_batch(data)
        well_formed(b)
    except InvalidInput:
        pass
    try:
        gw.unpack_frame(data)
    except InvalidInput:
        pass


def _valid_batch(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return gw.encode_batch(RawBatch.build([f"p{i}" for i in range(n)], rng.integers(0, 2**50, n), rng.normal(size=n)))


@FUZZ
@given(st.integers(0, 50), st.integers(0, 10**6), st.data())
def test_a_damaged_gateway_record_is_refused_whole(n, seed, data):
    rec = gw.pack_record(7, 123, _valid_batch(n, seed))
    pos = data.draw(st.integers(0, len(rec) - 1))
    bad = bytearray(rec)
    bad[pos] ^= data.draw(st.integers(1, 255))
    try:
        recs = gw.unpack_frame(bytes(bad))
    except InvalidInput:
        return
    raise AssertionError(f"a flipped byte at {pos} passed the checksum: {recs}")


csv_cell = st.one_of(st.text(max_size=12), st.sampled_from(["2026-01-01T00:00:00Z", "1700000000000", "nan", "inf", "-1e309", "", "\"", ";"]))


@settings(max_examples=max(10, N // 5), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(csv_cell, min_size=0, max_size=5), max_size=30), st.sampled_from([",", ";"]))
def test_csv_rows_never_raise_but_invalid_input(rows, delim):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.csv"
        lines = [delim.join(["point", "ts", "value"])] + [delim.join(r) for r in rows]
        path.write_bytes("\n".join(lines).encode("utf-8", "replace"))
        try:
            for chunk in read_csv(path, CsvOptions(delimiter=delim, tz="UTC")):
                well_formed(chunk.batch)
                assert len(chunk.lines) == len(chunk.batch)
        except PlantguardError:
            pass
