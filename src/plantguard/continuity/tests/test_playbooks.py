"""Playbook runs: a failure and a timeout injected at every step, compensation checked; approvals by role, with
their time to live and default; every transition recorded."""

import threading

import pytest

from plantguard.continuity.config import Playbook
from plantguard.continuity.playbooks import PlaybookRunner, StepFailed, check_playbook


class Audit:
    def __init__(self):
        self.rows = []

    def record(self, actor, action, target=None, result="ok", detail=None):
        self.rows.append((actor, action, target, result))


class Plant:
    """The steps' targets, with failures and hangs to inject (the real actions are the continuity service's)."""

    def __init__(self, fail=None, hang=None):
        self.fail, self.hang, self.log = fail, hang, []
        self.quarantined, self.active, self.values = set(), {}, {"t": 1.0}
        self.release_gate = threading.Event()

    def _maybe(self, what):
        if self.fail == what:
            raise StepFailed(f"{what} failed (injected)")
        if self.hang == what:
            self.release_gate.wait(10)

    def quarantine(self, device, reason, actor):
        self._maybe("quarantine")
        self.quarantined.add(device)
        self.log.append(("quarantine", device))
        return {"detail": "q"}

    def release(self, device, actor):
        self.quarantined.discard(device)
        self.log.append(("release", device))
        return {"detail": "r"}

    def switch(self, group, to, actor):
        self._maybe("switch")
        self.active[group] = to
        self.log.append(("switch", group, to))
        return {"detail": "s"}

    def write(self, point, value, actor):
        self._maybe("safe_state")
        self.log.append(("write", point, value))
        return {"detail": "w"}

    def notify(self, params, context):
        self._maybe("notify")
        self.log.append(("notify",))
        return {"detail": "n"}

    def work_order(self, params, context):
        self._maybe("work_order")
        self.log.append(("wo",))
        return {"detail": "wo"}

    def value(self, tag):
        return self.values.get(tag)


STEPS = [
    {"id": "isolate", "type": "quarantine", "params": {"device": "d1"}},
    {"id": "failover", "type": "switch", "params": {"group": "feed", "to": "standby", "back": "main"}},
    {"id": "safe", "type": "safe_state", "params": {"point": "p", "value": 0, "restore": 1}},
    {"id": "tell", "type": "notify", "params": {"webhook": "https://example.com/hook"}},
    {"id": "order", "type": "work_order", "params": {"title": "fix"}},
    {"id": "check", "type": "verify", "params": {"tag": "t", "op": ">=", "value": 1}},
]


def runner(plant, clock=None):
    ids = iter(range(1, 1000))
    saved = []
    audit = Audit()
    r = PlaybookRunner(plant, save=lambda run: saved.append((run.state, [s.state for s in run.steps])), audit=audit,
                       clock=clock or (lambda: 0), next_id=lambda: next(ids), poll_s=0.01)
    return r, saved, audit


def test_a_clean_run_does_every_step_in_order():
    plant = Plant()
    r, saved, audit = runner(plant)
    run = r.wait(r.start(Playbook(id="pb", steps=STEPS), incident_id=1, actor="alice").id, 10)
    assert run.state == "succeeded" and [s.state for s in run.steps] == ["done"] * 6
    assert [x[0] for x in plant.log] == ["quarantine", "switch", "write", "notify", "wo"]
    assert ("alice", "playbook.run_started", "run 1", "running") in audit.rows


@pytest.mark.parametrize("k", range(6))
def test_a_failure_at_any_step_stops_the_run_and_compensates_what_was_done(k):
    step = STEPS[k]
    plant = Plant(fail=step["type"] if step["type"] != "verify" else None)
    if step["type"] == "verify":
        plant.values["t"] = 0.0                      # the condition does not hold
    r, saved, audit = runner(plant)
    run = r.wait(r.start(Playbook(id="pb", steps=STEPS), incident_id=None, actor="a").id, 10)
    assert run.steps[k].state == "failed" and all(s.state == "pending" for s in run.steps[k + 1:])
    undoable = [s for s in STEPS[:k] if s["type"] in ("quarantine", "switch", "safe_state")]
    assert [s.state for s in run.steps[:k]] == ["compensated" if s in undoable else "done" for s in STEPS[:k]]
    undo = [x for x in plant.log if x[0] in ("release",) or (x[0] == "switch" and x[2] == "main") or (x[0] == "write" and x[2] == 1)]
    assert len(undo) == len(undoable)                 # each undone once, newest first
    assert run.state == ("compensated" if undoable else "failed")
    assert "d1" not in plant.quarantined
    assert saved[-1][0] == run.state                  # the last record is the final state, never half-way


