"""The maturity service: alarm-system performance, evidence, assessments and attestations, phased rollouts with
their gates, the improvement backlog, and the skills matrix. The API, the dashboard and the CLI call only this.

Reads do not write: the report, the evidence and a live assessment are computed from the records; recording an
assessment, an attestation, a training record, a gate evaluation or a promotion is a command, with its actor in
the audit log.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable

import numpy as np

from plantguard.domain.actor import Actor
from plantguard.errors import Conflict, Forbidden, InvalidInput, NotFound
from plantguard.maturity import alarmperf, evidence, kpis, stats
from plantguard.maturity.checks import resolve
from plantguard.maturity.model import AREA_IDS, AREAS, ATTESTABLE, INDICATORS, score, valid_attestation

log = logging.getLogger(__name__)
US = 1_000_000
DAY = 86400 * US
MAX_REPORT_SPAN = 400 * DAY
ACTION_STATES = ("open", "in_progress", "done", "verified", "cancelled")
ACTION_SOURCES = ("manual", "review", "audit", "gate", "maturity", "bad_actor")
ROLE_RANK = {"viewer": 0, "operator": 1, "engineer": 2, "admin": 3}


class MaturityService:
    def __init__(self, settings, *, store, clock: Callable[[], int], index: Callable, points, audit, model=None,
                 alarms=None, analytics=None, performance=None, continuity=None, posture=None, broker=None, ca=None,
                 credential_max_age_days: float | None = None) -> None:
        self.settings, self._store, self.clock, self._index, self._points, self._audit = settings, store, clock, index, points, audit
        self._model, self._alarms, self._analytics, self._performance = model, alarms, analytics, performance
        self._continuity, self._posture, self._broker, self._ca = continuity, posture, broker, ca
        self._cred_age = credential_max_age_days
        self._lock = threading.RLock()
        self._ids = {t: self._max_id(t) for t in ("maturity_assessments", "maturity_attestations", "maturity_evaluations",
                                                    "maturity_actions", "maturity_training")}
        self.kpi_sources = kpis.KpiSources(store, index, points, performance, continuity)

    # -- ids and rows ----------------------------------------------------------------------------------------
    def _max_id(self, table: str) -> int:
        rows = self._store.fetch(f"SELECT max(id) FROM {table}")
        return int(rows[0][0] or 0) if rows else 0

    def _next(self, table: str) -> int:
        with self._lock:
            self._ids[table] += 1
            return self._ids[table]

    def _record(self, actor, action: str, target: str | None, detail: dict | None = None, result: str = "ok") -> None:
        self._audit.record(str(actor), action, target, result, detail or {})

    # -- alarm-system performance ----------------------------------------------------------------------------
    def _window(self, start: int | None, end: int | None, default_s: float) -> tuple[int, int]:
        end = self.clock() if end is None else int(end)
        start = end - int(default_s * US) if start is None else int(start)
        if end <= start:
            raise InvalidInput("end must be after start")
        if end - start > MAX_REPORT_SPAN:
            raise InvalidInput("a report covers at most 400 days; ask for several")
        return start, end

    def alarm_report(self, start: int | None = None, end: int | None = None, *, position: str | None = None) -> dict:
        """The ISA-18.2 / EEMUA 191 figures per operator position over [start, end) (default: the configured
        period ending now), each with its target band and verdict, and the bad actors."""
        ap = self.settings.alarm_performance
        start, end = self._window(start, end, ap.period)
        positions = {p.name: list(p.scope) for p in self.settings.positions}
        if position is not None and position not in positions and position not in ("all", "unassigned"):
            raise NotFound(f"no operator position {position!r}: one of {', '.join(['all', *positions])}")
        h = self._store.alarm_history(start, end)
        prios = {r.id: r.priority for r in self._store.load_alarms()}
        idx = self._index()
        from plantguard.domain.fields import us_of

        periods = {}
        for n in h.names + list(h.active_at_start):
            tag = n.rsplit(":", 1)[0]
            ref = idx.point(tag)
            if ref is not None:
                periods[tag] = us_of(ref.point.period) / US
        r = alarmperf.report(h, priorities=prios, periods=periods, positions=positions, settings=alarmperf.PerfSettings(
            flood_threshold=ap.flood_threshold, chatter_count=ap.chatter_count, chatter_window_us=int(ap.chatter_window * US),
            fleeting_us=int(ap.fleeting * US), stale_after_us=int(ap.stale_after * US)))
        if position is not None:
            r["positions"] = {position: r["positions"].get(position) or {}}
        r["events"] = len(h)
        return r

    # -- evidence and assessments ----------------------------------------------------------------------------
    def _sources(self) -> evidence.Sources:
        return evidence.Sources(
            store=self._store, index=self._index, points=self._points,
            alarm_report=lambda s, e: self.alarm_report(s, e),  # from the stored event log (no engine needed to read it)
            analytics=self._analytics if self._analytics is not None and self._analytics.enabled else None,
            continuity=self._continuity, posture=self._posture, broker=self._broker, ca=self._ca,
            credential_max_age_days=self._cred_age, training=self.training_status, actions=self.actions_plain,
            rollouts=self.rollout_facts, findings_seen=self._findings_seen, settings=self.settings.evidence)

    def evidence(self, *, at: int | None = None, period_s: float | None = None) -> list[dict]:
        at = self.clock() if at is None else int(at)
        span = int((period_s or self.settings.evidence.period) * US)
        return evidence.collect(self._sources(), start=at - span, end=at, at=at)

    def targets(self, site: str | None) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.settings.targets:
            if t.site == "*":
                out = {**dict(t.levels), **out} if out else dict(t.levels)
        for t in self.settings.targets:
            if site is not None and t.site == site:
                out.update(t.levels)
        return out

    def assess(self, *, site: str | None = None, at: int | None = None, items: list[dict] | None = None) -> dict:
        """An assessment now (not stored): the evidence, the level of each practice area, the gap to the site's
        target profile and the next actions."""
        if site is not None and self._index().site(site) is None:
            raise NotFound(f"no site {site!r} in the plant model")
        at = self.clock() if at is None else int(at)
        items = self.evidence(at=at) if items is None else items
        ev = {e["id"]: e for e in items}
        att = self._attestations_current(at)
        levels = score(ev, att, at=at, targets=self.targets(site))
        return {"at": at, "site": site, "period_s": self.settings.evidence.period,
                "levels": {k: v.as_dict() for k, v in levels.items()}, "evidence": items,
                "summary": {"mean_level": round(float(np.mean([v.level for v in levels.values()])), 2),
                            "gaps": sum(v.gap for v in levels.values()),
                            "missing_evidence": sum(e["status"] == "missing" for e in items)}}

    def record_assessment(self, actor: Actor, *, site: str | None = None) -> dict:
        """An assessment stored for comparison over time; the posture findings seen for the first time are
        remembered (their age is evidence of the next one)."""
        self._remember_findings()
        a = self.assess(site=site)
        aid = self._next("maturity_assessments")
        a["id"] = aid
        a["actor"] = str(actor)
        self._store.execute([("INSERT INTO maturity_assessments (id, at_us, site, actor, data) VALUES (?, ?, ?, ?, ?)",
                              (aid, a["at"], site or "", str(actor), json.dumps(a, default=_plain)))])
        self._record(actor, "maturity.assessment", site or "plant", {"id": aid, "levels": {k: v["level"] for k, v in a["levels"].items()}})
        return a

    def assessments(self, limit: int = 100) -> list[dict]:
        rows = self._store.fetch("SELECT id, at_us, site, actor, data FROM maturity_assessments ORDER BY id DESC LIMIT ?", (int(limit),))
        out = []
        for i, at, site, actor, data in rows:
            try:
                levels = {k: v["level"] for k, v in json.loads(data)["levels"].items()}
            except (ValueError, KeyError, TypeError):
                levels = {}
            out.append({"id": i, "at": at, "site": site or None, "actor": actor, "levels": levels})
        return out

    def assessment(self, aid: int) -> dict:
        rows = self._store.fetch("SELECT data FROM maturity_assessments WHERE id = ?", (int(aid),))
        if not rows:
            raise NotFound(f"no assessment {aid}")
        return json.loads(rows[0][0])

    def report(self, *, assessment_id: int | None = None, site: str | None = None, fmt: str = "html") -> bytes:
        from plantguard.maturity import report

        a = self.assessment(assessment_id) if assessment_id is not None else self.assess(site=site)
        history = list(reversed(self.assessments(50)))
        if fmt == "pdf":
            return report.pdf(a, history)
        if fmt != "html":
            raise InvalidInput("format is html or pdf")
        return report.html(a, history).encode()

    # -- attestations -----------------------------------------------------------------------------------------
    def attest(self, indicator: str, statement: str, actor: Actor, *, expires_at: int | None = None,
               signer: str | None = None) -> dict:
        """A signed statement that a practice no data can show is in place; it expires."""
        if indicator not in INDICATORS:
            raise InvalidInput(f"unknown indicator {indicator!r}")
        if indicator not in ATTESTABLE:
            raise InvalidInput(f"{indicator} is shown by evidence, not by attestation; attestable: {', '.join(ATTESTABLE)}")
        who = (signer or actor.name or "").strip() if isinstance(actor, Actor) else (signer or str(actor)).strip()
        if not who or who in ("anonymous", "system"):
            raise InvalidInput("an attestation is signed by a named person (signer)")
        if not (statement or "").strip():
            raise InvalidInput("an attestation states what is in place (statement)")
        now = self.clock()
        max_exp = now + int(self.settings.attestation_max * US)
        exp = max_exp if expires_at is None else int(expires_at)
        if exp <= now:
            raise InvalidInput("expires_at is in the past: an attestation must still be valid when it is made")
        if exp > max_exp:
            raise InvalidInput(f"an attestation expires within {self.settings.attestation_max / 86400:g} days")
        aid = self._next("maturity_attestations")
        self._store.execute([("INSERT INTO maturity_attestations (id, indicator, signer, at_us, expires_us, statement, actor) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?)", (aid, indicator, who, now, exp, statement[:2000], str(actor)))])
        self._record(actor, "maturity.attest", indicator, {"id": aid, "signer": who, "expires_at": exp, "statement": statement[:500]})
        return {"id": aid, "indicator": indicator, "signer": who, "at": now, "expires_at": exp, "statement": statement[:2000]}

    def attestations(self) -> list[dict]:
        now = self.clock()
        rows = self._store.fetch("SELECT id, indicator, signer, at_us, expires_us, statement, actor FROM maturity_attestations ORDER BY id")
        return [{"id": i, "indicator": ind, "signer": s, "at": at, "expires_at": e, "statement": st, "recorded_by": a,
                 "valid": valid_attestation({"signer": s, "expires_at": e}, now)} for i, ind, s, at, e, st, a in rows]

    def _attestations_current(self, at: int) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for a in self.attestations():
            if a["at"] <= at and valid_attestation(a, at):
                out[a["indicator"]] = a
            elif a["indicator"] not in out:
                out[a["indicator"]] = {**a, "valid": False}
        return out

    # -- posture findings' first sighting -----------------------------------------------------------------------
    def _findings_seen(self) -> dict:
        return {(c, d): t for c, d, t in self._store.fetch("SELECT check_id, device, first_us FROM maturity_findings")}

    def _remember_findings(self) -> None:
        if self._posture is None:
            return
        rep = self._posture.last or self._posture.run()
        seen = self._findings_seen()
        now = self.clock()
        new = [(f.check, f.device) for f in rep.findings if (f.check, f.device) not in seen]
        if new:
            self._store.execute([("INSERT INTO maturity_findings (check_id, device, first_us) VALUES (?, ?, ?) "
                                  "ON CONFLICT (check_id, device) DO NOTHING", (c, d, now)) for c, d in dict.fromkeys(new)])

    # -- training ---------------------------------------------------------------------------------------------
    def record_training(self, person: str, skill: str, actor: Actor, *, completed_at: int | None = None,
                        expires_at: int | None = None) -> dict:
        tr = self.settings.training
        people = {p.name: p.role for p in tr.people}
        if person not in people:
            raise InvalidInput(f"{person!r} is not in the skills matrix (maturity.training.people)")
        skills = {s.name: s for r in tr.roles for s in r.skills}
        if skill not in skills:
            raise InvalidInput(f"unknown skill {skill!r}: one of {', '.join(sorted(skills)) or '(none defined)'}")
        now = self.clock()
        done = now if completed_at is None else int(completed_at)
        if done > now:
            raise InvalidInput("completed_at is in the future")
        if expires_at is None and skills[skill].valid_for is not None:
            expires_at = done + int(skills[skill].valid_for * US)
        if expires_at is not None and int(expires_at) <= done:
            raise InvalidInput("expires_at must be after completed_at")
        rid = self._next("maturity_training")
        self._store.execute([("INSERT INTO maturity_training (id, person, skill, completed_us, expires_us, actor, at_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                              (rid, person, skill, done, expires_at, str(actor), now))])
        self._record(actor, "maturity.training", person, {"skill": skill, "completed_at": done, "expires_at": expires_at})
        return {"id": rid, "person": person, "skill": skill, "completed_at": done, "expires_at": expires_at}

    def training_records(self, person: str | None = None) -> list[dict]:
        sql = "SELECT id, person, skill, completed_us, expires_us, actor, at_us FROM maturity_training"
        rows = self._store.fetch(sql + (" WHERE person = ?" if person else "") + " ORDER BY id", (person,) if person else ())
        return [{"id": i, "person": p, "skill": s, "completed_at": c, "expires_at": e, "recorded_by": a, "at": at}
                for i, p, s, c, e, a, at in rows]

    def training_status(self, at: int | None = None) -> dict:
        """The skills matrix: per person, each skill their role requires, current or not."""
        at = self.clock() if at is None else int(at)
        tr = self.settings.training
        need = {r.name: [s.name for s in r.skills] for r in tr.roles}
        best: dict[tuple[str, str], int | None] = {}
        for rec in self.training_records():
            if rec["completed_at"] > at:
                continue
            k = (rec["person"], rec["skill"])
            e = rec["expires_at"]
            cur = best.get(k, 0)
            best[k] = None if e is None or cur is None else max(cur, e)
        people = []
        for p in tr.people:
            skills = {}
            for s in need.get(p.role, []):
                k = (p.name, s)
                if k not in best:
                    skills[s] = {"state": "missing", "expires_at": None}
                elif best[k] is None or best[k] > at:
                    skills[s] = {"state": "current", "expires_at": best[k]}
                else:
                    skills[s] = {"state": "expired", "expires_at": best[k]}
            people.append({"name": p.name, "role": p.role, "skills": skills,
                           "current": all(v["state"] == "current" for v in skills.values())})
        by_role = {}
        for r in tr.roles:
            ps = [p for p in people if p["role"] == r.name]
            by_role[r.name] = {"people": len(ps), "current": sum(p["current"] for p in ps), "skills": need[r.name]}
        return {"at": at, "people": people, "by_role": by_role}

    # -- improvement backlog ------------------------------------------------------------------------------------
    def _load_actions(self) -> list[dict]:
        return [json.loads(d) for (d,) in self._store.fetch("SELECT data FROM maturity_actions ORDER BY id")]

    def actions_plain(self) -> list[dict]:
        return self._load_actions()

    def actions(self, *, state: str | None = None) -> list[dict]:
        out = self._load_actions()
        return [a for a in out if state is None or a["state"] == state]

    def action(self, aid: int) -> dict:
        rows = self._store.fetch("SELECT data FROM maturity_actions WHERE id = ?", (int(aid),))
        if not rows:
            raise NotFound(f"no improvement action {aid}")
        return json.loads(rows[0][0])

    def _save_action(self, a: dict, *, insert: bool = False) -> None:
        data = json.dumps(a, default=_plain)
        if insert:
            self._store.execute([("INSERT INTO maturity_actions (id, source_key, state, updated_us, data) VALUES (?, ?, ?, ?, ?)",
                                  (a["id"], a.get("source_key") or f"manual:{a['id']}", a["state"], a["updated_at"], data))])
        else:
            self._store.execute([("UPDATE maturity_actions SET state = ?, updated_us = ?, data = ? WHERE id = ?",
                                  (a["state"], a["updated_at"], data, a["id"]))])

    def add_action(self, actor: Actor, *, title: str, owner: str = "", due_at: int | None = None, practice: str | None = None,
                   source: str = "manual", source_key: str | None = None, kpi: dict | None = None, detail: str = "") -> dict:
        if not (title or "").strip():
            raise InvalidInput("an improvement action has a title")
        if practice is not None and practice not in AREA_IDS:
            raise InvalidInput(f"unknown practice area {practice!r}: one of {', '.join(AREA_IDS)}")
        if source not in ACTION_SOURCES:
            raise InvalidInput(f"source is one of {', '.join(ACTION_SOURCES)}")
        if kpi is not None:
            self._check_kpi(kpi)
        now = self.clock()
        with self._lock:
            if source_key is not None and self._store.fetch("SELECT id FROM maturity_actions WHERE source_key = ?", (source_key,)):
                raise Conflict(f"an action for {source_key} exists")
            aid = self._next("maturity_actions")
            a = {"id": aid, "title": title[:300], "detail": detail[:2000], "owner": owner[:200], "due_us": due_at,
                 "practice": practice, "source": source, "source_key": source_key, "state": "open", "created_at": now,
                 "updated_at": now, "done_us": None, "kpi": kpi, "verification": None, "history": [
                     {"at": now, "actor": str(actor), "what": "created"}]}
            self._save_action(a, insert=True)
        self._record(actor, "improvement.add", str(aid), {"title": title[:200], "source": source})
        return a

    def _check_kpi(self, kpi: dict) -> None:
        from plantguard.maturity.checks import kpi_problem
        from plantguard.maturity.config import Scope

        name = kpi.get("kpi")
        msg = kpi_problem(str(name)) if name else "kpi.kpi names the KPI"
        if msg:
            raise InvalidInput(msg)
        try:
            sc = Scope.model_validate(kpi.get("scope") or {})
        except Exception as e:  # noqa: BLE001 - pydantic's message names the field
            raise InvalidInput(f"kpi.scope: {e}") from None
        devs, probs = resolve(sc, self._index())
        if probs:
            raise InvalidInput(f"kpi.scope.{probs[0][0]}: {probs[0][1]}")
        if not devs:
            raise InvalidInput("kpi.scope names no device")

    def update_action(self, aid: int, actor: Actor, *, state: str | None = None, owner: str | None = None,
                      due_at: int | None = None, note: str = "") -> dict:
        with self._lock:
            a = self.action(aid)
            now = self.clock()
            if state is not None:
                if state not in ACTION_STATES or state == "verified":
                    raise InvalidInput("state is open, in_progress, done or cancelled (verified comes from a verification)")
                if a["state"] in ("verified", "cancelled") and state != a["state"]:
                    raise Conflict(f"action {aid} is {a['state']}")
                a["state"] = state
                if state == "done":
                    a["done_us"] = now
            if owner is not None:
                a["owner"] = owner[:200]
            if due_at is not None:
                a["due_us"] = int(due_at)
            a["updated_at"] = now
            a["history"] = (a.get("history") or [])[-99:] + [{"at": now, "actor": str(actor), "what": f"state {a['state']}", "note": note[:500]}]
            self._save_action(a)
        self._record(actor, "improvement.update", str(aid), {"state": a["state"], "note": note[:200]})
        return a

    def verify_action(self, aid: int, actor: Actor, *, before_s: float | None = None, after_s: float | None = None,
                      bucket_s: float = 3600) -> dict:
        """The action's KPI before and after it was done, with the gate's statistics: improved, not_improved
        or inconclusive (too little data: the action stays done and can be verified later)."""
        with self._lock:
            a = self.action(aid)
            if a["state"] not in ("done", "verified"):
                raise Conflict("an action is verified once it is done")
            k = a.get("kpi")
            if not k:
                raise Conflict("the action names no KPI to verify (kpi: {kpi, scope})")
            from plantguard.maturity.config import Scope

            devs, _ = resolve(Scope.model_validate(k.get("scope") or {}), self._index())
            done = int(a["done_us"])
            now = self.clock()
            after = int((after_s or (now - done) / US) * US)
            before = int((before_s or after / US) * US)
            if after <= 0:
                raise Conflict("the action was done just now: nothing after it to compare")
            b = int(bucket_s * US)
            pre, e1 = kpis.samples(self.kpi_sources, k["kpi"], devs, done - before, done, b)
            post, e2 = kpis.samples(self.kpi_sources, k["kpi"], devs, done, min(now, done + after), b)
            better = k.get("better") or kpis.BETTER.get(k["kpi"], "higher")
            res = stats.judge(k["kpi"], post, pre, better=better, expect="better", min_samples=int(k.get("min_samples", 50)),
                              error=e1 or e2)
            verdict = {"passed": "improved", "failed": "not_improved"}.get(res.verdict, "inconclusive")
            a["verification"] = {"at": now, "by": str(actor), "verdict": verdict, "result": res.as_dict(),
                                 "before": [done - before, done], "after": [done, min(now, done + after)]}
            if verdict != "inconclusive":
                a["state"] = "verified"
            a["updated_at"] = now
            self._save_action(a)
        self._record(actor, "improvement.verify", str(aid), {"verdict": verdict, "reason": res.reason})
        return a

    def sync_actions(self, actor: Actor, *, assessment: dict | None = None, alarm_report: dict | None = None) -> list[dict]:
        """Actions from the sources that call for one, each once (keyed by its source): post-incident reviews'
        corrective actions, open high posture findings, failed or paused gates, practice areas below target,
        and the worst bad-actor alarms."""
        existing = {a.get("source_key") for a in self._load_actions()}
        made: list[dict] = []

        def add(key: str, **kw) -> None:
            if key in existing:
                return
            existing.add(key)
            try:
                made.append(self.add_action(actor, source_key=key, **kw))
            except Conflict:
                pass
        if self._continuity is not None:
            for inc in self._continuity.incidents(limit=100_000):
                for k, ca in enumerate((inc.review or {}).get("corrective_actions") or []):
                    add(f"review:{inc.id}:{k}", title=str(ca.get("action", ""))[:300] or f"incident {inc.id} action",
                        owner=str(ca.get("owner", "")), source="review", practice="continuity",
                        detail=f"from the post-incident review of incident {inc.id}: {inc.title}")
        if self._posture is not None and self._posture.last is not None:
            for f in self._posture.last.findings:
                if f.severity in ("critical", "high"):
                    add(f"audit:{f.check}:{f.device}", title=f"{f.title} ({f.device})", source="audit", practice="cyber",
                        detail=f.remediation[:2000])
        for ro in self.settings.rollouts:
            st = self._rollout_state(ro.name)
            ev = st.get("last_evaluation")
            if ev and ev.get("verdict") in ("no_go", "inconclusive"):
                add(f"gate:{ro.name}:{ev.get('phase')}:{ev.get('id')}", title=f"rollout {ro.name}, phase {ev.get('phase')}: gate {ev['verdict']}",
                    source="gate", practice="integration", detail="; ".join(ev.get("reasons", []))[:2000])
        if assessment is not None:
            for area, lv in assessment["levels"].items():
                if lv.get("gap"):
                    add(f"maturity:{area}:{lv['level']}->{lv['target']}", title=f"raise {lv['name']} from level {lv['level']} to {lv['target']}",
                        source="maturity", practice=area, detail="; ".join(lv.get("next_actions", []))[:2000])
        if alarm_report is not None:
            for b in alarm_report["positions"]["all"]["bad_actors"][:10]:
                add(f"bad_actor:{b['alarm']}", title=f"bad-actor alarm {b['alarm']}", source="bad_actor", practice="quality",
                    detail="; ".join(b["rules"])[:2000],
                    kpi={"kpi": "alarm_rate", "scope": {"devices": [b["alarm"].rsplit(":", 1)[0].rsplit("/", 1)[0]]}}
                    if self._index().device(b["alarm"].rsplit(":", 1)[0].rsplit("/", 1)[0]) is not None else None)
        return made

    # -- rollouts ---------------------------------------------------------------------------------------------
    def _plan(self, name: str):
        for ro in self.settings.rollouts:
            if ro.name == name:
                return ro
        raise NotFound(f"no rollout {name!r} (maturity.rollouts)")

    def _rollout_state(self, name: str) -> dict:
        rows = self._store.fetch("SELECT data FROM maturity_rollouts WHERE name = ?", (name,))
        if rows:
            try:
                return json.loads(rows[0][0])
            except ValueError:
                log.error("the stored state of rollout %s is unreadable; it starts over", name)
        return {"name": name, "phase": 0, "status": "not_started", "phase_started_at": None, "history": [],
                "promotions": [], "last_evaluation": None}

    def _save_rollout(self, st: dict) -> None:
        self._store.execute([("INSERT INTO maturity_rollouts (name, updated_us, data) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                              "SET updated_us = excluded.updated_us, data = excluded.data", (st["name"], self.clock(), json.dumps(st, default=_plain)))])

    def rollouts(self) -> list[dict]:
        return [self.rollout(ro.name) for ro in self.settings.rollouts]

    def rollout(self, name: str) -> dict:
        ro = self._plan(name)
        st = self._rollout_state(name)
        idx = self._index()
        phases = []
        for k, ph in enumerate(ro.phases):
            devs, _ = resolve(ph.scope, idx)
            base, _ = resolve(ph.baseline, idx) if ph.baseline is not None else ([], [])
            state = ("done" if k < st["phase"] or st["status"] == "completed" else
                     st["status"] if k == st["phase"] else "pending")
            phases.append({"name": ph.name, "state": state, "devices": devs, "baseline": base, "before_s": ph.before,
                           "shadow": ph.shadow, "approval": ph.approval, "min_duration_s": ph.min_duration,
                           "gate": ph.gate.model_dump(mode="json") if ph.gate is not None else None,
                           "modes": {d: (idx.device(d).device.mode if idx.device(d) is not None else None) for d in devs[:500]}})
        return {**st, "description": ro.description, "phases": phases,
                "current": ro.phases[st["phase"]].name if st["status"] != "completed" else None}

    def rollout_facts(self) -> dict:
        ev = self._store.fetch("SELECT count(*) FROM maturity_evaluations")
        promos = on_go = piloted = 0
        idx = self._index()
        for ro in self.settings.rollouts:
            st = self._rollout_state(ro.name)
            for p in st.get("promotions", []):
                promos += 1
                on_go += p.get("verdict") == "go"
            for k, ph in enumerate(ro.phases):
                if k < st["phase"] or st["status"] == "completed":
                    piloted += len(resolve(ph.scope, idx)[0])
        return {"plans": len(self.settings.rollouts), "evaluations": int(ev[0][0] if ev else 0), "promotions": promos,
                "promotions_on_go": on_go, "devices_piloted": piloted}

    def _set_modes(self, devices: list[str], mode: str, actor: Actor) -> list[str]:
        """Devices to shadow or live through a new plant model version (all or nothing)."""
        if self._model is None or not devices:
            return []
        cfg = self._model.current()
        doc = cfg.model_dump(mode="json")
        want = set(devices)
        changed = []
        for site in doc.get("sites", []):
            for area in site.get("areas", []):
                for line in area.get("lines", []):
                    for asset in line.get("assets", []):
                        for dev in asset.get("devices", []):
                            path = "/".join((site["id"], area["id"], line["id"], asset["id"], dev["id"]))
                            if path in want and dev.get("mode", "live") != mode:
                                dev["mode"] = mode
                                changed.append(path)
        if changed:
            self._model.replace(doc, actor)
        return changed

    def start_rollout(self, name: str, actor: Actor) -> dict:
        ro = self._plan(name)
        with self._lock:
            st = self._rollout_state(name)
            if st["status"] != "not_started":
                raise Conflict(f"rollout {name} has started (phase {ro.phases[min(st['phase'], len(ro.phases) - 1)].name}, {st['status']})")
            self._enter_phase(ro, st, 0, actor)
            self._save_rollout(st)
        return self.rollout(name)

    def _enter_phase(self, ro, st: dict, k: int, actor: Actor) -> None:
        ph = ro.phases[k]
        now = self.clock()
        devs, _ = resolve(ph.scope, self._index())
        shadowed = self._set_modes(devs, "shadow", actor) if ph.shadow else []
        st.update(phase=k, status="running", phase_started_at=now, last_evaluation=None)
        st["history"] = st["history"][-199:] + [{"at": now, "actor": str(actor), "what": f"phase {ph.name} started",
                                                 "shadowed": shadowed[:100]}]
        self._record(actor, "rollout.phase_started", f"{ro.name}/{ph.name}", {"devices": len(devs), "shadowed": len(shadowed)})

    def evaluate(self, name: str, actor: Actor, *, record: bool = True) -> dict:
        """The current phase's gate now: every KPI check over the phase (or its window) against the baseline or
        the scope's own before-period. Recorded with its evidence; inconclusive or no-go pauses the rollout."""
        ro = self._plan(name)
        with self._lock:
            st = self._rollout_state(name)
            if st["status"] in ("not_started", "completed"):
                raise Conflict(f"rollout {name} is {st['status'].replace('_', ' ')}: nothing to evaluate")
            ph = ro.phases[st["phase"]]
            if ph.gate is None:
                raise Conflict(f"phase {ph.name} has no gate: promotion needs only the approval")
            result = self._gate(ph, st["phase_started_at"])
            now = self.clock()
            ev = {"phase": ph.name, "at": now, "by": str(actor), **result}
            if record:
                eid = self._next("maturity_evaluations")
                ev["id"] = eid
                self._store.execute([("INSERT INTO maturity_evaluations (id, rollout, phase, at_us, verdict, actor, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                      (eid, name, ph.name, now, result["verdict"], str(actor), json.dumps(ev, default=_plain)))])
                st["last_evaluation"] = {k: ev[k] for k in ("id", "phase", "at", "by", "verdict", "score", "reasons", "marginal")}
                st["status"] = "running" if result["verdict"] == "go" else "paused"
                st["history"] = st["history"][-199:] + [{"at": now, "actor": str(actor), "what": f"gate {result['verdict']}"}]
                self._save_rollout(st)
                self._record(actor, "rollout.gate", f"{name}/{ph.name}", {
                    "id": eid, "verdict": result["verdict"], "score": result["score"], "reasons": result["reasons"][:20],
                    "checks": [{"kpi": c["kpi"], "verdict": c["verdict"], "n": [c["n_pilot"], c["n_baseline"]],
                                "difference": c["difference"], "ci": [c["ci_low"], c["ci_high"]]} for c in result["checks"]]})
        return ev

    def _gate(self, ph, started_at: int) -> dict:
        g = ph.gate
        now = self.clock()
        idx = self._index()
        start = started_at
        if g.window is not None:
            start = max(start, now - int(g.window * US))
        devs, _ = resolve(ph.scope, idx)
        bucket = int(g.bucket * US)
        checks = []
        for k, c in enumerate(g.kpis):
            pilot, err = kpis.samples(self.kpi_sources, c.kpi, devs, start, now, bucket)
            if ph.baseline is not None:
                bdev, _ = resolve(ph.baseline, idx)
                base, err2 = kpis.samples(self.kpi_sources, c.kpi, bdev, start, now, bucket)
            else:
                span = int(ph.before * US)
                base, err2 = kpis.samples(self.kpi_sources, c.kpi, devs, started_at - span, started_at, bucket)
            better = c.better or kpis.BETTER.get(c.kpi, "higher")
            checks.append(stats.judge(c.kpi, pilot, base, better=better, expect=c.expect, tolerance=c.tolerance,
                                      critical=c.critical, min_samples=c.min_samples, alpha=g.alpha, seed=k,
                                      error=err or err2))
        res = stats.gate(checks, pass_score=g.pass_score, marginal_score=g.marginal_score)
        return {**res.as_dict(), "window": [start, now], "devices": len(devs)}

    def evaluations(self, name: str, limit: int = 100) -> list[dict]:
        self._plan(name)
        rows = self._store.fetch("SELECT data FROM maturity_evaluations WHERE rollout = ? ORDER BY id DESC LIMIT ?", (name, int(limit)))
        return [json.loads(d) for (d,) in rows]

    def promote(self, name: str, actor: Actor, *, role: str, note: str = "", accept_marginal: bool = False) -> dict:
        """Ends the current phase: its devices go live and the next phase begins (its devices to shadow). Needs
        the phase's approval role, its minimum duration, and a passed last gate evaluation (a marginal one only
        with accept_marginal by an admin, with a note); a missing or inconclusive evaluation never promotes."""
        ro = self._plan(name)
        with self._lock:
            st = self._rollout_state(name)
            if st["status"] in ("not_started", "completed"):
                raise Conflict(f"rollout {name} is {st['status'].replace('_', ' ')}")
            ph = ro.phases[st["phase"]]
            if ROLE_RANK.get(role, 0) < ROLE_RANK[ph.approval]:
                raise Forbidden(f"promoting phase {ph.name} needs the {ph.approval} role")
            now = self.clock()
            if now - int(st["phase_started_at"]) < int(ph.min_duration * US):
                raise Conflict(f"phase {ph.name} runs at least {ph.min_duration:g} s before promotion")
            ev = st.get("last_evaluation")
            verdict = None
            if ph.gate is not None:
                if not ev or ev.get("phase") != ph.name:
                    raise Conflict(f"phase {ph.name} has no gate evaluation: evaluate it first")
                verdict = ev["verdict"]
                marginal = bool(ev.get("marginal"))
                if verdict != "go":
                    if not (accept_marginal and marginal):
                        raise Conflict(f"the last gate of phase {ph.name} is {verdict}: " + "; ".join(ev.get("reasons", [])[:3]))
                    if role != "admin" or not note.strip():
                        raise Forbidden("accepting a marginal gate needs an admin and a note")
            devs, _ = resolve(ph.scope, self._index())
            live = self._set_modes(devs, "live", actor)
            st["promotions"] = st["promotions"][-199:] + [{"phase": ph.name, "at": now, "by": str(actor), "role": role,
                                                           "verdict": verdict, "evaluation": ev.get("id") if ev else None,
                                                           "note": note[:500], "accepted_marginal": bool(accept_marginal and verdict != "go")}]
            self._record(actor, "rollout.promote", f"{name}/{ph.name}", {"verdict": verdict, "evaluation": ev.get("id") if ev else None,
                                                                       "devices_live": len(live), "role": role, "note": note[:200]})
            if st["phase"] + 1 < len(ro.phases):
                self._enter_phase(ro, st, st["phase"] + 1, actor)
            else:
                st["status"] = "completed"
                st["history"] = st["history"][-199:] + [{"at": now, "actor": str(actor), "what": "completed"}]
            self._save_rollout(st)
        return self.rollout(name)

    def health(self) -> dict:
        return {"rollouts": len(self.settings.rollouts), "actions_open": sum(a["state"] in ("open", "in_progress") for a in self._load_actions())}


def _plain(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def areas() -> list[dict]:
    return [{"id": a.id, "name": a.name, "purpose": a.purpose, "indicators": [
        {"id": i.id, "level": i.level, "text": i.text, "evidence": i.evidence, "threshold": None if i.attest else f"{i.op} {i.threshold:g}",
         "attest": i.attest} for i in a.indicators]} for a in AREAS]
