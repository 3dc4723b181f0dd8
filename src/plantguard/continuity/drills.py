"""Drills: experiments in the style of Chaos Toolkit, with the journal and report a continuity manager files.

    exp = Experiment("gateway-outage", hypothesis=[Probe("services ok", fn)], method=[Action("cut", fn)],
                     rollbacks=[Action("restore", fn)], intrusive=True)
    journal = run(exp, clock=..., advance=..., observe=...)

The rules, from the issue trackers of the tools that came before:
- the steady-state hypothesis is a gate: when it does not hold before, nothing is injected and no rollback runs
  (there is nothing to roll back), and the journal says so ("not_started");
- once the method has started, every rollback runs, even when a method step raised, and a rollback that fails
  is recorded as failed and fails the drill (it never reports success);
- after the rollbacks the hypothesis is checked again, polled until it holds or the recovery budget ends;
- an intrusive experiment is refused against a real plant (`plant="real"`), before anything runs.

Time is the plant's simulated time (`clock`), advanced by the harness in steps, so measured detection and recovery
times do not depend on how busy the machine is.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)
US = 1_000_000


class DrillRefused(Exception):
    """An intrusive drill against a real plant, or an unknown scenario."""


@dataclass
class Probe:
    name: str
    check: Callable[[], bool]


@dataclass
class Action:
    name: str
    do: Callable[[], Any]


@dataclass
class Experiment:
    title: str
    description: str
    hypothesis: list[Probe]
    method: list[Action]
    rollbacks: list[Action]
    detect: Callable[[], bool] | None = None          # the platform noticed (an alarm, an incident)
    hold_s: float = 600.0                              # how long the failure stays injected
    recovery_budget_s: float = 3600.0                  # how long the hypothesis may take to hold again
    intrusive: bool = True
    targets: dict = field(default_factory=dict)        # service id -> {"rto_s", "rpo_s"} judged


@dataclass
class Journal:
    scenario: str
    status: str = "not_started"     # not_started, passed, failed
    started: int = 0
    ended: int = 0
    steady_before: list[dict] = field(default_factory=list)
    steady_after: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    injected_at: int | None = None
    detected_at: int | None = None
    restored_at: int | None = None  # rollbacks done
    recovered_at: int | None = None  # steady state again
    detection_s: float | None = None
    recovery_s: float | None = None
    services: list[dict] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _probe_all(probes: list[Probe]) -> list[dict]:
    out = []
    for p in probes:
        try:
            ok = bool(p.check())
            out.append({"probe": p.name, "ok": ok})
        except Exception as e:  # noqa: BLE001 - a probe that raises does not hold
            out.append({"probe": p.name, "ok": False, "error": f"{type(e).__name__}: {e}"[:300]})
    return out


def run(exp: Experiment, *, clock: Callable[[], int], advance: Callable[[float], None], step_s: float = 10.0,
        observe: Callable[[], None] | None = None, judge: Callable[[Journal], None] | None = None,
        plant: str = "simulated") -> Journal:
    """Long on purpose: the experiment's phases in order (gate, method, hold, rollbacks, verify, judge), each
    recorded in the journal before the next; splitting them would scatter the rollback-always rule."""
    if plant == "real" and exp.intrusive:
        raise DrillRefused(f"{exp.title} injects a failure: it is refused against a real plant (only non-intrusive drills run there)")
    j = Journal(exp.title, started=clock())

    def event(what: str, **kw) -> None:
        j.events.append({"at": clock(), "what": what, **kw})

    j.steady_before = _probe_all(exp.hypothesis)
    if not all(p["ok"] for p in j.steady_before):
        j.status, j.ended = "not_started", clock()
        j.reasons.append("the steady state did not hold before the drill: nothing was injected")
        event("steady state does not hold; drill not started")
        return j
    event("steady state holds")
    j.injected_at = clock()
    try:
        for a in exp.method:
            event(f"method: {a.name}")
            a.do()
        waited = 0.0
        while waited < exp.hold_s:
            advance(step_s)
            waited += step_s
            if observe is not None:
                observe()
            if j.detected_at is None and exp.detect is not None and _safe(exp.detect):
                j.detected_at = clock()
                event("detected")
    except Exception as e:  # noqa: BLE001 - the method failed: recorded, and the rollbacks still run
        j.reasons.append(f"method failed: {type(e).__name__}: {e}")
        event("method failed", error=str(e)[:300])
    rollback_failed = False
    for a in exp.rollbacks:
        try:
            event(f"rollback: {a.name}")
            a.do()
        except Exception as e:  # noqa: BLE001 - recorded as failed; the next rollbacks still run
            rollback_failed = True
            j.reasons.append(f"rollback {a.name} failed: {type(e).__name__}: {e}")
            event("rollback failed", error=str(e)[:300])
    j.restored_at = clock()
    waited = 0.0
    while True:
        if observe is not None:
            observe()
        if j.detected_at is None and exp.detect is not None and _safe(exp.detect):
            j.detected_at = clock()
            event("detected (after the rollback)")
        j.steady_after = _probe_all(exp.hypothesis)
        if all(p["ok"] for p in j.steady_after):
            j.recovered_at = clock()
            event("steady state holds again")
            break
        if waited >= exp.recovery_budget_s:
            j.reasons.append(f"the steady state did not hold within {exp.recovery_budget_s:g} s after the rollbacks")
            event("not recovered")
            break
        advance(step_s)
        waited += step_s
    if j.detected_at is not None:
        j.detection_s = (j.detected_at - j.injected_at) / US
    elif exp.detect is not None:
        j.reasons.append("the failure was not detected")
    if j.recovered_at is not None:
        j.recovery_s = (j.recovered_at - j.restored_at) / US
    if judge is not None:
        judge(j)
    failed = rollback_failed or j.recovered_at is None or (exp.detect is not None and j.detected_at is None) \
        or any(not s.get("passed", True) for s in j.services) or any("method failed" in r for r in j.reasons)
    j.status = "failed" if failed else "passed"
    j.ended = clock()
    event(f"drill {j.status}")
    return j


def _safe(fn) -> bool:
    try:
        return bool(fn())
    except Exception:  # noqa: BLE001
        return False


# -- reports -------------------------------------------------------------------------------------------------
def _iso(us: int | None) -> str:
    if us is None:
        return "—"
    import datetime as dt

    return dt.datetime.fromtimestamp(us / US, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _dur(s: float | None) -> str:
    return "—" if s is None else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def markdown(j: Journal) -> str:
    lines = [f"# Drill: {j.scenario} — {j.status.upper()}", "",
             f"Started {_iso(j.started)}, injected {_iso(j.injected_at)}, restored {_iso(j.restored_at)}, "
             f"steady again {_iso(j.recovered_at)}.", "",
             f"- detection time: {_dur(j.detection_s)}", f"- recovery time after the rollbacks: {_dur(j.recovery_s)}",
             f"- data: {json.dumps(j.data)}", "", "| service | disrupted | RTO | data lost | RPO | result |", "|---|---|---|---|---|---|"]
    for s in j.services:
        lines.append(f"| {s['service']} | {_dur(s.get('disrupted_s'))} | {_dur(s.get('rto_s'))} | {_dur(s.get('lost_s'))} | "
                     f"{_dur(s.get('rpo_s'))} | {'pass' if s.get('passed') else 'FAIL'} |")
    if j.reasons:
        lines += ["", "Why:", *[f"- {r}" for r in j.reasons]]
    lines += ["", "| time | event |", "|---|---|", *[f"| {_iso(e['at'])} | {e['what']} |" for e in j.events]]
    return "\n".join(lines) + "\n"


def html_report(j: Journal) -> str:
    """One self-contained file: the table and an inline SVG timeline (no script, no external asset)."""
    t0, t1 = j.started, max(j.ended, j.started + 1)
    width = 900

    def x(t):
        return 20 + (t - t0) / (t1 - t0) * (width - 40)
    marks = []
    for name, t, colour in (("injected", j.injected_at, "#c0392b"), ("detected", j.detected_at, "#e67e22"),
                            ("restored", j.restored_at, "#2980b9"), ("steady", j.recovered_at, "#27ae60")):
        if t is not None:
            marks.append(f'<line x1="{x(t):.1f}" y1="20" x2="{x(t):.1f}" y2="70" stroke="{colour}" stroke-width="2"/>'
                         f'<text x="{x(t) + 3:.1f}" y="{85 + 12 * len(marks) % 36}" font-size="11" fill="{colour}">{name} {_iso(t)[11:19]}</text>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="130" role="img" aria-label="drill timeline">'
           f'<rect x="20" y="40" width="{width - 40}" height="8" fill="#ddd"/>'
           + (f'<rect x="{x(j.injected_at):.1f}" y="40" width="{max(1.0, x(j.restored_at or t1) - x(j.injected_at)):.1f}" height="8" fill="#e74c3c"/>'
              if j.injected_at else "") + "".join(marks) + "</svg>")
    rows = "".join(f"<tr><td>{html.escape(s['service'])}</td><td>{_dur(s.get('disrupted_s'))}</td><td>{_dur(s.get('rto_s'))}</td>"
                   f"<td>{_dur(s.get('lost_s'))}</td><td>{_dur(s.get('rpo_s'))}</td><td>{'pass' if s.get('passed') else 'FAIL'}</td></tr>"
                   for s in j.services)
    events = "".join(f"<li>{_iso(e['at'])}: {html.escape(e['what'])}</li>" for e in j.events)
    why = "".join(f"<li>{html.escape(r)}</li>" for r in j.reasons)
    return (f"<!doctype html><meta charset=utf-8><title>Drill {html.escape(j.scenario)}</title>"
            f"<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{border:1px solid #ccc;padding:.3em}}</style>"
            f"<h1>Drill {html.escape(j.scenario)}: {j.status}</h1>{svg}"
            f"<p>Detection {_dur(j.detection_s)} · recovery after the rollbacks {_dur(j.recovery_s)} · data {html.escape(json.dumps(j.data))}</p>"
            f"<table><tr><th>Service</th><th>Disrupted</th><th>RTO</th><th>Data lost</th><th>RPO</th><th>Result</th></tr>{rows}</table>"
            + (f"<h2>Why</h2><ul>{why}</ul>" if why else "") + f"<h2>Journal</h2><ol>{events}</ol>")
