"""The disk queue: order, confirm and delete, byte budget with both overflow policies, torn tails, and a
property test over any interleaving of append / confirm / restart."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantguard.connectors.gateway import codec
from plantguard.connectors.gateway.queue import GatewayQueue, QueueFull
from plantguard.domain.readings import DeadLetter, RawBatch


def batch(k: int, n: int = 5) -> RawBatch:
    return RawBatch.build([f"p{i % 3}" for i in range(n)], np.arange(n) + 1000 * k, np.full(n, float(k)),
                          quality=np.arange(n) % 3, src_ts=np.arange(n) + 7, source="t", prefix="s1/a1/l1/pump1/plc1")


def seqs(q: GatewayQueue, after: int = 0) -> list[int]:
    return [s for s, _, _ in q.read(after, max_bytes=1 << 30)]


def values(q: GatewayQueue) -> list[int]:
    out = []
    for _s, _n, rec in q.read(q.confirmed_seq, max_bytes=1 << 30):
        (_seq, _at, payload), = codec.unpack_frame(rec)
        out.append(int(codec.decode_batch(payload)[0].value[0]))
    return out


def test_codec_round_trip_keeps_everything():
    b = batch(3, 7)
    dead = [DeadLetter("t", "bad thing", point="x", ts=5, value="1")]
    b2, d2 = codec.decode_batch(codec.encode_batch(b, dead))
    assert b2.points == b.points and b2.prefix == b.prefix and b2.source == b.source
    for f in ("ts", "value", "quality", "src_ts"):
        assert np.array_equal(getattr(b2, f), getattr(b, f))
    assert d2 == dead


def test_submit_is_a_reading_sink_and_order_is_kept(tmp_path):
    with GatewayQueue(tmp_path) as q:
        for k in range(1, 11):
            assert q.submit(batch(k)).result().accepted == 5
        assert seqs(q) == list(range(1, 11))
        assert seqs(q, 4) == list(range(5, 11))
        assert [s for s, _, _ in q.read(0, max_bytes=1)] == [1]  # at least one record, whatever its size
        h = q.health()
        assert h["depth"]["batches"] == 10 and h["depth"]["readings"] == 50
        assert h["input_rate"]["readings_per_s"] > 0 and h["autonomy_hours"] > 0


def test_confirm_deletes_only_confirmed_and_survives_restart(tmp_path):
    q = GatewayQueue(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    for k in range(1, 21):
        q.append(batch(k))
    n_files = len(list(tmp_path.glob("seg-*.log")))
    q.confirm(12)
    assert seqs(q) == list(range(13, 21))
    assert len(list(tmp_path.glob("seg-*.log"))) < n_files  # whole confirmed segments are gone
    q.close()
    q = GatewayQueue(tmp_path, max_bytes=1 << 20, segment_bytes=300)
    assert seqs(q) == list(range(13, 21)) and q.confirmed_seq == 12 and q.next_seq == 21
    q.confirm(20)
    assert not list(tmp_path.glob("seg-*.log")) and q.health()["depth"]["bytes"] == 0
    q.close()
    q = GatewayQueue(tmp_path)
    assert q.next_seq == 21  # seq stays monotonic with an empty queue
    assert q.append(batch(21)) == 21
    q.close()


def test_drop_oldest_counts_and_reports_dropped_ranges(tmp_path):
    rec_size = len(codec.pack_record(1, 0, codec.encode_batch(batch(1))))
    q = GatewayQueue(tmp_path, max_bytes=rec_size * 10, segment_bytes=rec_size * 2, min_free_bytes=0)
    for k in range(1, 31):
        q.append(batch(k))
    h = q.health()
    assert h["depth"]["bytes"] <= rec_size * 10
    kept = seqs(q)
    assert kept == list(range(kept[0], 31))  # the newest survive, in order, without holes
    dropped = h["dropped"]
    assert dropped["batches"] == kept[0] - 1 and dropped["readings"] == 5 * (kept[0] - 1)
    covered = sorted(s for a, b in dropped["ranges"] for s in range(a, b + 1))
    assert covered == list(range(1, kept[0]))  # every dropped seq is announced
    q.close()
    assert GatewayQueue(tmp_path).health()["dropped"]["batches"] == kept[0] - 1  # and remembered


def test_reject_new_refuses_and_counts(tmp_path):
    rec_size = len(codec.pack_record(1, 0, codec.encode_batch(batch(1))))
    q = GatewayQueue(tmp_path, max_bytes=rec_size * 4, segment_bytes=rec_size * 2, overflow="reject_new", min_free_bytes=0)
    for k in range(1, 5):
        q.append(batch(k))
    with pytest.raises(QueueFull):
        q.submit(batch(5))
    assert seqs(q) == [1, 2, 3, 4]
    assert q.health()["rejected"] == {"batches": 1, "readings": 5}
    q.confirm(2)  # room again once the central side confirms
    assert q.append(batch(5)) == 5
    q.close()


@pytest.mark.parametrize("cut", [1, 10, 30, -1])
def test_torn_tail_is_truncated_everything_before_survives(tmp_path, cut):
    q = GatewayQueue(tmp_path)
    for k in range(1, 6):
        q.append(batch(k))
    q.close()
    (seg,) = tmp_path.glob("seg-*.log")
    data = seg.read_bytes()
    last = len(codec.pack_record(5, 0, codec.encode_batch(batch(5))))
    if cut > 0:  # a crash in the middle of writing record 5
        seg.write_bytes(data[: len(data) - last + cut])
    else:  # record 5 complete in length but one byte damaged
        seg.write_bytes(data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:])
    q = GatewayQueue(tmp_path)
    assert seqs(q) == [1, 2, 3, 4] and q.next_seq == 5
    assert q.health()["truncated_bytes"] > 0
    assert q.append(batch(5)) == 5  # appended after the cut, not after the garbage
    q.close()
    q = GatewayQueue(tmp_path)
    assert values(q) == [1, 2, 3, 4, 5]
    q.close()


ops = st.lists(st.one_of(st.tuples(st.just("append"), st.integers(1, 4)), st.tuples(st.just("confirm"), st.integers(0, 6)),
                         st.tuples(st.just("restart"), st.integers(0, 200))), max_size=40)


@settings(max_examples=60)
@given(ops)
def test_any_interleaving_keeps_order_and_loses_nothing_unconfirmed(tmp_path_factory, script):
    d = tmp_path_factory.mktemp("q")
    kw = dict(max_bytes=1 << 30, segment_bytes=700, min_free_bytes=0, fsync="never")
    q = GatewayQueue(d, **kw)
    pending: list[int] = []  # the model: values appended and not confirmed, in order
    confirmed = 0
    value = 0
    for op, arg in script:
        if op == "append":
            for _ in range(arg):
                value += 1
                s = q.append(batch(value))
                assert s == value  # seq is monotonic and gapless across restarts
                pending.append(value)
        elif op == "confirm":
            k = min(arg, len(pending))
            if k:
                confirmed = pending[k - 1]
                q.confirm(confirmed)
                pending = pending[k:]
        else:
            q.close()
            if arg and pending:  # a torn write after the last good record, as a crash leaves it
                seg = sorted(d.glob("seg-*.log"))[-1]
                with open(seg, "ab") as f:
                    f.write(os.urandom(arg % 97 + 1))
            q = GatewayQueue(d, **kw)
        assert values(q) == pending
        assert q.confirmed_seq == confirmed
    q.close()
