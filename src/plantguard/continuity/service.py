"""The continuity service: the graph on live plant state, incidents from signals, playbook runs, and the actions
their steps take. The API, the dashboard and the CLI call only this.

Signals (alarm changes, security events, quarantines) are queued by the publisher's thread (a bounded deque: a
flood is counted when it overflows, never blocks ingest) and handled by one worker thread in batches: correlated
to their root, incidents opened or updated, and every incident that changed written in one store call.
"""

from __future__ import annotations

import json
import logging
import math
import os
import smtplib
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from typing import Any, Callable

from plantguard.continuity.graph import INF, Graph, validate
from plantguard.continuity.incidents import SEVERITIES, Correlator, Incident, metrics
from plantguard.continuity.playbooks import PlaybookRunner, Run, StepFailed, check_playbook
from plantguard.domain.actor import Actor
from plantguard.domain.addresses import check_url
from plantguard.domain.alarms import PRIORITY_RANK
from plantguard.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

US = 1_000_000
MAX_QUEUE = 200_000
MAX_TIMELINE = 500
_UPSERT = ("INSERT INTO {t} (id, state, updated_us, data) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
           "state = excluded.state, updated_us = excluded.updated_us, data = excluded.data")


@dataclass(frozen=True, slots=True)
class Signal:
    category: str        # outage, predictive, security
    key: str             # one per source condition: "<tag>:<condition>", "security:<device>:<rule>"
    path: str            # plant path (point tag, device or asset path) or graph node id
    active: bool
    at: int              # when it happened (microseconds)
    title: str
    hours: float | None = None   # predictive: remaining life (lower bound), hours
    condition: bool = False      # a process condition (limit, rate, statistics) rather than a device gone silent


