"""Quarantine: a device whose data must not be trusted is set aside, not silenced.

    q.quarantine(device, actor, reason)     its readings go to the quarantine store (kept for forensics, nothing is
                                            lost) instead of the main store, the watermarks and the analytics; its
                                            broker credentials are suspended and the broker's files regenerated
    q.release(device, actor, reason, "admit" | "discard")
                                            four eyes: the releasing user is not the one who quarantined it; the
                                            held readings are then admitted (through the pipeline, checked like any
                                            others) or discarded, and the credentials resumed

`security.quarantine_on` lists behavioural rules whose events quarantine a device automatically (the actor is
system:policy, so any user may then release it). Every step is in the audit log.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from plantguard.domain.actor import Actor
from plantguard.errors import Conflict, Forbidden, InvalidInput, NotFound

log = logging.getLogger(__name__)
ADMIT_CHUNK = 50_000


@dataclass(frozen=True)
class QuarantineRecord:
    device: str
    since: int
    by: str
    reason: str
    held_readings: int


class Quarantine:
    def __init__(self, store, points, *, index, clock, submit, broker=None, audit=None, ca=None) -> None:
        """`store`: SqlStore (its own tables); `points`: the point registry; `index()`: the current plant index;
        `submit`: readings into the pipeline (the admitted ones)."""
        self._store, self._points, self._index, self._clock, self._submit = store, points, index, clock, submit
        self.broker = broker
        self.ca = ca
        self.audit = audit
        self._lock = threading.Lock()
        self._held = np.zeros(0, bool)
        self.refresh()

    # -- the pipeline's diverter ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuilds the mask of quarantined point ids (after a change, or when points were added)."""
        devices = [d for (d,) in self._store.fetch("SELECT device FROM quarantine")]
        self._devices = frozenset(d.rstrip("/") for d in devices)
        reg = self._points
        n = max(reg.tags, default=-1) + 1
        mask = np.zeros(n, bool)
        for d in devices:
            prefix = d.rstrip("/") + "/"
            for pid, tag in reg.tags.items():
                if tag.startswith(prefix):
                    mask[pid] = True
        self._held = mask

    def write_refusal(self, device: str) -> str | None:
        """Why a write to this device is refused now (None: it is not quarantined). Read from memory, so a
        quarantine blocks the next write, within the poll cycle it was decided in."""
        d = device.rstrip("/")
        return f"device {d} is quarantined: writes are blocked until it is released" if d in self._devices else None

    def held(self, pid: np.ndarray) -> np.ndarray:
        m = self._held
        if not m.any():
            return np.zeros(len(pid), bool)
        inside = pid < len(m)
        out = np.zeros(len(pid), bool)
        out[inside] = m[pid[inside]]
        return out

    def store(self, batch, now: int) -> None:
        """Keeps a quarantined device's readings (one bulk statement: a flooding device must not stall the writer)."""
        n = len(batch)
        self._store.insert_columns("quarantine_readings", {
            "pid": batch.pid.astype(np.int64), "ts": batch.ts, "value": batch.value, "quality": batch.quality.astype(np.int64),
            "src_ts": batch.src_ts, "received_at": np.full(n, now, np.int64)})

    # -- commands ----------------------------------------------------------------------------------------------
    def _record(self, actor, action: str, device: str, **detail) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, device, "ok", detail)

    def list(self) -> list[QuarantineRecord]:
        counts = self._counts()
        return [QuarantineRecord(d, int(s), b, r, counts.get(d, 0))
                for d, s, b, r in self._store.fetch("SELECT device, since_us, by_actor, reason FROM quarantine ORDER BY since_us")]

    def _counts(self) -> dict[str, int]:
        by_pid = dict(self._store.fetch("SELECT pid, count(*) FROM quarantine_readings GROUP BY pid"))
        out: dict[str, int] = {}
        for pid, n in by_pid.items():
            try:
                dev = self._points.tag(int(pid)).rsplit("/", 1)[0]
            except (KeyError, IndexError):
                continue
            out[dev] = out.get(dev, 0) + int(n)
        return out

    def quarantine(self, device: str, actor: Actor, reason: str) -> QuarantineRecord:
        if self._index().device(device) is None:
            raise NotFound(f"no device {device!r} in the plant model")
        if not (reason or "").strip():
            raise InvalidInput("a reason is required to quarantine a device")
        with self._lock:
            if self._store.fetch("SELECT 1 FROM quarantine WHERE device = ?", (device,)):
                raise Conflict(f"{device} is already quarantined")
            self._store.execute([("INSERT INTO quarantine (device, since_us, by_actor, reason) VALUES (?, ?, ?, ?)",
                                    (device, self._clock(), str(actor), reason[:500]))])
            self.refresh()
        if self.ca is not None:
            self.ca.suspend(device, True, actor)  # on hold in the CRL, out of the ACL
        if self.broker is not None and self.broker.credentials(device):
            self.broker.suspend(device, True, actor)
        self._record(actor, "quarantine", device, reason=reason[:500])
        log.warning("device %s quarantined by %s: %s", device, actor, reason)
        return next(r for r in self.list() if r.device == device)

    def release(self, device: str, actor: Actor, reason: str, disposition: str) -> dict:
        if disposition not in ("admit", "discard"):
            raise InvalidInput("disposition is admit or discard")
        if not (reason or "").strip():
            raise InvalidInput("a reason is required to release a device")
        rows = self._store.fetch("SELECT by_actor FROM quarantine WHERE device = ?", (device,))
        if not rows:
            raise NotFound(f"{device} is not quarantined")
        if rows[0][0] == str(actor):
            raise Forbidden(f"four eyes: {actor} quarantined {device}; another user must release it")
        with self._lock:
            self._store.execute([("DELETE FROM quarantine WHERE device = ?", (device,))])
            self.refresh()
        pids = [pid for pid, tag in self._points.tags.items() if tag.startswith(device.rstrip("/") + "/")]
        held = self._take(pids)
        admitted = 0
        if disposition == "admit" and len(held[0]):
            admitted = self._admit(held)
        self._delete(pids)
        if self.ca is not None:
            self.ca.suspend(device, False, actor)
        if self.broker is not None and self.broker.credentials(device):
            self.broker.suspend(device, False, actor)
        self._record(actor, f"quarantine.release.{disposition}", device, reason=reason[:500], held=int(len(held[0])),
                     admitted=admitted)
        return {"device": device, "disposition": disposition, "held": int(len(held[0])), "admitted": admitted}

    def _take(self, pids: list[int]):
        if not pids:
            return (np.empty(0, np.int64),) * 5
        marks = ",".join("?" * len(pids))
        rows = self._store.fetch(f"SELECT pid, ts, value, quality, src_ts FROM quarantine_readings WHERE pid IN ({marks}) ORDER BY pid, ts",
                                   tuple(pids))
        if not rows:
            return (np.empty(0, np.int64),) * 5
        cols = list(zip(*rows))
        return (np.array(cols[0], np.int64), np.array(cols[1], np.int64), np.array(cols[2], np.float64),
                np.array(cols[3], np.uint8), np.array(cols[4], np.int64))

    def _admit(self, held) -> int:
        from plantguard.domain.readings import RawBatch

        pid, ts, value, quality, src_ts = held
        tags = [self._points.tag(int(p)) for p in pid.tolist()]
        n = 0
        for lo in range(0, len(tags), ADMIT_CHUNK):
            hi = lo + ADMIT_CHUNK
            b = RawBatch.build(tags[lo:hi], ts[lo:hi], value[lo:hi], quality[lo:hi], src_ts[lo:hi], source="quarantine")
            res = self._submit(b, [], timeout=30).result(120)
            n += res.accepted
        return n

    def _delete(self, pids: list[int]) -> None:
        if pids:
            marks = ",".join("?" * len(pids))
            self._store.execute([(f"DELETE FROM quarantine_readings WHERE pid IN ({marks})", tuple(pids))])

    # -- the policy ------------------------------------------------------------------------------------------------
    def on_security_event(self, ev, rules: list[str]) -> None:
        e = ev.event
        if e.rule not in rules:
            return
        try:
            self.quarantine(e.device, Actor.system("policy"), f"{e.rule}: {e.message}")
        except Conflict:
            pass  # already quarantined
        except Exception:  # noqa: BLE001 - a policy failure is logged, never raised into the bus
            log.exception("the quarantine policy failed for %s", e.device)
