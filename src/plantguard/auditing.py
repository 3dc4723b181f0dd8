"""The audit trail: one subscriber turns what the platform publishes about people's and devices' actions into
audit records, written to one sink (the security capability's signed log; the log file without it).

    model edits            ModelChanged                  -> model.replace
    operator alarm actions AlarmChanged (ack/shelve/...) -> alarm.ack, alarm.shelve, alarm.unshelve
    writes to devices      DeviceWritten (each attempt)  -> device.write

Recorded directly instead, and documented where they are: the security capability's own actions (logins,
tokens, users, certificates, broker credentials, quarantine, triage, key rotation), which must be in the log
before the action answers; they go to the same sink.
"""

from __future__ import annotations

import logging

from plantguard.events import AlarmChanged, DeviceWritten, ModelChanged

log = logging.getLogger(__name__)

OPERATOR_EVENTS = {"acknowledged": "alarm.ack", "shelved": "alarm.shelve", "unshelved": "alarm.unshelve"}
_WRITE_DETAIL = ("connector", "value", "old_value", "result", "registers")


class AuditTrail:
    def __init__(self, sink) -> None:
        self.sink = sink
        self._bus = None

    def subscribe(self, bus) -> None:
        # inline: the audit must see every change (operator actions, model edits and writes are rare; other alarm
        # transitions are filtered out at once)
        self._bus = bus
        bus.subscribe("audit", self.on_event, ModelChanged, AlarmChanged, DeviceWritten, inline=True)

    def device_write(self, rec: dict) -> None:
        """A source's write callback: each attempt, done or refused, published for the trail."""
        if self._bus is not None:
            self._bus.publish(DeviceWritten(dict(rec)))

    def on_event(self, ev) -> None:
        if isinstance(ev, ModelChanged):
            self.sink.record(ev.actor or "system:unknown", "model.replace", f"version {ev.version}", detail={"origin": ev.origin})
        elif isinstance(ev, AlarmChanged):
            if ev.event.event in OPERATOR_EVENTS:
                self.sink.record(ev.event.actor or "unknown", OPERATOR_EVENTS[ev.event.event], ev.record.id,
                                 detail={"note": ev.event.note} if ev.event.note else None)
        elif isinstance(ev, DeviceWritten):
            rec = ev.record
            result = str(rec.get("result", ""))
            who = str(rec.get("user"))
            self.sink.record(who if ":" in who else f"user:{who}", "device.write", str(rec.get("point")),
                             "ok" if result == "ok" else result.split(":", 1)[0] or "failed",
                             {k: rec.get(k) for k in _WRITE_DETAIL if k in rec})
