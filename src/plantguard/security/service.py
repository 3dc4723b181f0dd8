"""The posture audit as a service: gather the facts, match the advisories, apply the triage (muted or accepted
findings), record the run in the audit log and the identities seen for the first time."""

from __future__ import annotations

import time
from pathlib import Path

from plantguard.domain.actor import Actor
from plantguard.errors import InvalidInput
from plantguard.security import inventory
from plantguard.security.csaf import AdvisoryIndex, load_dir
from plantguard.security.posture import CHECK_IDS, PLATFORM, Report, audit, host_findings

DECISIONS = ("mute", "accept", "reopen")


class PostureService:
    def __init__(self, store, settings, *, clock, facts, storage, audit_log=None) -> None:
        """`store`: SqlStore (the security tables); `facts(first_seen)`: the inventory of the running platform
        (plantguard.security.inventory.gather); `storage`: the storage settings (the data and key directories)."""
        self._store, self._clock, self._facts, self._storage = store, clock, facts, storage
        self.settings = settings
        self.audit_log = audit_log
        self._advisories: tuple[float, AdvisoryIndex, list[str]] | None = None
        self.last: Report | None = None
        self.last_facts: list = []

    def advisories(self, directory: str | Path | None = None) -> tuple[AdvisoryIndex | None, list[str]]:
        d = directory or self.settings.advisories_dir
        if not d:
            return None, []
        if not Path(d).is_dir():
            return None, [f"{d}: the advisories directory does not exist"]
        stamp = max((f.stat().st_mtime for f in Path(d).rglob("*")), default=0.0)
        if directory is None and self._advisories is not None and self._advisories[0] == stamp:
            return self._advisories[1], self._advisories[2]
        advs, problems = load_dir(d)
        idx = AdvisoryIndex(advs)
        if directory is None:
            self._advisories = (stamp, idx, problems)
        return idx, problems

    def events(self, **kw):
        """Behavioural security events, newest first (see plantguard.security.events.list_events)."""
        from plantguard.security.events import list_events

        return list_events(self._store, **kw)

    def triage(self) -> set[tuple[str, str]]:
        return {(c, d) for c, d, dec in self._store.fetch("SELECT check_id, device, decision FROM security_triage")
                if dec in ("mute", "accept")}

    def decide(self, check: str, device: str, decision: str, reason: str, actor: Actor) -> None:
        """Triage of one finding: mute (noise), accept (a known, accepted risk) or reopen."""
        from plantguard.security.behaviour import RULES

        if check not in CHECK_IDS and check != "advisory" and check not in RULES:
            raise InvalidInput(f"unknown check {check!r}")
        if decision not in DECISIONS:
            raise InvalidInput(f"decision is one of {', '.join(DECISIONS)}")
        if decision != "reopen" and not (reason or "").strip():
            raise InvalidInput("a reason is required to mute or accept a finding")
        stmts = [("DELETE FROM security_triage WHERE check_id = ? AND device = ?", (check, device))]
        if decision != "reopen":
            stmts.append(("INSERT INTO security_triage (check_id, device, decision, actor, reason, decided_at) VALUES (?, ?, ?, ?, ?, ?)",
                          (check, device, decision, str(actor), reason[:500], self._clock())))
        self._store.execute(stmts)
        if self.audit_log is not None:
            self.audit_log.record(actor, f"security.triage.{decision}", f"{check} {device}", detail={"reason": reason})

    def run(self, actor: Actor | None = None, *, advisories_dir: str | Path | None = None, record: bool | None = None) -> Report:
        """The audit now. It writes (the identities seen for the first time, and the run in the audit log) only when
        `record` (default: when an actor runs it as a command); reading the findings changes nothing."""
        t0 = time.perf_counter()
        record = actor is not None if record is None else record
        store = self._store
        facts = self._facts(inventory.first_seen(store))
        idx, problems = self.advisories(advisories_dir)
        s = self.settings
        report = audit(facts, now=self._clock(), advisories=idx, advisory_problems=problems, mute=self.triage(),
                       max_credential_age_days=s.credential_max_age_days, silent_min_s=s.silent_min_s)
        st = self._storage
        if "platform.data_dir_exposed" not in {c for c, d in self.triage() if d == PLATFORM}:
            report.findings[:0] = host_findings([Path(st.data_dir)] + ([Path(st.key_dir)] if st.key_dir else []))
        if record:
            inventory.remember_identities(store, facts, self._clock())
        self.last = report
        self.last_facts = facts  # what the report was made from (the security page shows the inventory)
        if actor is not None and self.audit_log is not None:
            self.audit_log.record(actor, "security.audit", f"{report.devices} devices", detail={
                "findings": len(report.findings), "by_severity": report.by_severity(), "advisories": report.advisories,
                "seconds": round(time.perf_counter() - t0, 3)})
        return report


class RiskService:
    """The risk register over the platform: the posture audit's findings, the inventory's criticality and what
    depends on each device; each changed score is kept in `risk_history`."""

    def __init__(self, store, posture: PostureService, *, index, clock) -> None:
        self._store, self._index, self._clock = store, index, clock
        self.posture = posture

    def record(self, report: Report | None = None):
        """The register now, with each changed score kept in the history (the background run, a command)."""
        entries = self.register(report)
        changed = [e for e in entries if e.previous is None or e.previous != e.score]
        if changed:  # one bulk statement: 10,000 devices must not cost 10,000 inserts
            import numpy as np

            self._store.insert_columns("risk_history", {
                "device": np.array([e.device for e in changed], dtype=object), "at_us": np.full(len(changed), self._clock(), np.int64),
                "likelihood": np.array([e.likelihood for e in changed]), "impact": np.array([e.impact for e in changed]),
                "score": np.array([e.score for e in changed])})
        return entries

    def register(self, report: Report | None = None):
        """The register now, each entry with its last recorded score (`previous`); writes nothing."""
        from collections import defaultdict

        from plantguard.security.risk import Dependents, compute

        report = report or self.posture.run()
        by_dev = defaultdict(list)
        for f in report.findings:
            by_dev[f.device].append(f)
        crit, deps = {}, {}
        for r in self._index().devices():
            d = r.device
            crit[r.path] = d.inventory.criticality if d.inventory is not None else None
            analysed = any(p.analytics is not None for p in d.points) or (r.asset.analytics is not None)
            alarmed = sum(1 for p in d.points if getattr(p, "alarms", None) is not None)
            deps[r.path] = Dependents(len(d.points), analysed, alarmed)
        # findings on the platform's own host (its data directory) are not a device's risk
        entries = compute({d: fs for d, fs in by_dev.items() if d in crit}, crit, deps)
        last = {dev: score for dev, score in self._store.fetch(
            "SELECT h.device, h.score FROM risk_history h JOIN (SELECT device, max(at_us) AS m FROM risk_history GROUP BY device) x "
            "ON h.device = x.device AND h.at_us = x.m")}
        for e in entries:
            e.previous = last.get(e.device)
        return entries

    def history(self, device: str, limit: int = 1000) -> list[tuple[int, float, float, float]]:
        return [tuple(r) for r in self._store.fetch(
            "SELECT at_us, likelihood, impact, score FROM risk_history WHERE device = ? ORDER BY at_us DESC LIMIT ?", (device, int(limit)))]
