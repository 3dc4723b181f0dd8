"""Security events: stored, listed, and published on the event bus."""

from __future__ import annotations

import json
from dataclasses import dataclass

from plantguard.events import Event
from plantguard.security.behaviour import SecurityEvent


@dataclass(frozen=True, slots=True)
class SecurityEventRaised(Event):
    """A behavioural rule fired on a device (see plantguard.security.behaviour)."""
    event: SecurityEvent


def store_events(store, events: list[SecurityEvent]) -> None:
    rows = []
    seen = set()
    for e in events:
        key = (e.device, e.rule, e.at)
        if key in seen:
            continue
        seen.add(key)
        rows.append(("INSERT INTO security_events (device, rule, at_us, message, evidence) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     (e.device, e.rule, e.at, e.message[:1000], json.dumps(e.evidence, default=str)[:8000])))
    if rows:
        store.execute(rows)


def list_events(store, *, device: str | None = None, rule: str | None = None, since: int | None = None, limit: int = 1000) -> list[SecurityEvent]:
    sql, params = "SELECT device, rule, at_us, message, evidence FROM security_events WHERE 1 = 1", []
    if device:
        sql += " AND device LIKE ?"
        params.append(device.replace("%", "") + "%")
    if rule:
        sql += " AND rule = ?"
        params.append(rule)
    if since is not None:
        sql += " AND at_us >= ?"
        params.append(int(since))
    sql += " ORDER BY at_us DESC LIMIT ?"
    params.append(int(limit))
    return [SecurityEvent(d, r, int(a), m, json.loads(ev)) for d, r, a, m, ev in store.fetch(sql, tuple(params))]
