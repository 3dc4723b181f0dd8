"""OrderedAcks, the bookkeeping the MQTT source and Sparkplug share: PUBACKs only after the durable write, in
arrival order, never across connections."""

import random
import threading

from hypothesis import given, settings, strategies as st

from plantguard.connectors.acks import NO_ACK, REFUSED, OrderedAcks


def make():
    sent = []
    acks = OrderedAcks()
    acks.connected(lambda mid, qos: sent.append(mid))
    return acks, sent


def test_acks_go_out_in_arrival_order_only_after_their_write():
    acks, sent = make()
    t1, t2, t3 = (acks.track(m, 1) for m in (1, 2, 3))
    acks.done(t2)
    assert sent == []            # 1 is not stored yet: 2 must wait
    acks.done(t1)
    assert sent == [1, 2]
    acks.done(t3)
    assert sent == [1, 2, 3] and acks.in_flight == 0 and acks.acked == 3


def test_qos0_needs_no_ack_and_refused_when_not_live():
    acks, sent = make()
    assert acks.track(9, 0) is NO_ACK
    acks.done(NO_ACK)
    acks.lost()
    assert acks.track(1, 1) is REFUSED
    acks.done(REFUSED)
    assert sent == []


def test_a_message_split_into_several_writes_waits_for_all():
    acks, sent = make()
    t = acks.track(1, 1)
    acks.expect(t, 2)
    acks.done(t)
    assert sent == []
    acks.done(t)
    assert sent == [1]
    t0 = acks.track(2, 1)
    acks.expect(t0, 0)  # nothing to store: acknowledged at once
    assert sent == [1, 2]


def test_tickets_of_an_old_connection_are_never_acked_on_the_new_one():
    acks, sent = make()
    old = acks.track(1, 1)
    acks.connected(lambda mid, qos: sent.append(("new", mid)))
    acks.done(old)
    new = acks.track(1, 1)  # paho reuses packet ids on the new connection
    acks.done(new)
    assert sent == [("new", 1)]


def test_poison_stops_acknowledging_and_wait_drained_is_bounded():
    acks, sent = make()
    t = acks.track(1, 1)
    acks.poison()
    acks.done(t)
    assert sent == [] and not acks.live
    acks, sent = make()
    acks.track(1, 1)
    assert acks.wait_drained(0.01) == 1 and acks.in_flight == 0


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 200), st.integers(0, 2**32 - 1))
def test_completions_from_another_thread_in_any_order_keep_arrival_order(n, seed):
    acks, sent = make()
    tickets = [acks.track(m, 1) for m in range(n)]
    order = tickets[:]
    random.Random(seed).shuffle(order)
    th = threading.Thread(target=lambda: [acks.done(t) for t in order])
    th.start()
    th.join()
    assert sent == list(range(n))
