"""Playbooks: declarative response plans, run step by step with approvals, timeouts, retries and compensation.

    runner = PlaybookRunner(actions, save=store_run, audit=audit, clock=clock)
    run = runner.start(playbook, incident_id=7, actor="alice")       # runs in its own thread
    runner.decide(run.id, "s1", approve=True, actor=Principal...)   # an approval step goes on

Rules (the complaints about chaos and runbook tools turned into tests): every transition of a run and of a step
is saved and audited before the next begins, so a run never stops half-way without a record; a step that fails
(after its retries) or times out stops the run, then the compensations of the steps already done run in reverse
order, each recorded (a failed compensation is recorded as such and the others still run); a step already done
is not done again when a run is resumed (idempotent by run and step id). An approval has a role, a time to live
and a default when it expires (skip the step, fail the run, or approve).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol

from plantguard.errors import InvalidInput, NotFound, PlantguardError

log = logging.getLogger(__name__)

ROLE_RANK = {"viewer": 0, "operator": 1, "engineer": 2, "admin": 3}
RUN_STATES = ("running", "waiting_approval", "succeeded", "failed", "compensated", "cancelled")
UNDOABLE = {"quarantine", "switch", "safe_state"}
MAX_RUNS_ACTIVE = 32


class StepFailed(PlantguardError):
    """A step's action did not do what it should (the detail says why)."""


class Actions(Protocol):
    """What steps act on; the continuity service gives the real ones (quarantine, the write gate, SMTP...)."""

    def quarantine(self, device: str, reason: str, actor: str) -> dict: ...
    def release(self, device: str, actor: str) -> dict: ...
    def switch(self, group: str, to: str, actor: str) -> dict: ...
    def write(self, point: str, value: float, actor: str) -> dict: ...
    def notify(self, params: dict, context: dict) -> dict: ...
    def work_order(self, params: dict, context: dict) -> dict: ...
    def value(self, tag: str) -> float | None: ...


@dataclass
class StepRecord:
    id: str
    type: str
    state: str = "pending"   # pending, waiting_approval, running, done, skipped, failed, compensated, compensation_failed
    attempts: int = 0
    started_at: int | None = None
    ended_at: int | None = None
    detail: str = ""
    result: dict = field(default_factory=dict)
    approval: dict | None = None     # role, requested_at, expires_at, decided_by, decision


@dataclass
class Run:
    id: int
    playbook: str
    incident_id: int | None
    started_by: str
    state: str = "running"
    started_at: int = 0
    ended_at: int | None = None
    steps: list[StepRecord] = field(default_factory=list)
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Run":
        steps = [StepRecord(**s) for s in d.pop("steps", [])]
        return cls(**d, steps=steps)


def check_playbook(pb, *, writable: Callable[[str], str | None] | None = None) -> list[tuple[str, str]]:
    """Problems of one playbook by field path: missing parameters per step type, writes that the configuration
    does not allow (`writable(point)` returns why not, or None)."""
    need = {"quarantine": ("device",), "switch": ("group", "to"), "safe_state": ("point", "value"),
            "notify": (), "work_order": ("title",), "wait": ("tag", "op", "value"), "verify": ("tag", "op", "value")}
    out = []
    seen = set()
    for k, s in enumerate(pb.steps):
        p = f"steps[{k}]"
        if s.id in seen:
            out.append((f"{p}.id", f"duplicate step id {s.id!r}"))
        seen.add(s.id)
        for name in need[s.type]:
            if name not in s.params:
                out.append((f"{p}.params.{name}", f"a {s.type} step needs {name!r}"))
        if s.type in ("wait", "verify") and s.params.get("op") not in (None, *_OPS):
            out.append((f"{p}.params.op", f"op is one of {', '.join(_OPS)}"))
        if s.type == "safe_state" and "value" in s.params:
            try:
                float(s.params["value"])
            except (TypeError, ValueError):
                out.append((f"{p}.params.value", "a safe-state value is a number"))
            if "restore" in s.params:
                try:
                    float(s.params["restore"])
                except (TypeError, ValueError):
                    out.append((f"{p}.params.restore", "a restore value is a number"))
        if s.type == "safe_state" and writable is not None and "point" in s.params:
            why = writable(str(s.params["point"]))
            if why:
                out.append((f"{p}.params.point", f"this write is not allowed by the configuration: {why}"))
        if s.type == "notify" and not (s.params.get("webhook") or s.params.get("email")):
            out.append((f"{p}.params", "a notify step names a webhook or an email address"))
    return out


