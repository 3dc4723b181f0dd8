"""Acknowledging MQTT messages only after their durable write, in arrival order: the bookkeeping the MQTT source and
the Sparkplug connector share.

    acks = OrderedAcks()
    acks.connected(client.ack)             # CONNACK: a new connection generation, nothing pending
    t = acks.track(mid, qos)               # on a message; REFUSED when the connection is lost or poisoned
    acks.expect(t, 2)                      # optional: the message became 2 writes; acknowledged after both
    acks.done(t)                           # a write of it is durable (writer thread); PUBACKs go out in order
    acks.poison()                          # a write failed: nothing more is acknowledged on this connection

MQTT 3.1.1 (4.6) wants PUBACKs in the order the PUBLISH packets arrived, and a message acknowledged before its
readings are stored would be lost if the process died in between. So each QoS 1 message gets a ticket in a FIFO;
`done` marks it, and only the completed head of the FIFO is acknowledged. A ticket belongs to one connection
generation: after a reconnect (or a failed write, which drops the connection so that the broker redelivers), tickets
of the old connection are never acknowledged on the new one, since paho has forgotten their packet ids.

Thread-safe: messages arrive on paho's thread (or an asyncio loop), completions on the pipeline's writer thread,
stop() on another; every method holds one lock for a few operations and never blocks on I/O. `ack` (paho's
client.ack) is called under the lock so that the order holds.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable


class Ticket:
    """One QoS 1 message waiting for its PUBACK."""

    __slots__ = ("mid", "qos", "gen", "waiting", "done")

    def __init__(self, mid: int, qos: int, gen: int) -> None:
        self.mid, self.qos, self.gen = mid, qos, gen
        self.waiting = 1
        self.done = False


#: returned by track() for a QoS 0 message: it is processed, and there is nothing to acknowledge
NO_ACK = None


class _Refused:
    """track() when the connection is lost, poisoned or stopping: leave the message unacknowledged."""

    def __repr__(self) -> str:
        return "REFUSED"


REFUSED = _Refused()


class OrderedAcks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._pending: deque[Ticket] = deque()
        self._gen = 0
        self._live = False
        self._ack: Callable[[int, int], None] | None = None
        self.acked = 0

    # -- connection generations -------------------------------------------------------------------------
    def connected(self, ack: Callable[[int, int], None], live: bool = True) -> None:
        """A new connection: `ack(mid, qos)` sends its PUBACKs; `live` False while stopping."""
        with self._lock:
            self._gen += 1
            self._pending.clear()
            self._ack = ack
            self._live = live
            self._drained.notify_all()

    def lost(self) -> None:
        """The connection is gone: paho discards its unacknowledged packet ids, so must we."""
        self.poison()

    def poison(self) -> None:
        """Nothing more is acknowledged on this connection (the caller drops it; the broker redelivers the rest)."""
        with self._lock:
            self._gen += 1
            self._pending.clear()
            self._live = False
            self._drained.notify_all()

    @property
    def live(self) -> bool:
        return self._live

    # -- messages -----------------------------------------------------------------------------------------
    def track(self, mid: int, qos: int) -> Ticket | None | _Refused:
        """A ticket for a QoS 1 message (in arrival order), NO_ACK for QoS 0, REFUSED when not live."""
        with self._lock:
            if not self._live:
                return REFUSED
            if not qos:
                return NO_ACK
            t = Ticket(mid, qos, self._gen)
            self._pending.append(t)
            return t

    def expect(self, ticket: Ticket | None | _Refused, writes: int) -> None:
        """The message became `writes` separate writes; it is acknowledged once all of them are durable
        (0: at once)."""
        if not isinstance(ticket, Ticket):
            return
        with self._lock:
            ticket.waiting = writes
        if writes <= 0:
            self._finish([ticket], count=False)

    def done(self, tickets: Ticket | None | _Refused | list) -> None:
        """One write of each ticket is durable; acknowledges the completed head of the queue."""
        ts = tickets if isinstance(tickets, list) else [tickets]
        self._finish([t for t in ts if isinstance(t, Ticket)], count=True)

    def _finish(self, tickets: list[Ticket], count: bool) -> None:
        with self._lock:
            for t in tickets:
                if count:
                    t.waiting -= 1
                if t.waiting <= 0:
                    t.done = True
            pending = self._pending
            while pending and pending[0].done:
                t = pending.popleft()
                if t.gen == self._gen and self._ack is not None:
                    self._ack(t.mid, t.qos)
                    self.acked += 1
            if not pending:
                self._drained.notify_all()

    # -- stopping -----------------------------------------------------------------------------------------
    def stop_taking(self) -> None:
        """Stop accepting new messages; those tracked may still complete and be acknowledged."""
        with self._lock:
            self._live = False

    def wait_drained(self, timeout: float) -> int:
        """Waits (bounded) until every tracked message is acknowledged; returns how many are still waiting, then
        forgets them (they stay with the broker and are redelivered)."""
        with self._lock:
            self._drained.wait_for(lambda: not self._pending, timeout=timeout)
            left = len(self._pending)
            self._pending.clear()
            return left

    @property
    def in_flight(self) -> int:
        return len(self._pending)