class ContinuityService:
    def __init__(self, settings, *, store, clock: Callable[[], int], index: Callable, audit, alarms=None,
                 quarantine=None, telemetry=None, write_point: Callable[[str, float, str], dict] | None = None,
                 writable: Callable[[str], str | None] | None = None, reports_dir=None, backups_dir=None) -> None:
        self.settings, self._store, self.clock, self._index, self._audit = settings, store, clock, index, audit
        self._alarms, self._quarantine, self._telemetry = alarms, quarantine, telemetry
        self._write_point, self._writable = write_point, writable
        self.reports_dir = reports_dir
        self.backups_dir = backups_dir
        self._lock = threading.RLock()
        self._q: deque[Signal] = deque()
        self._cv = threading.Condition()
        self.dropped = 0
        self.handled = 0
        self._thread: threading.Thread | None = None
        self._stop = False
        self._incidents: dict[int, Incident] = {}
        self._by_root: dict[tuple[str, str], int] = {}
        self._dirty: set[int] = set()
        self._pending: dict[str, Signal] = {}          # outage signals waiting out open_after
        self._quarantined: set[str] = set()
        self._estimates: dict[str, dict] = {}
        self.problems: list[tuple[str, str]] = []
        self.graph = Graph()
        self.correlator = Correlator(self.graph)
        self._ids = {"incident": self._max_id("continuity_incidents"), "run": self._max_id("continuity_runs"),
                     "wo": self._max_id("continuity_work_orders")}
        self.graph_messages: list[str] = []
        self._adopt(settings)
        self.runner = PlaybookRunner(self, save=self._save_run, audit=audit, clock=clock, next_id=lambda: self._next("run"))
        self._load()

    # -- graph -----------------------------------------------------------------------------------------------
    def rebuild(self, settings=None) -> list[tuple[str, str]]:
        """Builds the graph from the settings and the current plant model; on problems the previous graph stays
        and the problems are reported (health, GET /api/continuity/graph)."""
        settings = settings or self.settings
        probs = validate(settings, self._index())
        for k, pb in enumerate(settings.playbooks):
            probs += [(f"playbooks[{k}].{p}", m) for p, m in check_playbook(pb, writable=self._writable)]
        with self._lock:
            self.problems = probs
            if probs:
                log.error("continuity graph has %d problem(s); the previous one stays: %s", len(probs),
                          "; ".join(f"continuity.{p}: {m}" for p, m in probs[:5]))
                return probs
            self.settings = settings
            self.graph = Graph.build(settings, self._index())
            self.correlator = Correlator(self.graph, root_share=settings.incidents.root_share)
            self._estimates = {}
        return []

    # the graph's versions: the file's section is applied when it changed since it was last applied; otherwise
    # the newest stored version (an edit through the API) is the truth, as for the plant model
    def _adopt(self, file_settings) -> None:
        import hashlib

        from plantguard.continuity.config import ContinuitySettings

        doc = json.dumps({"services": [x.model_dump(mode="json") for x in file_settings.services],
                          "nodes": [x.model_dump(mode="json") for x in file_settings.nodes]}, sort_keys=True)
        sha = hashlib.sha256(doc.encode()).hexdigest()
        rows = self._store.fetch("SELECT version, origin, sha, doc FROM continuity_graphs ORDER BY version DESC LIMIT 1")
        last_file = self._store.fetch("SELECT sha FROM continuity_graphs WHERE origin = 'file' ORDER BY version DESC LIMIT 1")
        if not rows or not last_file or last_file[0][0] != sha:
            if not self.rebuild(file_settings):
                self._save_graph(doc, sha, "file", "config file")
            return
        if rows[0][1] == "file":
            self.rebuild(file_settings)
            return
        try:
            stored = json.loads(rows[0][3])
            merged = ContinuitySettings.model_validate({**file_settings.model_dump(mode="json"), **stored})
        except Exception as e:  # noqa: BLE001 - an unloadable stored version must not stop the start: the file's applies
            self.graph_messages.append(f"stored graph version {rows[0][0]} could not be loaded ({e}); the file's is used")
            self.rebuild(file_settings)
            return
        if self.rebuild(merged):
            self.graph_messages.append(f"stored graph version {rows[0][0]} has problems against this plant model; the file's is used")
            self.rebuild(file_settings)
        else:
            self.graph_messages.append(f"the dependency graph is version {rows[0][0]} (edited through the API)")

    def _save_graph(self, doc: str, sha: str, origin: str, actor: str) -> int:
        v = self._max_id_col("continuity_graphs", "version") + 1
        self._store.execute([("INSERT INTO continuity_graphs (version, at_us, actor, origin, sha, doc) VALUES (?, ?, ?, ?, ?, ?)",
                              (v, self.clock(), actor, origin, sha, doc))])
        return v

    def replace_graph(self, body: dict, actor: Actor) -> int:
        """A new graph (services and nodes) through the API: validated completely, applied and stored, or refused
        with every problem by field path and nothing changed."""
        import hashlib

        from pydantic import ValidationError

        from plantguard.continuity.config import ContinuitySettings
        from plantguard.errors import ConfigError, ConfigProblem

        extra = sorted(set(body) - {"services", "nodes"})
        if extra:
            raise ConfigError([ConfigProblem(f"continuity.{extra[0]}", "only services and nodes are edited here")])
        try:
            new = ContinuitySettings.model_validate({**self.settings.model_dump(mode="json"),
                                                     "services": body.get("services", []), "nodes": body.get("nodes", [])})
        except ValidationError as e:
            from plantguard.config.loading import validation_problems

            raise ConfigError(validation_problems(e, "continuity")[:200]) from None
        probs = validate(new, self._index())
        if probs:
            raise ConfigError([ConfigProblem(f"continuity.{p}", m) for p, m in probs])
        doc = json.dumps({"services": body.get("services", []), "nodes": body.get("nodes", [])}, sort_keys=True)
        with self._lock:
            if self.rebuild(new):
                raise ConfigError([ConfigProblem(f"continuity.{p}", m) for p, m in self.problems])
            v = self._save_graph(doc, hashlib.sha256(doc.encode()).hexdigest(), "api", str(actor))
        self._record(str(actor), "continuity.graph_replaced", f"graph version {v}",
                           detail={"nodes": len(new.nodes), "services": len(new.services)})
        return v

    # -- backups --------------------------------------------------------------------------------------------
    def backup(self, actor: Actor) -> dict:
        """An online backup of the store into <data_dir>/backups/<time>: consistent, while ingest goes on (the
        writer waits for the copy). The achieved RPO is the age of the newest reading it holds when it completes:
        what a loss of the store right then would cost."""
        if self.backups_dir is None:
            raise Conflict("no backup directory")
        import datetime as dt

        name = dt.datetime.fromtimestamp(time.time(), dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        info = self._store.backup(str(self.backups_dir / name))
        newest = info.get("newest_reading_us")
        info["achieved_rpo_s"] = None if newest is None else round(max(0, self.clock() - int(newest)) / US, 3)
        info["at"], info["by"], info["name"] = self.clock(), str(actor), name
        (self.backups_dir / name / "backup.json").write_text(json.dumps(info, default=str))
        self._record(str(actor), "store.backup", name, detail={k: info[k] for k in ("raw_rows", "seconds", "achieved_rpo_s")})
        return info

    def backups(self) -> list[dict]:
        if self.backups_dir is None or not self.backups_dir.is_dir():
            return []
        out = []
        for meta in sorted(self.backups_dir.glob("*/backup.json"), reverse=True)[:200]:
            try:
                out.append(json.loads(meta.read_text()))
            except (OSError, ValueError):
                out.append({"name": meta.parent.name, "status": "unreadable"})
        return out

    def drill_reports(self, limit: int = 100) -> list[dict]:
        if self.reports_dir is None or not self.reports_dir.is_dir():
            return []
        out = []
        for p in sorted(self.reports_dir.glob("*.json"), reverse=True)[:limit]:
            try:
                j = json.loads(p.read_text())
                out.append({"file": p.name, "scenario": j.get("scenario"), "status": j.get("status"),
                            "started": j.get("started"), "services": j.get("services", [])})
            except (OSError, ValueError):
                out.append({"file": p.name, "status": "unreadable"})
        return out

    def describe(self) -> dict:
        g = self.graph
        nodes = [{"id": g.ids[i], "kind": g.kind[i], "name": g.name[i], "ref": g.ref[i],
                  "depends_on": [g.ids[j] for j in g.requires[i]],
                  "redundancy": [{"members": [g.ids[m] for m in gr.members], "need": gr.need, "exact": gr.exact}
                                 for gr in g.groups[i]]} for i in range(min(len(g), 5000))]
        return {"nodes": nodes, "count": len(g), "services": sorted(g.services),
                "problems": [{"path": f"continuity.{p}", "message": m} for p, m in self.problems]}

    def what_if(self, nodes: list[str], at_s: dict[str, float] | None = None) -> dict:
        if not nodes:
            raise InvalidInput("name at least one node")
        if len(nodes) > 1000:
            raise InvalidInput("at most 1000 nodes at once")
        g = self.graph
        bad = [n for n in nodes if n not in g.index and n not in g.by_path]
        if bad:
            raise NotFound(f"not in the dependency graph: {', '.join(bad[:5])}")
        t0 = time.perf_counter()
        imp = g.impact({n: float((at_s or {}).get(n, 0.0)) for n in nodes})
        out = imp.as_dict()
        out["elapsed_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
        return out

    def estimates(self, sid: str) -> dict:
        if sid not in self.graph.services:
            raise NotFound(f"no business service {sid!r}")
        got = self._estimates.get(sid)
        if got is None:
            got = self.graph.estimates(sid)
            got["single_points_of_failure"] = self.graph.single_points(sid)
            self._estimates[sid] = got
        return got

    # -- live state -----------------------------------------------------------------------------------------
    def live_failures(self) -> tuple[dict[str, float], dict[str, str]]:
        """Nodes failed now (seconds ago, negative) or predicted to fail (seconds ahead), and why."""
        now = self.clock()
        g = self.graph
        fail: dict[str, float] = {}
        why: dict[str, str] = {}

        def put(path: str, t: float, reason: str) -> None:
            i = g.node_of_path(path)
            if i is None:
                return
            nid = g.ids[i]
            if t < fail.get(nid, INF):
                fail[nid], why[nid] = t, reason
        if self._alarms is not None and self._alarms.enabled:
            for rec in self._alarms.list(active=True):
                if rec.condition == "OFFLINE":
                    put(rec.tag, ((rec.raised_at or now) - now) / US, "offline")
                elif rec.condition == "RUL" and rec.value is not None and math.isfinite(rec.value):
                    put(rec.tag, max(0.0, float(rec.value)) * 3600, f"predicted failure (remaining life {rec.value:.1f} h)")
        for dev in self._quarantined:
            put(dev, 0.0, "quarantined")
        for owner, gr in g.exact_groups():  # exactly n active (one master of an HA pair): two masters is a failure
            tags = [g.active_point[m] for m in gr.members if g.active_point[m]]
            got = self.values(tags)
            active = sum(1 for t in tags if got.get(t))
            if active != gr.need:
                nid = g.ids[owner]
                if 0.0 < fail.get(nid, INF):
                    fail[nid], why[nid] = 0.0, f"{active} member(s) active, exactly {gr.need} required"
        return fail, why

    def values(self, tags: list[str]) -> dict[str, float]:
        """The latest value of each tag that has one."""
        if self._telemetry is None or not tags:
            return {}
        return {t: float(v["value"]) for t, v in self._telemetry.latest(tags).items() if v is not None}

    def services_status(self) -> list[dict]:
        fail, why = self.live_failures()
        imp = self.graph.impact(fail) if fail else None
        out = []
        for sid, s in self.graph.services.items():
            si = imp.services.get(sid) if imp else None
            status, at_risk, breach = "ok", None, None
            if si is not None:
                status = "down" if si.down_at <= 0 else "below_mbco" if si.disrupted_at <= 0 else "degraded" if si.degraded_at <= 0 else "at_risk"
                if si.disrupted_at < INF:
                    at_risk = max(0.0, si.disrupted_at)
                    breach = si.disrupted_at + s.rto  # the RTO runs from the disruption
            out.append({"id": sid, "name": s.name or sid, "status": status, "priority": s.priority,
                        "bia": {"mtpd_s": s.mtpd, "rto_s": s.rto, "rpo_s": s.rpo, "mbco": s.mbco, "cost_per_hour": s.cost_per_hour},
                        "capacity": round(si.capacity, 3) if si else 1.0,
                        "at_risk_in_s": None if at_risk is None else round(at_risk, 1),
                        "rto_breach_in_s": None if breach is None else round(breach, 1),
                        "cost_per_hour_now": s.cost_per_hour if si is not None and si.disrupted_at <= 0 else 0.0,
                        "path": si.path if si else [], "causes": {n: why[n] for n in (si.path if si else []) if n in why}})
        return sorted(out, key=lambda d: (d["priority"], d["id"]))

    # -- signals and incidents ------------------------------------------------------------------------------
    def offer(self, sig: Signal) -> None:
        """Called in the publisher's thread: O(1), never blocks."""
        if len(self._q) >= MAX_QUEUE:
            self.dropped += 1
            return
        self._q.append(sig)
        with self._cv:
            self._cv.notify()

    def on_alarm(self, ev) -> None:
        rec = ev.record
        inc = self.settings.incidents
        if rec.condition not in inc.conditions:
            return
        if PRIORITY_RANK.get(rec.priority, 0) < PRIORITY_RANK[inc.open_on_priority] and rec.condition != "RUL":
            return
        if ev.event.event not in ("raised", "returned", "cleared", "updated"):
            return
        if rec.condition == "RUL":
            self.offer(Signal("predictive", rec.id, rec.tag, rec.active, rec.raised_at or ev.event.at, rec.message or "predictive alert",
                              hours=float(rec.value) if rec.value is not None and math.isfinite(rec.value) else None))
        else:
            # silence is the device's (or its link's); a limit, rate or statistical alarm is the asset's condition
            silent = rec.condition in ("OFFLINE", "STALE")
            path = rec.tag if silent else "/".join(rec.tag.split("/")[:4])
            self.offer(Signal("outage", rec.id, path, rec.active, rec.raised_at or ev.event.at,
                              f"{rec.condition} on {rec.tag}", condition=not silent))

    def on_security(self, ev) -> None:
        e = ev.event
        self.offer(Signal("security", f"security:{e.device}:{e.rule}", e.device, True, e.at, f"{e.rule} on {e.device}"))

    def start(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="continuity", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        with self._cv:
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(10)
        self.runner.close()
        self.flush()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        last_tick = 0.0
        while not self._stop:
            with self._cv:
                if not self._q:
                    self._cv.wait(0.5)
            try:
                self.drain()
                if time.monotonic() - last_tick >= 1.0:
                    last_tick = time.monotonic()
                    self.tick()
            except Exception:  # noqa: BLE001 - one bad signal must not stop incident handling
                log.exception("continuity worker failed on a batch; it goes on")

    def drain(self, limit: int = 50_000) -> int:
        """Handles what is queued (at most `limit` per turn) and writes the incidents that changed."""
        n = 0
        while self._q and n < limit:
            sig = self._q.popleft()
            n += 1
            try:
                self.handle(sig)
            except Exception:  # noqa: BLE001 - a signal that cannot be handled is logged and counted, not fatal
                log.exception("signal %s could not be handled", sig.key)
        self.handled += n
        self.flush()
        return n

    def tick(self) -> None:
        """Quarantines as signals, and incidents whose signals all cleared long enough ago resolved."""
        now_q = self._quarantined
        if self._quarantine is not None:
            try:
                now_q = {r.device for r in self._quarantine.list()}
            except Exception:  # noqa: BLE001 - the store is out: keep what was known, look again next tick
                log.debug("quarantine list unavailable", exc_info=True)
            for d in now_q - self._quarantined:
                self.offer(Signal("security", f"quarantine:{d}", d, True, self.clock(), f"{d} quarantined"))
            for d in self._quarantined - now_q:
                self.offer(Signal("security", f"quarantine:{d}", d, False, self.clock(), f"{d} released"))
            self._quarantined = now_q
        now = self.clock()
        delay = int(self.settings.incidents.open_after * US)
        for key, sig in list(self._pending.items()):
            if now - sig.at >= delay:
                del self._pending[key]
                node = self.graph.node_of_path(sig.path)
                if node is not None:  # counted once: handle() counts it again
                    with self._lock:
                        self.correlator.signal(sig.category, node, False)
                try:
                    self.handle(sig, waited=True)
                except Exception:  # noqa: BLE001
                    log.exception("signal %s could not be handled", key)
        wait = int(self.settings.incidents.resolve_after * US)
        with self._lock:
            for inc in list(self._incidents.values()):
                if inc.is_open and inc.signals and not any(inc.signals.values()) and now - inc.last_signal_at >= wait:
                    self._transition(inc, "resolved", "system", at=inc.last_signal_at, note="all signals cleared")
        self.flush()

    def handle(self, sig: Signal, *, waited: bool = False) -> Incident | None:
        g = self.graph
        if not sig.active and self._pending.pop(sig.key, None) is not None:
            node = g.node_of_path(sig.path)  # cleared before it opened anything: the correlator forgets it
            if node is not None:
                with self._lock:
                    self.correlator.signal(sig.category, node, False)
            return None
        node = g.node_of_path(sig.path)
        with self._lock:
            if node is None:
                root_id, moved = sig.path, []
            else:
                r, moved_nodes = self.correlator.signal(sig.category, node, sig.active)
                root_id, moved = g.ids[r], [g.ids[m] for m in moved_nodes]
            key = (sig.category, root_id)
            inc = self._open(key)
            delay = int(self.settings.incidents.open_after * US)
            if inc is None and sig.active and sig.category == "outage" and not waited and self.clock() - sig.at < delay:
                if sig.key not in self._pending:
                    self._pending[sig.key] = sig  # tick() opens it if it is still active after open_after
                return None
            if inc is None:
                if not sig.active:
                    for other in self._incidents.values():  # a clear for a signal whose incident was re-rooted
                        if other.is_open and sig.key in other.signals:
                            other.signals[sig.key] = False
                            other.last_signal_at = max(other.last_signal_at, sig.at)
                            self._note(other, sig.at, "system", f"cleared: {sig.title}")
                            self._dirty.add(other.id)
                    return None
                inc = self._new(key, sig)
            for m in moved:  # incidents of the nodes now under this root join it
                old = self._open((sig.category, m))
                if old is not None and old.id != inc.id:
                    self._merge(old, inc)
            was = inc.signals.get(sig.key)
            if sig.active and not sig.condition and inc.condition_only:
                inc.condition_only = False  # something went silent too: weigh it as a failure from now on
                self._assess(inc, 0.0)
            inc.signals[sig.key] = sig.active
            inc.last_signal_at = max(inc.last_signal_at, sig.at)
            if sig.active and was is None and len(inc.signals) <= 50:
                self._note(inc, sig.at, "system", f"signal: {sig.title}")
            elif not sig.active and was:
                self._note(inc, sig.at, "system", f"cleared: {sig.title}")
            if sig.active and sig.at < inc.started_at:
                inc.started_at = sig.at
            if sig.category == "predictive" and sig.hours is not None:
                self._assess(inc, ahead_s=sig.hours * 3600)
            self._dirty.add(inc.id)
            return inc

    def _open(self, key) -> Incident | None:
        iid = self._by_root.get(key)
        inc = self._incidents.get(iid) if iid is not None else None
        return inc if inc is not None and inc.is_open else None

    def _new(self, key, sig: Signal) -> Incident:
        category, root = key
        inc = Incident(self._next("incident"), root, category, sig.title, started_at=sig.at, detected_at=self.clock(),
                       condition_only=sig.condition)
        self._incidents[inc.id] = inc
        self._by_root[key] = inc.id
        self._note(inc, inc.detected_at, "system", f"opened ({category}) at {root}: {sig.title}")
        self._assess(inc, ahead_s=(sig.hours or 0) * 3600 if category == "predictive" else 0.0)
        self._record("system", "incident.opened", f"incident {inc.id}", detail={"root": root, "severity": inc.severity})
        self._suggest(inc)
        self._trim()
        return inc

    def _merge(self, old: Incident, into: Incident) -> None:
        into.signals.update(old.signals)
        into.condition_only = into.condition_only and old.condition_only
        into.started_at = min(into.started_at, old.started_at)
        into.detected_at = min(into.detected_at, old.detected_at)
        old.merged_into = into.id
        old.state = "resolved"
        old.resolved_at = old.resolved_at or self.clock()
        self._note(old, self.clock(), "system", f"merged into incident {into.id} (common root {into.root})")
        self._note(into, self.clock(), "system", f"incident {old.id} ({old.root}) merged in: same root")
        self._dirty.update((old.id, into.id))
        self._assess(into, 0.0)

    def _assess(self, inc: Incident, ahead_s: float) -> None:
        """Severity, the services at risk and a predicted RTO breach, from the root's impact."""
        g = self.graph
        if inc.root not in g.index and inc.root not in g.by_path:
            inc.severity, inc.services = "warning", []
            return
        imp = g.impact({inc.root: ahead_s})
        svcs, sev = [], 3
        rec = g.recovery[g._resolve(inc.root)]
        inc.expected_recovery_at = None if rec is None else inc.started_at + int((ahead_s + rec) * US)
        breach = []
        for s in sorted(imp.services.values(), key=lambda s: s.disrupted_at):
            bia = g.services[s.id]
            svcs.append({"id": s.id, "name": s.name, "disrupted_in_s": None if s.disrupted_at == INF else round(s.disrupted_at, 1),
                         "down_in_s": None if s.down_at == INF else round(s.down_at, 1), "cost_per_hour": s.cost_per_hour,
                         "path": s.path})
            if s.disrupted_at <= 0:
                sev = min(sev, 0)
            elif s.disrupted_at < INF:
                sev = min(sev, 1)
            else:
                sev = min(sev, 2)
            if rec is not None and s.disrupted_at < INF and (ahead_s + rec) - s.disrupted_at > bia.rto:
                breach.append(s.id)
        if inc.condition_only:  # a limit alarm is a degradation: what would stop is "at risk", not "down"
            sev = max(sev, 1)
        inc.services, inc.severity = svcs, SEVERITIES[sev]
        if inc.category == "predictive" and svcs and svcs[0]["disrupted_in_s"] is not None:
            first = svcs[0]
            inc.title = f"{first['name']} at risk in {first['disrupted_in_s'] / 3600:.1f} h ({inc.root}: remaining life {ahead_s / 3600:.1f} h)"
        new = [b for b in breach if b not in inc.predicted_breach]
        inc.predicted_breach = breach
        for b in new:
            self._note(inc, self.clock(), "system", f"predicted RTO breach for {b}: expected recovery exceeds its RTO")
            self._record("system", "incident.rto_breach_predicted", f"incident {inc.id}", detail={"service": b})

    def _suggest(self, inc: Incident) -> None:
        """Playbooks that match: started when they auto-start, else listed on the incident."""
        on = {"outage": "alarm", "predictive": "predictive", "security": "security"}[inc.category]
        g = self.graph
        for pb in self.settings.playbooks:
            if on not in pb.on and not (inc.category == "security" and "quarantine" in pb.on):
                continue
            if pb.nodes and not any(self._under(inc.root, n) for n in pb.nodes):
                continue
            self._note(inc, self.clock(), "system", f"playbook {pb.id} matches")
            if pb.auto_start:
                try:
                    run = self.runner.start(pb, incident_id=inc.id, actor="system", context={"title": inc.title, "root": inc.root})
                    self._note(inc, self.clock(), "system", f"playbook {pb.id} started: run {run.id}")
                except InvalidInput as e:
                    self._note(inc, self.clock(), "system", f"playbook {pb.id} not started: {e}")

    def _record(self, actor: str, action: str, target: str | None = None, result: str = "ok", detail: dict | None = None) -> None:
        """Into the audit log; a store outage must not lose the incident itself (it is kept and written later)."""
        try:
            self._audit.record(actor, action, target, result=result, detail=detail)
        except Exception:  # noqa: BLE001
            log.exception("audit record %s %s failed", action, target)

    def _under(self, root: str, node: str) -> bool:
        """The root is the node or something it depends on."""
        g = self.graph
        if root == node:
            return True
        r = g.index.get(root, g.by_path.get(root))
        return r is not None and node in g.index and r in set(g.closure(node))

    def _note(self, inc: Incident, at: int, actor: str, what: str) -> None:
        tl = inc.timeline
        if len(tl) >= MAX_TIMELINE:
            tl[-1] = {"at": at, "actor": "system", "what": f"(timeline full; latest: {what[:200]})"}
            return
        tl.append({"at": at, "actor": actor, "what": what[:500]})

    def _trim(self) -> None:
        if len(self._incidents) <= self.settings.incidents.max_open:
            return
        for iid in sorted(self._incidents)[: len(self._incidents) - self.settings.incidents.max_open]:
            if not self._incidents[iid].is_open and iid not in self._dirty:
                del self._incidents[iid]

    # -- people's actions -----------------------------------------------------------------------------------
    def incidents(self, *, open_only: bool = False, limit: int = 200) -> list[Incident]:
        with self._lock:
            got = [i for i in self._incidents.values() if not open_only or i.is_open]
        if not open_only and len(got) < limit:
            have = {i.id for i in got}
            for row in self._store.fetch("SELECT data FROM continuity_incidents ORDER BY id DESC LIMIT ?", (int(limit),)):
                d = _incident(row[0])
                if d is not None and d.id not in have:
                    got.append(d)
        return sorted(got, key=lambda i: -i.id)[:limit]

    def incident(self, iid: int) -> Incident:
        with self._lock:
            inc = self._incidents.get(iid)
        if inc is None:
            rows = self._store.fetch("SELECT data FROM continuity_incidents WHERE id = ?", (int(iid),))
            inc = _incident(rows[0][0]) if rows else None
        if inc is None:
            raise NotFound(f"no incident {iid}")
        return inc

    def act(self, iid: int, action: str, actor: Actor, *, assignee: str | None = None, note: str = "",
            review: dict | None = None, started_at: int | None = None) -> Incident:
        with self._lock:
            inc = self._incidents.get(iid)
            if inc is None:
                inc = self.incident(iid)
                self._incidents[iid] = inc
            who = str(actor)
            if inc.merged_into is not None:
                raise Conflict(f"incident {iid} was merged into incident {inc.merged_into}")
            if action == "assign":
                if not assignee or len(assignee) > 200:
                    raise InvalidInput("an assignee of 1 to 200 characters")
                inc.assignee = assignee
                self._note(inc, self.clock(), who, f"assigned to {assignee}")
            elif action == "started":
                if started_at is None or started_at > inc.detected_at:
                    raise InvalidInput("the start of the fault is a time at or before its detection")
                inc.started_at = started_at
                self._note(inc, self.clock(), who, "start of the fault corrected")
            elif action == "review":
                if inc.state not in ("resolved", "closed"):
                    raise Conflict("a post-incident review follows the resolution")
                inc.review = _review(review or {}, inc, who, self.clock())
                self._transition(inc, "closed", who, note="post-incident review recorded")
            else:
                target = {"acknowledge": "acknowledged", "mitigate": "mitigated", "resolve": "resolved"}.get(action)
                if target is None:
                    raise InvalidInput("action is acknowledge, assign, mitigate, resolve, review or started")
                self._transition(inc, target, who, note=note)
            self._record(who, f"incident.{action}", f"incident {iid}", detail={"note": note[:200]} if note else None)
            self._dirty.add(inc.id)
        self.flush()
        return inc

    def _transition(self, inc: Incident, target: str, who: str, *, at: int | None = None, note: str = "") -> None:
        order = ("open", "acknowledged", "mitigated", "resolved", "closed")
        if order.index(target) <= order.index(inc.state) and not (target == "closed" and inc.state == "resolved"):
            if inc.state == target:
                return  # idempotent: acknowledging twice changes nothing
            raise Conflict(f"incident {inc.id} is {inc.state} already")
        t = self.clock() if at is None else at
        if target in ("acknowledged", "mitigated", "resolved") and inc.acknowledged_at is None and who != "system":
            inc.acknowledged_at = t
        if target in ("mitigated", "resolved") and inc.mitigated_at is None:
            inc.mitigated_at = t
        if target == "resolved":
            inc.resolved_at = t
        if target == "closed":
            inc.closed_at = t
        inc.state = target
        self._note(inc, t, who, f"{target}" + (f": {note[:300]}" if note else ""))
        self._dirty.add(inc.id)

    def incident_metrics(self) -> dict:
        return metrics(self.incidents(limit=10_000))

    # -- playbooks ------------------------------------------------------------------------------------------
    def playbooks(self) -> list:
        return list(self.settings.playbooks)

    def start_playbook(self, pid: str, actor: Actor, incident_id: int | None = None) -> Run:
        pb = next((p for p in self.settings.playbooks if p.id == pid), None)
        if pb is None:
            raise NotFound(f"no playbook {pid!r}")
        if any(p.startswith("playbooks[") for p, _ in self.problems):
            raise Conflict("the playbooks have configuration problems; fix them first")
        ctx = {}
        if incident_id is not None:
            inc = self.incident(incident_id)
            ctx = {"title": inc.title, "root": inc.root}
        run = self.runner.start(pb, incident_id=incident_id, actor=str(actor), context=ctx)
        if incident_id is not None:
            with self._lock:
                inc = self._incidents.get(incident_id)
                if inc is not None:
                    self._note(inc, self.clock(), str(actor), f"playbook {pid} started: run {run.id}")
                    self._dirty.add(inc.id)
            self.flush()
        return run

    def decide(self, run_id: int, step_id: str, *, approve: bool, actor: Actor, role: str, note: str = "") -> Run:
        return self.runner.decide(run_id, step_id, approve=approve, actor=str(actor), role=role, note=note)

    def runs(self) -> list[Run]:
        return self.runner.list()

    def run(self, run_id: int) -> Run:
        return self.runner.get(run_id)

    def cancel(self, run_id: int, actor: Actor) -> Run:
        return self.runner.cancel(run_id, str(actor))

    # -- actions steps take ---------------------------------------------------------------------------------
    def quarantine(self, device: str, reason: str, actor: str) -> dict:
        if self._quarantine is None:
            raise StepFailed("quarantine needs the security capability")
        try:
            self._quarantine.quarantine(device, Actor.system(actor), reason)
        except Conflict:
            return {"detail": f"{device} was quarantined already", "changed": False}
        return {"detail": f"{device} quarantined", "changed": True}

    def release(self, device: str, actor: str) -> dict:
        if self._quarantine is None:
            raise StepFailed("release needs the security capability")
        try:  # a compensation undoes the run's own act: it releases as the run's compensation, admitting the data held
            self._quarantine.release(device, Actor.system(actor + ":compensation"), "compensation of a failed playbook run", "admit")
        except NotFound:
            return {"detail": f"{device} was not quarantined", "changed": False}
        return {"detail": f"{device} released", "changed": True}

    def switch(self, group: str, to: str, actor: str) -> dict:
        g = self.graph
        i = g.index.get(group)
        if i is None or not g.groups[i]:
            raise StepFailed(f"{group!r} is not a node with a redundancy group")
        members = {g.ids[m] for gr in g.groups[i] for m in gr.members}
        if to and to not in members:
            raise StepFailed(f"{to!r} is not a member of {group!r} ({', '.join(sorted(members))})")
        rows = self._store.fetch("SELECT active FROM continuity_switches WHERE grp = ?", (group,))
        before = rows[0][0] if rows else ""
        if before == to:
            return {"detail": f"{group} already on {to or 'its default'}", "changed": False, "before": before}
        self._store.execute([("DELETE FROM continuity_switches WHERE grp = ?", (group,)),
                             ("INSERT INTO continuity_switches (grp, active, at_us, by_actor) VALUES (?, ?, ?, ?)",
                              (group, to, self.clock(), actor))])
        self._record(actor, "continuity.switch", group, detail={"from": before, "to": to})
        return {"detail": f"{group} switched to {to or 'its default'}", "changed": True, "before": before}

    def switches(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._store.fetch("SELECT grp, active FROM continuity_switches")}

    def write(self, point: str, value: float, actor: str) -> dict:
        if self._writable is not None:
            why = self._writable(point)
            if why:
                raise StepFailed(f"write to {point} not allowed: {why}")
        if self._write_point is None:
            raise StepFailed("no source can write to devices here")
        return self._write_point(point, value, actor)

    def value(self, tag: str) -> float | None:
        return self.values([tag]).get(tag)

    def notify(self, params: dict, context: dict) -> dict:
        text = str(params.get("message", "{title}")).format_map(_Safe(context))[:5000]
        subject = str(params.get("subject", "plantguard: {title}")).format_map(_Safe(context))[:300]
        sent = []
        if params.get("webhook"):
            url = str(params["webhook"])
            why = check_url(url, self.settings.webhook_allowed_networks)
            if why:
                raise StepFailed(f"webhook {url}: {why}")
            import httpx

            r = httpx.post(url, json={"subject": subject, "message": text, **{k: v for k, v in context.items() if isinstance(v, (str, int, float))}},
                           timeout=10, follow_redirects=False)
            if r.status_code >= 300:
                raise StepFailed(f"webhook answered {r.status_code}")
            sent.append(f"webhook {r.status_code}")
        if params.get("email"):
            smtp = self.settings.smtp
            if smtp is None:
                raise StepFailed("an email step needs the continuity.smtp settings")
            to = [params["email"]] if isinstance(params["email"], str) else list(params["email"])
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = smtp.sender, ", ".join(to), subject
            msg.set_content(text)
            with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as s:
                if smtp.starttls:
                    s.starttls()
                if smtp.username:
                    s.login(smtp.username, os.environ.get(smtp.password_env or "", ""))
                refused = s.send_message(msg)
            if refused:
                raise StepFailed(f"refused recipients: {', '.join(refused)}")
            sent.append(f"email to {len(to)}")
        return {"detail": "; ".join(sent)}

    def work_order(self, params: dict, context: dict) -> dict:
        key = f"{context.get('run')}:{params.get('title')}"
        for wid, data in self._store.fetch("SELECT id, data FROM continuity_work_orders"):
            if json.loads(data).get("key") == key:  # idempotent: a retried or resumed step opens one order
                return {"detail": f"work order {wid} exists", "work_order": wid}
        wid = self._next("wo")
        wo = {"key": key, "title": str(params["title"]).format_map(_Safe(context))[:300], "asset": params.get("asset"),
              "due_in": params.get("due_in"), "incident": context.get("incident"), "run": context.get("run"),
              "priority": params.get("priority", "high"), "state": "open"}
        self._store.execute([("INSERT INTO continuity_work_orders (id, at_us, data) VALUES (?, ?, ?)",
                              (wid, self.clock(), json.dumps(wo)))])
        self._record("playbook", "continuity.work_order", f"work order {wid}", detail={"title": wo["title"]})
        return {"detail": f"work order {wid} opened: {wo['title']}", "work_order": wid}

    def work_orders(self, limit: int = 200) -> list[dict]:
        rows = self._store.fetch("SELECT id, at_us, data FROM continuity_work_orders ORDER BY id DESC LIMIT ?", (int(limit),))
        return [{"id": r[0], "at": r[1], **json.loads(r[2])} for r in rows]

    # -- storage --------------------------------------------------------------------------------------------
    def _max_id(self, table: str) -> int:
        return self._max_id_col(table, "id")

    def _max_id_col(self, table: str, col: str) -> int:
        rows = self._store.fetch(f"SELECT max({col}) FROM {table}")
        return int(rows[0][0] or 0) if rows else 0

    def _next(self, kind: str) -> int:
        with self._lock:
            self._ids[kind] += 1
            return self._ids[kind]

    def flush(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            rows = [(_UPSERT.format(t="continuity_incidents"),
                     (i.id, i.state, self.clock(), json.dumps(asdict(i), default=str)))
                    for i in (self._incidents.get(k) for k in sorted(dirty)) if i is not None]
        if rows:
            try:
                self._store.execute(rows)
            except Exception:  # noqa: BLE001 - kept dirty: written at the next turn (the store may be out)
                with self._lock:
                    self._dirty |= dirty
                log.exception("writing %d incident(s) failed; retried", len(rows))

    def _save_run(self, run: Run) -> None:
        self._store.execute([(_UPSERT.format(t="continuity_runs"), (run.id, run.state, self.clock(), json.dumps(run.as_dict())))])

    def _load(self) -> None:
        """Open incidents and active runs from the store: one unreadable row is skipped with a log line."""
        for (data,) in self._store.fetch("SELECT data FROM continuity_incidents WHERE state IN ('open', 'acknowledged', 'mitigated')"):
            inc = _incident(data)
            if inc is None or not inc.is_open:
                continue
            self._incidents[inc.id] = inc
            self._by_root[(inc.category, inc.root)] = inc.id
        books = {p.id: p for p in self.settings.playbooks}
        for (data,) in self._store.fetch("SELECT data FROM continuity_runs ORDER BY id"):
            try:
                run = Run.from_dict(json.loads(data))
            except Exception:  # noqa: BLE001
                log.exception("a stored playbook run could not be read; skipped")
                continue
            pb = books.get(run.playbook)
            if pb is None or [s.id for s in pb.steps] != [s.id for s in run.steps]:
                if run.state in ("running", "waiting_approval"):
                    run.state, run.detail = "cancelled", "its playbook changed or is gone since the run started"
                    self._save_run(run)
                self.runner._runs[run.id] = run
                continue
            self.runner.resume(run, pb)

    def health(self) -> dict:
        return {"worker_alive": self.alive(), "queued": len(self._q), "dropped": self.dropped, "handled": self.handled,
                "open_incidents": sum(1 for i in self._incidents.values() if i.is_open), "nodes": len(self.graph),
                "problems": len(self.problems)}


class _Safe(dict):
    def __missing__(self, k):
        return "{" + k + "}"


def _incident(data: str) -> Incident | None:
    try:
        return Incident(**json.loads(data))
    except Exception:  # noqa: BLE001 - one unreadable row must not stop the others from loading
        log.exception("a stored incident could not be read; skipped")
        return None


def _review(body: dict, inc: Incident, who: str, now: int) -> dict:
    actions = body.get("corrective_actions") or []
    if not isinstance(actions, list) or len(actions) > 100:
        raise InvalidInput("corrective_actions is a list of at most 100 actions")
    clean = []
    for k, a in enumerate(actions):
        if not isinstance(a, dict) or not str(a.get("action", "")).strip():
            raise InvalidInput(f"corrective_actions[{k}] needs an action")
        clean.append({"action": str(a["action"])[:500], "owner": str(a.get("owner", ""))[:200],
                      "due": str(a.get("due", ""))[:40], "done": bool(a.get("done", False))})
    from plantguard.continuity.incidents import durations

    return {"by": who, "at": now, "summary": str(body.get("summary", ""))[:5000], "root_cause": str(body.get("root_cause", ""))[:2000],
            "corrective_actions": clean, "timeline": list(inc.timeline), "durations": durations(inc)}