_OPS = (">", ">=", "<", "<=", "==", "!=")


def _compare(v: float, op: str, ref: float) -> bool:
    return {">": v > ref, ">=": v >= ref, "<": v < ref, "<=": v <= ref, "==": v == ref, "!=": v != ref}[op]


class PlaybookRunner:
    def __init__(self, actions: Actions, *, save: Callable[[Run], None], audit, clock: Callable[[], int],
                 next_id: Callable[[], int], poll_s: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> None:
        self.actions, self._save, self._audit, self.clock, self._next_id = actions, save, audit, clock, next_id
        self.poll_s, self._sleep = poll_s, sleep
        self._runs: dict[int, Run] = {}
        self._books: dict[int, Any] = {}
        self._context: dict[int, dict] = {}
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._threads: dict[int, threading.Thread] = {}
        self._stop = False
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="playbook-step")

    # -- control -------------------------------------------------------------------------------------------
    def start(self, playbook, *, incident_id: int | None, actor: str, context: dict | None = None) -> Run:
        with self._lock:
            active = sum(1 for r in self._runs.values() if r.state in ("running", "waiting_approval"))
            if active >= MAX_RUNS_ACTIVE:
                raise InvalidInput(f"{active} playbook runs are active already (at most {MAX_RUNS_ACTIVE})")
            run = Run(self._next_id(), playbook.id, incident_id, actor, started_at=self.clock(),
                      steps=[StepRecord(s.id, s.type) for s in playbook.steps])
            self._runs[run.id] = run
            self._books[run.id] = playbook
            self._context[run.id] = dict(context or {})
            self._record(run, None, "playbook.run_started", {"playbook": playbook.id, "incident": incident_id}, actor)
            self._spawn(run)
        return run

    def resume(self, run: Run, playbook) -> None:
        """After a restart: a run that was active goes on from its first step not done (done ones are kept)."""
        with self._lock:
            self._runs[run.id] = run
            self._books[run.id] = playbook
            self._context.setdefault(run.id, {})
            if run.state in ("running", "waiting_approval"):
                self._spawn(run)

    def _spawn(self, run: Run) -> None:
        t = threading.Thread(target=self._execute, args=(run.id,), name=f"playbook-{run.id}", daemon=True)
        self._threads[run.id] = t
        t.start()

    def decide(self, run_id: int, step_id: str, *, approve: bool, actor: str, role: str, note: str = "") -> Run:
        with self._lock:
            run = self.get(run_id)
            step = next((s for s in run.steps if s.id == step_id), None)
            if step is None:
                raise NotFound(f"run {run_id} has no step {step_id!r}")
            if step.state != "waiting_approval" or step.approval is None:
                raise InvalidInput(f"step {step_id!r} is not waiting for an approval (it is {step.state})")
            need = step.approval["role"]
            if ROLE_RANK.get(role, -1) < ROLE_RANK[need]:
                self._audit.record(actor, "playbook.approval_refused", f"run {run_id}/{step_id}", result="refused",
                                   detail={"role": role, "needs": need})
                raise PermissionError(f"approving step {step_id!r} needs the {need} role (or higher); you are {role}")
            step.approval.update(decided_by=actor, decision="approved" if approve else "rejected",
                                 decided_at=self.clock(), note=note[:500])
            self._record(run, step, "playbook.step_approved" if approve else "playbook.step_rejected", {"note": note[:500]}, actor)
            self._wake.notify_all()
            return run

    def cancel(self, run_id: int, actor: str) -> Run:
        with self._lock:
            run = self.get(run_id)
            if run.state not in ("running", "waiting_approval"):
                raise InvalidInput(f"run {run_id} is {run.state}")
            run.detail = f"cancelled by {actor}"
            run.state = "cancelled"
            self._record(run, None, "playbook.run_cancelled", {}, actor)
            self._wake.notify_all()
            return run

    def get(self, run_id: int) -> Run:
        run = self._runs.get(run_id)
        if run is None:
            raise NotFound(f"no playbook run {run_id}")
        return run

    def list(self) -> list[Run]:
        with self._lock:
            return sorted(self._runs.values(), key=lambda r: -r.id)

    def wait(self, run_id: int, timeout: float) -> Run:
        t = self._threads.get(run_id)
        if t is not None:
            t.join(timeout)
        return self.get(run_id)

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify_all()
        for t in list(self._threads.values()):
            t.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- execution -----------------------------------------------------------------------------------------
    def _record(self, run: Run, step: StepRecord | None, action: str, detail: dict, actor: str = "playbook") -> None:
        """Saved, then audited, before anything else happens: the record leads the act."""
        try:
            self._save(run)
        except Exception:  # noqa: BLE001 - the audit entry below still records the transition
            log.exception("saving playbook run %s failed", run.id)
        target = f"run {run.id}" + (f"/{step.id}" if step else "")
        self._audit.record(actor, action, target, result=(step.state if step else run.state), detail=detail)

    def _execute(self, run_id: int) -> None:
        run, pb = self._runs[run_id], self._books[run_id]
        done: list[tuple[StepRecord, Any]] = []
        for rec, spec in zip(run.steps, pb.steps):
            if rec.state in ("done", "skipped"):
                if rec.state == "done":
                    done.append((rec, spec))
                continue
            if self._stop or run.state == "cancelled":
                return
            if spec.approval is not None and not self._approved(run, rec, spec):
                if run.state == "cancelled" or self._stop:
                    return
                if rec.state == "skipped":
                    continue
                self._fail(run, rec, done, rec.detail)
                return
            ok = self._attempt(run, rec, spec)
            if not ok:
                self._fail(run, rec, done, rec.detail)
                return
            done.append((rec, spec))
        with self._lock:
            run.state, run.ended_at = "succeeded", self.clock()
            self._record(run, None, "playbook.run_succeeded", {})

    def _approved(self, run: Run, rec: StepRecord, spec) -> bool:
        with self._lock:
            if rec.approval is None:
                now = self.clock()
                rec.approval = {"role": spec.approval.role, "requested_at": now,
                                "expires_at": now + int(spec.approval.ttl * 1e6), "on_expiry": spec.approval.on_expiry}
            rec.state = "waiting_approval"
            run.state = "waiting_approval"
            self._record(run, rec, "playbook.approval_requested", {"role": spec.approval.role, "ttl_s": spec.approval.ttl})
            while True:
                decision = rec.approval.get("decision")
                if decision == "approved":
                    rec.state, run.state = "pending", "running"
                    return True
                if decision == "rejected":
                    rec.state, rec.detail = "failed", f"rejected by {rec.approval.get('decided_by')}"
                    return False
                if self._stop or run.state == "cancelled":
                    return False
                if self.clock() >= rec.approval["expires_at"]:
                    what = spec.approval.on_expiry
                    rec.approval["decision"] = f"expired:{what}"
                    if what == "approve":
                        rec.state, run.state = "pending", "running"
                        self._record(run, rec, "playbook.approval_expired", {"default": what})
                        return True
                    if what == "skip":
                        rec.state, run.state, rec.detail = "skipped", "running", "approval expired: skipped"
                        self._record(run, rec, "playbook.approval_expired", {"default": what})
                        return False
                    rec.state, rec.detail = "failed", "approval expired"
                    return False
                self._wake.wait(self.poll_s)

    def _attempt(self, run: Run, rec: StepRecord, spec) -> bool:
        ctx = {"run": run.id, "incident": run.incident_id, "playbook": run.playbook, **self._context.get(run.id, {})}
        for attempt in range(spec.retries + 1):
            with self._lock:
                rec.state, rec.attempts, rec.started_at = "running", rec.attempts + 1, self.clock()
                self._record(run, rec, "playbook.step_started", {"attempt": rec.attempts, "type": spec.type})
            try:
                fut = self._pool.submit(self._do, spec, ctx, run)
                result = fut.result(timeout=spec.timeout)
                with self._lock:
                    rec.state, rec.ended_at, rec.result = "done", self.clock(), _plain(result)
                    rec.detail = str(result.get("detail", "")) if isinstance(result, dict) else ""
                    self._record(run, rec, "playbook.step_done", {"result": rec.result})
                return True
            except FutureTimeout:
                rec.detail = f"timed out after {spec.timeout:g} s"
            except Exception as e:  # noqa: BLE001 - a failing action fails its step, recorded
                rec.detail = f"{type(e).__name__}: {e}"[:1000]
            with self._lock:
                rec.ended_at = self.clock()
                rec.state = "failed"
                self._record(run, rec, "playbook.step_failed", {"attempt": rec.attempts, "why": rec.detail})
        return False

    def _do(self, spec, ctx: dict, run: Run) -> dict:
        p, a, who = spec.params, self.actions, f"playbook:{run.playbook}"
        if spec.type == "quarantine":
            return a.quarantine(str(p["device"]), str(p.get("reason", f"playbook {run.playbook}")), who)
        if spec.type == "switch":
            return a.switch(str(p["group"]), str(p["to"]), who)
        if spec.type == "safe_state":
            return a.write(str(p["point"]), float(p["value"]), who)
        if spec.type == "notify":
            return a.notify(p, ctx)
        if spec.type == "work_order":
            return a.work_order(p, ctx)
        if spec.type in ("wait", "verify"):
            return self._condition(spec, run)
        raise StepFailed(f"unknown step type {spec.type!r}")

    def _condition(self, spec, run: Run) -> dict:
        """verify: the condition holds now; wait: it holds before the step's timeout (polled)."""
        p = spec.params
        tag, op, ref = str(p["tag"]), str(p["op"]), float(p["value"])
        deadline = time.monotonic() + spec.timeout
        while True:
            v = self.actions.value(tag)
            if v is not None and _compare(v, op, ref):
                return {"detail": f"{tag} = {v:g} {op} {ref:g}", "value": v}
            if spec.type == "verify" or time.monotonic() >= deadline or self._stop or run.state == "cancelled":
                raise StepFailed(f"{tag} = {v if v is not None else 'no value'}, not {op} {ref:g}")
            self._sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))

    def _fail(self, run: Run, failed: StepRecord, done: list, why: str) -> None:
        with self._lock:
            run.state, run.detail = "failed", f"step {failed.id} failed: {why}"
            failed.state = "failed"
            self._record(run, failed, "playbook.run_failed", {"why": why})
        any_undone = False
        for rec, spec in reversed(done):  # rollbacks always run once something was done
            if not spec.compensate or spec.type not in UNDOABLE:
                continue
            any_undone = True
            try:
                result = self._undo(spec, run)
                rec.state, rec.detail = "compensated", str(result.get("detail", "undone"))
                self._record(run, rec, "playbook.step_compensated", {"result": _plain(result)})
            except Exception as e:  # noqa: BLE001 - recorded; the other compensations still run
                rec.state, rec.detail = "compensation_failed", f"{type(e).__name__}: {e}"[:1000]
                self._record(run, rec, "playbook.compensation_failed", {"why": rec.detail})
        with self._lock:
            if any_undone:
                run.state = "compensated" if all(r.state != "compensation_failed" for r in run.steps) else "failed"
            run.ended_at = self.clock()
            self._record(run, None, "playbook.run_ended", {"state": run.state})

    def _undo(self, spec, run: Run) -> dict:
        p, a, who = spec.params, self.actions, f"playbook:{run.playbook}"
        if spec.type == "quarantine":
            return a.release(str(p["device"]), who)
        if spec.type == "switch":
            return a.switch(str(p["group"]), str(p.get("back", "")), who)
        if "restore" not in p:
            raise StepFailed("no restore value given for this safe-state write")
        return a.write(str(p["point"]), float(p["restore"]), who)


def _plain(result: Any) -> dict:
    if not isinstance(result, dict):
        return {"value": str(result)[:500]}
    return {str(k)[:100]: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v)[:500]) for k, v in list(result.items())[:50]}