@pytest.mark.parametrize("k", range(5))
def test_a_timeout_at_any_step_fails_it_and_compensates(k):
    plant = Plant(hang=STEPS[k]["type"])
    steps = [dict(s, timeout=0.2) for s in STEPS]
    r, *_ = runner(plant)
    run = r.wait(r.start(Playbook(id="pb", steps=steps), incident_id=None, actor="a").id, 10)
    plant.release_gate.set()
    assert run.steps[k].state == "failed" and "timed out" in run.steps[k].detail
    assert run.state in ("failed", "compensated")


def test_retries_then_success():
    plant = Plant()
    calls = {"n": 0}
    orig = plant.notify

    def flaky(p, c):
        calls["n"] += 1
        if calls["n"] < 3:
            raise StepFailed("busy")
        return orig(p, c)
    plant.notify = flaky
    r, *_ = runner(plant)
    pb = Playbook(id="pb", steps=[{"id": "tell", "type": "notify", "retries": 2, "params": {"webhook": "https://x.example/h"}}])
    run = r.wait(r.start(pb, incident_id=None, actor="a").id, 10)
    assert run.state == "succeeded" and run.steps[0].attempts == 3


def test_approval_needs_the_role_and_expires_to_its_default():
    now = {"t": 0}
    plant = Plant()
    r, _, audit = runner(plant, clock=lambda: now["t"])
    pb = Playbook(id="pb", steps=[{"id": "s1", "type": "notify", "params": {"webhook": "https://x.example/h"},
                                   "approval": {"role": "engineer", "ttl": 60, "on_expiry": "fail"}}])
    run = r.start(pb, incident_id=None, actor="a")
    for _ in range(500):
        if run.steps[0].state == "waiting_approval":
            break
        threading.Event().wait(0.01)
    with pytest.raises(PermissionError):
        r.decide(run.id, "s1", approve=True, actor="op", role="operator")
    assert plant.log == []                             # nothing ran on a refused approval
    r.decide(run.id, "s1", approve=True, actor="eng", role="engineer")
    assert r.wait(run.id, 10).state == "succeeded"
    # a second run nobody approves: its time to live passes and the default (fail) applies
    run2 = r.start(pb, incident_id=None, actor="a")
    for _ in range(500):
        if run2.steps[0].state == "waiting_approval":
            break
        threading.Event().wait(0.01)
    now["t"] = 61_000_000
    assert r.wait(run2.id, 10).state == "failed" and run2.steps[0].approval["decision"] == "expired:fail"
    skip = Playbook(id="pb2", steps=[{"id": "s1", "type": "notify", "params": {"webhook": "https://x.example/h"},
                                      "approval": {"ttl": 1, "on_expiry": "skip"}}, {"id": "s2", "type": "work_order", "params": {"title": "x"}}])
    run3 = r.start(skip, incident_id=None, actor="a")
    for _ in range(500):
        if run3.steps[0].state == "waiting_approval":
            break
        threading.Event().wait(0.01)
    now["t"] += 2_000_000
    assert r.wait(run3.id, 10).state == "succeeded" and [s.state for s in run3.steps] == ["skipped", "done"]


def test_resume_does_not_redo_done_steps():
    plant = Plant()
    r, *_ = runner(plant)
    run = r.wait(r.start(Playbook(id="pb", steps=STEPS[:2]), incident_id=None, actor="a").id, 10)
    n = len(plant.log)
    run.state = "running"
    r.resume(run, Playbook(id="pb", steps=STEPS[:2]))
    assert r.wait(run.id, 10).state == "succeeded" and len(plant.log) == n


def test_bad_playbooks_are_refused_by_field_path():
    pb = Playbook(id="pb", steps=[{"id": "a", "type": "safe_state", "params": {"point": "x/y", "value": "hot"}},
                                  {"id": "a", "type": "wait", "params": {"tag": "t", "op": "~", "value": 1}},
                                  {"id": "c", "type": "notify", "params": {}}])
    got = dict(check_playbook(pb, writable=lambda p: "no connector configures it writable"))
    assert "number" in got["steps[0].params.value"] and "not allowed" in got["steps[0].params.point"]
    assert "duplicate" in got["steps[1].id"] and "op is one of" in got["steps[1].params.op"]
    assert "webhook or an email" in got["steps[2].params"]
    with pytest.raises(Exception):
        Playbook(id="pb", steps=[{"id": "a", "type": "reboot_plc"}])
