"""Incidents: one per root cause in the dependency graph, with the timestamps the response metrics need.

    c = Correlator(graph, root_share=0.5)
    key, merged = c.signal("plc1:OFFLINE", node, active=True)   # key: the root node the signal belongs to
    metrics(incidents)                                          # MTTD, MTTA, MTTM, MTTR in seconds

Correlation. A signal (an alarm, a predictive alert, a security event) names a node of the graph. While signals
are active on the nodes under a common dependency, that dependency becomes the root when at least two of them
signal and they are at least `root_share` of the devices under it: twenty stale sensors behind one gateway are
one incident rooted at the gateway, two failing sensors among a hundred behind the platform are two incidents.
The most upstream qualifying node wins; incidents of the nodes under it are merged into it. Signals are kept by
category (outage, predictive, security), which are not merged with each other.

Metrics (per incident, then averaged over the incidents that have both timestamps):
    MTTD  started -> detected        (the fault begins; the first signal is raised)
    MTTA  detected -> acknowledged   (a person took it)
    MTTM  started -> mitigated       (the impact stopped: the service is back at its MBCO, a workaround runs)
    MTTR  started -> resolved        (fully recovered), comparable with the services' RTO, measured the same way
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from plantguard.continuity.graph import DATA_KINDS, PLANT_KINDS, Graph

STATES = ("open", "acknowledged", "mitigated", "resolved", "closed")
SEVERITIES = ("critical", "major", "minor", "warning")
_COUNTED = DATA_KINDS | PLANT_KINDS


@dataclass
class Incident:
    id: int
    root: str
    category: str                    # outage, predictive, security
    title: str
    severity: str = "warning"
    state: str = "open"
    started_at: int = 0              # microseconds
    detected_at: int = 0
    acknowledged_at: int | None = None
    mitigated_at: int | None = None
    resolved_at: int | None = None
    closed_at: int | None = None
    assignee: str | None = None
    merged_into: int | None = None
    signals: dict[str, bool] = field(default_factory=dict)      # signal key -> active
    services: list[dict] = field(default_factory=list)           # impact: id, status, at risk in, cost
    predicted_breach: list[str] = field(default_factory=list)    # services whose RTO the expected recovery exceeds
    expected_recovery_at: int | None = None
    review: dict | None = None
    last_signal_at: int = 0
    timeline: list[dict] = field(default_factory=list)          # at, actor, what
    condition_only: bool = False     # every signal is a process condition (a limit, not silence): a degradation

    @property
    def is_open(self) -> bool:
        return self.state in ("open", "acknowledged", "mitigated") and self.merged_into is None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["timeline"] = list(self.timeline)
        d["signals"] = {"active": sum(1 for v in self.signals.values() if v), "total": len(self.signals),
                        "keys": sorted(self.signals)[:200]}
        d.update(durations(self))
        return d


def durations(i: Incident) -> dict:
    def span(a, b):
        return None if a is None or b is None else round((b - a) / 1e6, 3)

    return {"ttd_s": span(i.started_at, i.detected_at), "tta_s": span(i.detected_at, i.acknowledged_at),
            "ttm_s": span(i.started_at, i.mitigated_at), "ttr_s": span(i.started_at, i.resolved_at)}


def metrics(incidents: list[Incident]) -> dict:
    """MTTD, MTTA, MTTM and MTTR in seconds over the incidents that have both ends (merged ones excluded)."""
    out: dict = {}
    own = [i for i in incidents if i.merged_into is None]
    for name, key in (("mttd_s", "ttd_s"), ("mtta_s", "tta_s"), ("mttm_s", "ttm_s"), ("mttr_s", "ttr_s")):
        vals = [v for v in (durations(i)[key] for i in own) if v is not None]
        out[name] = round(sum(vals) / len(vals), 3) if vals else None
        out[name.replace("_s", "_count")] = len(vals)
    out["incidents"] = len(own)
    return out


class Correlator:
    """Which root a signal belongs to, from the graph and the signals active now. Pure and in memory; the
    continuity service owns the incidents and their storage."""

    def __init__(self, graph: Graph, *, root_share: float = 0.5) -> None:
        self.g = graph
        self.share = root_share
        n = len(graph)
        self._up: list[tuple[int, ...] | None] = [None] * n     # ancestors, computed on first use
        self.devices_under = [0] * n
        for d in range(n):
            if graph.kind[d] in _COUNTED:
                for a in self.ancestors(d):
                    self.devices_under[a] += 1
        self._active: dict[tuple[str, int], int] = {}            # (category, node) -> active signal count
        self._under: dict[tuple[str, int], set[int]] = {}         # (category, ancestor) -> signalling nodes under it
        self.root_of: dict[tuple[str, int], int] = {}             # (category, signalling node) -> its root

    def ancestors(self, i: int) -> tuple[int, ...]:
        """What node i depends on, transitively: the candidates for a shared root."""
        got = self._up[i]
        if got is None:
            got = self._up[i] = tuple(self.g.closure(self.g.ids[i]))
        return got

    def signal(self, category: str, node: int, active: bool) -> tuple[int, list[int]]:
        """Records one signal turning on or off at `node`; returns (root, nodes whose incident now belongs to
        that root). A signal turning off keeps its incident (it resolves when all its signals cleared)."""
        key = (category, node)
        if not active:
            k = self._active.get(key, 0) - 1
            if k <= 0:
                self._active.pop(key, None)
                for a in self.ancestors(node):
                    s = self._under.get((category, a))
                    if s is not None:
                        s.discard(node)
            else:
                self._active[key] = k
            return self.root_of.get(key, node), []
        first = key not in self._active
        self._active[key] = self._active.get(key, 0) + 1
        ups = self.ancestors(node)
        if first:
            for a in ups:
                self._under.setdefault((category, a), set()).add(node)
        root = node
        best = self.devices_under[node] if self.g.kind[node] in _COUNTED else 0
        for a in ups:
            total = self.devices_under[a]
            if total <= best:
                continue
            sig = self._under.get((category, a))
            k = len(sig) if sig else 0
            if (k >= 2 and k >= self.share * total) or (category, a) in self._active:  # or it signals itself
                root, best = a, total
        moved: list[int] = []
        if root != node:
            for m in self._under.get((category, root), ()):
                if self.root_of.get((category, m)) != root:
                    self.root_of[(category, m)] = root
                    moved.append(m)
        prev = self.root_of.get(key)
        if prev is None or (prev != root and self.devices_under[root] >= self.devices_under[prev]):
            self.root_of[key] = root
        return self.root_of[key], moved
