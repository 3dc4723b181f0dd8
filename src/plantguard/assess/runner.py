"""Pre-connection assessment: probe every connector of a configuration (read-only) and judge each device link.

Each connector type's own ``probe()`` does the talking to devices; this module only runs the probes one after
the other and classifies what they found:

    unreachable       the link could not be opened at all
    needs attention   reachable, but an item failed to read, the planned poll rate exceeds the rate the device
                      sustained, the probe itself failed, or the probe reported risks
    compatible        reachable, every item read, within budget, no risks
    not assessable    the connector type has no probe (listed with the reason)

The assessment passes (``Assessment.ok``, exit status 0) when every link is reachable, every item read and every
link is within budget. Risks alone do not fail it: they are often accepted on purpose (a plain-text protocol on
an isolated cell network) and a check in a pipeline should not fail forever on them; they stay in the report.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path


from plantguard.connectors.base import Connector, ProbeResult
from plantguard.errors import ConfigError, ConfigProblem
from plantguard.timeutil import Clock, now_us

COMPATIBLE, ATTENTION, UNREACHABLE, NOT_ASSESSABLE = "compatible", "needs attention", "unreachable", "not assessable"
STATUSES = (COMPATIBLE, ATTENTION, UNREACHABLE, NOT_ASSESSABLE)


@dataclass
class LinkAssessment:
    result: ProbeResult
    status: str
    connector: str = ""  # the connector instance's name in the configuration
    type: str = ""
    findings: list[str] = field(default_factory=list)  # why the link is not compatible, most important first
    blocking: bool = False  # a finding that fails the assessment (unreachable, failed item, over budget, probe error)
    load_pct: float | None = None  # planned rate as a percentage of the safe rate

    @property
    def within_budget(self) -> bool | None:
        return None if self.load_pct is None else self.load_pct <= 100.0


@dataclass
class Skipped:
    connector: str
    type: str
    reason: str


@dataclass
class Assessment:
    links: list[LinkAssessment]
    skipped: list[Skipped]
    generated_at: int
    source: str | None = None
    max_rps: float = 50.0
    duration_s: float = 5.0

    @property
    def ok(self) -> bool:
        return not any(la.blocking for la in self.links)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for la in self.links:
            out[la.status] += 1
        out[NOT_ASSESSABLE] = len(self.skipped)
        return out


def judge(r: ProbeResult) -> LinkAssessment:
    """Classifies one probe result."""
    la = LinkAssessment(r, COMPATIBLE)
    if r.planned_rps is not None and r.safe_poll_rps:
        la.load_pct = r.planned_rps / r.safe_poll_rps * 100
    if not r.reachable:
        la.status, la.blocking = UNREACHABLE, True
        la.findings.append(f"{r.endpoint} could not be reached" + (f": {r.risks[0]}" if r.risks else ""))
        return la
    failed = [i for i in r.items if not i.ok]
    if failed:
        la.blocking = True
        la.findings.append(f"{len(failed)} of {len(r.items)} item(s) could not be read: "
                           + ", ".join(i.target for i in failed[:5]) + (" ..." if len(failed) > 5 else ""))
    if la.within_budget is False:
        la.blocking = True
        la.findings.append(f"planned {r.planned_rps:g} requests/s exceeds the safe rate of {r.safe_poll_rps:g} requests/s "
                           f"({la.load_pct:.0f}% load): lengthen poll intervals or merge blocks")
    elif r.planned_rps is not None and r.safe_poll_rps is None:
        la.findings.append("safe poll rate not measured: the load cannot be judged")
    if r.risks:
        la.findings.append(f"{len(r.risks)} risk(s) reported")
    if la.findings:
        la.status = ATTENTION
    return la


def has_probe(cls: type[Connector]) -> bool:
    return getattr(cls.probe, "__func__", None) is not Connector.probe.__func__


async def _probe_one(cls, cfg, max_rps: float, duration_s: float) -> list[ProbeResult] | Skipped | str:
    """The results, a Skipped when the type cannot be probed, or the text of a probe failure."""
    if not has_probe(cls):
        return Skipped(cfg.name, cls.type, f"connector type {cls.type!r} has no probe: check it by hand before connecting")
    try:
        # the margin covers connect timeouts on top of the measuring time the probe was given
        return await asyncio.wait_for(cls.probe(cfg, max_rps=max_rps, duration_s=duration_s), timeout=3 * duration_s + 30)
    except NotImplementedError as e:
        return Skipped(cfg.name, cls.type, str(e) or f"connector type {cls.type!r} has no probe")
    except asyncio.TimeoutError:
        return f"the probe did not finish within {3 * duration_s + 30:g} s"
    except Exception as e:  # noqa: BLE001 - one connector's broken probe must not hide the others' results
        return f"the probe failed: {type(e).__name__}: {e}"


async def probe_all(pairs: list, *, max_rps: float, duration_s: float) -> tuple[list[LinkAssessment], list[Skipped]]:
    links: list[LinkAssessment] = []
    skipped: list[Skipped] = []
    # one connector after the other: two connector instances may well poll the same PLC, and the probe's rate
    # limit only holds per probe
    for cls, cfg in pairs:
        got = await _probe_one(cls, cfg, max_rps, duration_s)
        if isinstance(got, Skipped):
            skipped.append(got)
            continue
        if isinstance(got, str):
            r = ProbeResult(connector=cfg.name, link=cfg.name, endpoint=cls.type, reachable=True, notes=[got])
            links.append(LinkAssessment(r, ATTENTION, cfg.name, cls.type, [got], blocking=True))
            continue
        for r in got:
            if not cfg.enabled:
                r.notes.append("this connector is disabled in the configuration")
            la = judge(r)
            la.connector, la.type = cfg.name, cls.type
            links.append(la)
    return links, skipped


def assess(items: list, *, max_rps: float = 50.0, duration_s: float = 5.0, source: str | None = None,
           clock: Clock = now_us) -> Assessment:
    """Validates the `connectors:` items (ConfigError listing every problem) and probes each one."""
    from plantguard.connectors.registry import validate

    try:
        pairs = validate(items)
    except ConfigError as e:
        raise ConfigError(e.problems, source) from None
    links, skipped = asyncio.run(probe_all(pairs, max_rps=max_rps, duration_s=duration_s))
    return Assessment(links, skipped, clock(), source, max_rps, duration_s)


def load_connectors(path: str | Path) -> list:
    """The `connectors:` section of a configuration file. Only that section is needed (and validated) here:
    an assessment is often run on a draft whose plant model is not finished yet."""
    from plantguard.config.loading import read_yaml_file

    path = Path(path)
    data = read_yaml_file(path)
    items = data.get("connectors") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ConfigError([ConfigProblem("connectors", "the configuration has no connectors to assess (a list under 'connectors:')")], str(path))
    return items
