"""The dependency graph from devices up to the business services, and what a failure does to it over time.

    g = Graph.build(settings, index)                     # problems(settings, index) first: field-path errors
    imp = g.impact({"gw-line1": 0})                      # fails now; {"pump": 3600}: fails in an hour
    imp.services["line1-output"].down_at                 # seconds after now, math.inf when it never goes down
    g.estimates("line1-output")                          # estimated RTO and RPO, each with the path proving it
    g.single_points("line1-output")

Semantics. A node needs all of `depends_on` and, for each redundancy group, its rule: at least k of the members
up (down below k; degraded below `degraded_below`, default all members) or exactly n active. A node with a
`buffer` keeps working that long after its inputs go down (on buffer: degraded, full output); a `workaround`
keeps it degraded at its capacity for its time limit once it would be down. Failures are permanent in a what-if
(what happens if nobody repairs); the estimates add each node's `recovery` time.

Impact touches only what depends on the failed nodes: nodes are visited in topological order through a heap
keyed by their precomputed rank, so a failure's cost is its blast radius, not the graph's size (the benchmark:
bench/continuity_bench.py). Pure: no store, no web; the continuity service feeds it live state.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

INF = math.inf
DATA_KINDS = frozenset({"device", "gateway"})
PLANT_KINDS = frozenset({"asset", "device"})
ROOT_KINDS_EXCLUDED = frozenset({"process", "service"})  # they fail through what they depend on, not on their own
MAX_SCAN = 20_000  # nodes examined per service for single points and estimates (one impact each)


@dataclass(frozen=True)
class Group:
    members: tuple[int, ...]
    need: int
    degraded_below: int
    exact: bool
    proportional: bool


@dataclass
class NodeImpact:
    id: str
    kind: str
    degraded_at: float            # seconds after now (math.inf: never)
    down_at: float
    capacity: float               # share of normal output while degraded
    cause: str | None             # the input that decided it (None: failed itself)
    reason: str

    def status_at(self, t: float) -> str:
        return "down" if t >= self.down_at else "degraded" if t >= self.degraded_at else "ok"

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "degraded_at_s": _num(self.degraded_at), "down_at_s": _num(self.down_at),
                "capacity": round(self.capacity, 4), "cause": self.cause, "reason": self.reason, "status_now": self.status_at(0)}


@dataclass
class ServiceImpact:
    id: str
    name: str
    degraded_at: float
    down_at: float
    capacity: float
    disrupted_at: float           # below its MBCO from then on
    cost_per_hour: float
    rto_s: float
    mtpd_s: float
    path: list[str]

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "degraded_at_s": _num(self.degraded_at), "down_at_s": _num(self.down_at),
                "capacity": round(self.capacity, 4), "disrupted_at_s": _num(self.disrupted_at),
                "status_now": "down" if self.down_at <= 0 else "degraded" if self.degraded_at <= 0 else "ok",
                "cost_per_hour": self.cost_per_hour, "rto_s": self.rto_s, "mtpd_s": self.mtpd_s, "path": self.path}


@dataclass
class Impact:
    failed: dict[str, float]
    nodes: dict[str, NodeImpact] = field(default_factory=dict)
    services: dict[str, ServiceImpact] = field(default_factory=dict)

    def cost_per_hour_at(self, t: float) -> float:
        return sum(s.cost_per_hour for s in self.services.values() if s.disrupted_at <= t)

    def as_dict(self) -> dict:
        return {"failed": {k: _num(v) for k, v in self.failed.items()},
                "services": [s.as_dict() for s in sorted(self.services.values(), key=lambda s: (s.disrupted_at, s.id))],
                "nodes": [n.as_dict() for n in sorted(self.nodes.values(), key=lambda n: (n.down_at, n.degraded_at, n.id))],
                "cost_per_hour_now": self.cost_per_hour_at(0)}


def _num(x: float) -> float | None:
    return None if x == INF else round(x, 3)


class Graph:
    """Nodes by index; `requires[i]` all needed, `groups[i]` redundancy rules, `dependents[i]` the reverse edges."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.kind: list[str] = []
        self.name: list[str] = []
        self.requires: list[tuple[int, ...]] = []
        self.groups: list[tuple[Group, ...]] = []
        self.dependents: list[list[int]] = []
        self.buffer: list[float] = []
        self.workaround: list[tuple[float, float] | None] = []      # (capacity, limit seconds)
        self.recovery: list[float | None] = []
        self.backup_every: list[float | None] = []
        self.ref: list[str | None] = []
        self.active_point: list[str | None] = []                     # tag: non-zero while the member is active
        self.rank: list[int] = []
        self.services: dict[str, object] = {}                         # id -> Service settings
        self.by_path: dict[str, int] = {}                             # plant path -> node

    # -- construction ------------------------------------------------------------------------------------
    def add(self, nid: str, kind: str, *, name: str | None = None, ref: str | None = None, buffer: float = 0.0,
            workaround: tuple[float, float] | None = None, recovery: float | None = None,
            backup_every: float | None = None, active_point: str | None = None) -> int:
        i = len(self.ids)
        self.ids.append(nid)
        self.index[nid] = i
        self.kind.append(kind)
        self.name.append(name or nid)
        self.requires.append(())
        self.groups.append(())
        self.dependents.append([])
        self.buffer.append(float(buffer))
        self.workaround.append(workaround)
        self.recovery.append(recovery)
        self.backup_every.append(backup_every)
        self.ref.append(ref)
        self.active_point.append(active_point)
        if ref:
            self.by_path.setdefault(ref, i)
        return i

    def link(self, i: int, requires: Iterable[int], groups: Iterable[Group] = ()) -> None:
        self.requires[i] = tuple(dict.fromkeys(requires))
        self.groups[i] = tuple(groups)
        for j in self.requires[i]:
            self.dependents[j].append(i)
        for g in self.groups[i]:
            for j in g.members:
                self.dependents[j].append(i)

    def finish(self) -> None:
        """Topological ranks (dependencies first); raises ValueError on a cycle (problems() reports it by path)."""
        n = len(self.ids)
        indeg = [len(self.requires[i]) + sum(len(g.members) for g in self.groups[i]) for i in range(n)]
        order = [i for i in range(n) if indeg[i] == 0]
        rank = [0] * n
        k = 0
        while k < len(order):
            i = order[k]
            rank[i] = k
            k += 1
            for d in self.dependents[i]:
                indeg[d] -= 1
                if indeg[d] == 0:
                    order.append(d)
        if len(order) != n:
            raise ValueError("the dependency graph has a cycle")
        self.rank = rank

    @classmethod
    def build(cls, settings, index=None) -> "Graph":
        """From the `continuity:` settings; plant paths named anywhere become nodes of their own (an asset
        depends on its devices) when `index` (the plant index) knows them."""
        g = cls()
        declared = [*settings.services, *settings.nodes]
        for n in declared:
            wa = (n.workaround.capacity, n.workaround.limit) if n.workaround else None
            g.add(n.id, n.kind, name=n.name, ref=n.ref, buffer=n.buffer, workaround=wa, recovery=n.recovery,
                  backup_every=n.backup_every, active_point=n.active_point)
            if n.kind == "service":
                g.services[n.id] = n
        pending: list[tuple[int, list[str], list]] = [(g.index[n.id], list(n.depends_on), list(n.redundancy)) for n in declared]
        if index is not None:
            names = {x for n in declared for x in [*n.depends_on, *(m for r in n.redundancy for m in r.members)]}
            for path in sorted(names):
                if path not in g.index and path not in g.by_path:
                    g._auto(path, index, pending)
        for i, deps, groups in pending:
            req = [g._resolve(d) for d in deps]
            gs = []
            for r in groups:
                members = tuple(g._resolve(m) for m in r.members)
                need = r.need
                gs.append(Group(members, need, max(need, min(len(members), r.degraded_below or len(members))),
                                r.exactly is not None, r.proportional))
            g.link(i, req, gs)
        g.finish()
        return g

    def _auto(self, path: str, index, pending: list) -> None:
        dev = index.device(path)
        if dev is not None:
            self.add(path, "device", name=dev.device.name, ref=path)
            return
        asset = index.asset(path)
        if asset is None:
            return
        i = self.add(path, "asset", name=asset.asset.name, ref=path)
        devs = []
        for d in asset.asset.devices:
            dp = f"{path}/{d.id}"
            if dp not in self.index and dp not in self.by_path:
                self.add(dp, "device", name=d.name, ref=dp)
            devs.append(dp)
        pending.append((i, devs, []))

    def _resolve(self, name: str) -> int:
        i = self.index.get(name)
        if i is None:
            i = self.by_path.get(name)
        if i is None:
            raise ValueError(f"unknown node {name!r}")
        return i

    def exact_groups(self):
        """(owner node, group) of every exactly-n group whose members report whether they are active."""
        for i, gs in enumerate(self.groups):
            for gr in gs:
                if gr.exact and any(self.active_point[m] for m in gr.members):
                    yield i, gr

    def node_of_path(self, path: str) -> int | None:
        """The node standing for a plant path: the device, else its asset (a point's tag finds its device)."""
        parts = path.split("/")
        for k in (len(parts), 6, 5, 4):
            if k <= len(parts):
                p = "/".join(parts[:k])
                i = self.by_path.get(p)
                if i is None:
                    i = self.index.get(p)
                if i is not None:
                    return i
        return None

    def __len__(self) -> int:
        return len(self.ids)

    # -- impact ------------------------------------------------------------------------------------------
    def impact(self, failures: Mapping[str, float], *, only_down: bool = False) -> Impact:
        """The cascade of `failures` (node id -> seconds from now when it fails; <= 0: already failed)."""
        deg: dict[int, float] = {}
        down: dict[int, float] = {}
        cap: dict[int, float] = {}
        cause: dict[int, int] = {}
        why: dict[int, str] = {}
        failed: dict[int, float] = {}
        heap: list[tuple[int, int]] = []
        for nid, t in failures.items():
            i = self._resolve(nid)
            t = float(t)
            failed[i] = min(t, failed.get(i, INF))
            deg[i] = down[i] = failed[i]
            cap[i] = 0.0
            why[i] = "failed"
        for i in failed:
            for d in self.dependents[i]:
                heapq.heappush(heap, (self.rank[d], d))
        seen: set[int] = set(failed)
        rank, dependents = self.rank, self.dependents
        while heap:
            _, i = heapq.heappop(heap)
            if i in seen:
                continue
            seen.add(i)
            r = self._eval(i, deg, down, cap, cause, why)
            if not r or (only_down and down.get(i, INF) == INF):
                continue
            for d in dependents[i]:
                if d not in seen:
                    heapq.heappush(heap, (rank[d], d))
        imp = Impact({self.ids[i]: t for i, t in failed.items()})
        for i in deg:
            c = cause.get(i)
            imp.nodes[self.ids[i]] = NodeImpact(self.ids[i], self.kind[i], deg[i], down[i], cap.get(i, 1.0),
                                                None if c is None else self.ids[c], why.get(i, ""))
        for sid, s in self.services.items():
            n = imp.nodes.get(sid)
            if n is None:
                continue
            disrupted = n.down_at if n.capacity >= s.mbco else n.degraded_at
            imp.services[sid] = ServiceImpact(sid, s.name or sid, n.degraded_at, n.down_at, n.capacity, disrupted,
                                              s.cost_per_hour, s.rto, s.mtpd, self.path(imp, sid))
        return imp

    def _eval(self, i: int, deg, down, cap, cause, why) -> bool:
        in_deg = in_down = INF
        c = 1.0
        by = -1
        reason = ""
        for r in self.requires[i]:
            rd = down.get(r, INF)
            if rd < in_down:
                in_down, by, reason = rd, r, f"needs {self.ids[r]}"
            rg = deg.get(r, INF)
            if rg < in_deg:
                in_deg = rg
                if by < 0:
                    by, reason = r, f"needs {self.ids[r]}"
            if r in cap and rg < rd:  # its share while degraded (a failed input has no degraded interval)
                c = min(c, cap[r])
        for g in self.groups[i]:
            times = sorted((down.get(m, INF), m) for m in g.members)
            n = len(times)
            gd, gm = times[n - g.need] if g.need <= n else (-INF, g.members[0])
            gg = times[n - g.degraded_below][0] if g.degraded_below <= n else -INF
            gg = min(gg, min((deg[m] for m in g.members if m in deg and deg[m] < down[m]), default=INF))
            if gd < in_down:
                in_down, by, reason = gd, gm, f"fewer than {g.need} of {n} up"
            if gg < in_deg:
                in_deg = gg
                if by < 0:
                    by, reason = times[0][1], f"redundancy lost ({n} members)"
            if g.proportional:  # every member lost is output lost: degraded from the first loss
                up = sum(1 for t, _ in times if t == INF)
                c = min(c, up / n)
                in_deg = min(in_deg, times[0][0])
        in_deg = min(in_deg, in_down)
        if in_deg == INF:
            return False
        d_at, g_at = in_down, in_deg
        if self.buffer[i] > 0 and d_at < INF:
            d_at = d_at + self.buffer[i]
            reason += f"; on buffer for {self.buffer[i]:g} s"
        wa = self.workaround[i]
        if wa is not None and d_at < INF:
            g_at = min(g_at, d_at)
            c = min(c, wa[0])
            d_at = d_at + wa[1]
            reason += f"; workaround at {wa[0]:.0%} for {wa[1]:g} s"
        deg[i], down[i], cap[i] = g_at, d_at, c
        cause[i], why[i] = by, reason
        return True

    def path(self, imp: Impact, nid: str) -> list[str]:
        """From a node down to the failure that decided its fate, by the recorded causes."""
        out, seen = [nid], {nid}
        n = imp.nodes.get(nid)
        while n is not None and n.cause is not None and n.cause not in seen:
            out.append(n.cause)
            seen.add(n.cause)
            n = imp.nodes.get(n.cause)
        return out

    # -- per service -------------------------------------------------------------------------------------
    def closure(self, nid: str, limit: int = MAX_SCAN) -> list[int]:
        """Everything a node depends on, transitively (at most `limit` nodes)."""
        start = self._resolve(nid)
        out, stack, seen = [], [start], {start}
        while stack and len(out) < limit:
            i = stack.pop()
            for j in (*self.requires[i], *(m for g in self.groups[i] for m in g.members)):
                if j not in seen:
                    seen.add(j)
                    out.append(j)
                    stack.append(j)
        return out

    def single_points(self, sid: str) -> list[dict]:
        """Nodes whose failure alone takes the service below its MBCO, with when and the path."""
        out = []
        for j in self.closure(sid):
            if self.kind[j] in ROOT_KINDS_EXCLUDED:
                continue
            imp = self.impact({self.ids[j]: 0})
            s = imp.services.get(sid)
            if s is not None and s.disrupted_at < INF:
                out.append({"node": self.ids[j], "kind": self.kind[j], "disrupted_after_s": round(s.disrupted_at, 3),
                            "path": s.path})
        return sorted(out, key=lambda d: (d["disrupted_after_s"], d["node"]))

    def estimates(self, sid: str) -> dict:
        """Estimated RTO (longest disruption one failure causes, given recovery times, buffers, redundancy and
        workarounds) and RPO (most data lost: a data node past its buffer while its inputs are down, or a store
        destroyed since its last backup), each with the path that proves it."""
        s = self.services[sid]
        rto, rto_path, rpo, rpo_path, unknown = 0.0, [sid], 0.0, [sid], []
        members = self.closure(sid)
        data_nodes = [j for j in members if self.kind[j] in DATA_KINDS]
        for j in members:
            if self.kind[j] in ROOT_KINDS_EXCLUDED:
                continue
            if self.backup_every[j] is not None and self.backup_every[j] > rpo:
                rpo, rpo_path = self.backup_every[j], [sid, self.ids[j], "(destroyed: data since the last backup)"]
            r = self.recovery[j]
            imp = None
            if r is None:
                imp = self.impact({self.ids[j]: 0})
                sv = imp.services.get(sid)
                if sv is not None and sv.disrupted_at < INF:
                    unknown.append(self.ids[j])
                continue
            imp = self.impact({self.ids[j]: 0})
            sv = imp.services.get(sid)
            if sv is not None and r - sv.disrupted_at > rto:
                rto, rto_path = r - sv.disrupted_at, sv.path
            for y in data_nodes:
                n = imp.nodes.get(self.ids[y])
                if y != j and n is not None and r - n.down_at > rpo:
                    rpo, rpo_path = r - n.down_at, self.path(imp, self.ids[y])
        return {"service": sid, "rto_s": s.rto, "rpo_s": s.rpo, "mtpd_s": s.mtpd,
                "estimated_rto_s": round(rto, 3), "rto_path": rto_path, "rto_met": rto <= s.rto,
                "estimated_rpo_s": round(rpo, 3), "rpo_path": rpo_path, "rpo_met": rpo <= s.rpo,
                "without_recovery_time": sorted(unknown),
                "note": ("a lower bound: nodes that can disrupt the service have no recovery time" if unknown else "")}


# -- validation ------------------------------------------------------------------------------------------
def problems(settings, index=None) -> list[tuple[str, str]]:
    """Everything wrong with the graph, by field path inside the `continuity:` section: duplicate ids, dangling
    references (to nodes or plant paths), cycles, redundancy rules that cannot be met, services that reach no
    device."""
    out: list[tuple[str, str]] = []
    declared = [("services", i, n) for i, n in enumerate(settings.services)] + [("nodes", i, n) for i, n in enumerate(settings.nodes)]
    where: dict[str, str] = {}
    refs: set[str] = set()
    for sec, i, n in declared:
        p = f"{sec}[{i}]"
        if n.id in where:
            out.append((f"{p}.id", f"duplicate node id {n.id!r} (first at {where[n.id]})"))
        where.setdefault(n.id, p)
        if n.ref is not None:
            refs.add(n.ref)
            if index is not None and index.device(n.ref) is None and index.asset(n.ref) is None:
                out.append((f"{p}.ref", f"{n.ref!r} is not an asset or device of the plant model"))
        if n.kind == "service" and sec == "nodes":
            out.append((f"{p}.kind", "a service is declared under `services:` with its business impact analysis"))

    def known(x: str) -> bool:
        return x in where or x in refs or (index is not None and (index.device(x) is not None or index.asset(x) is not None))

    for sec, i, n in declared:
        p = f"{sec}[{i}]"
        for k, d in enumerate(n.depends_on):
            if not known(d):
                out.append((f"{p}.depends_on[{k}]", f"dangling reference: no node or plant asset/device {d!r}"))
            if d == n.id:
                out.append((f"{p}.depends_on[{k}]", "a node cannot depend on itself"))
        for k, r in enumerate(n.redundancy):
            rp = f"{p}.redundancy[{k}]"
            for m, x in enumerate(r.members):
                if not known(x):
                    out.append((f"{rp}.members[{m}]", f"dangling reference: no node or plant asset/device {x!r}"))
            if len(set(r.members)) != len(r.members):
                out.append((f"{rp}.members", "a member is listed twice"))
            if r.need > len(r.members):
                rule = "at_least" if r.at_least is not None else "exactly"
                out.append((f"{rp}.{rule}", f"cannot be met: {r.need} needed of {len(r.members)} member(s)"))
            if r.degraded_below is not None and not (r.need <= r.degraded_below <= len(r.members)):
                out.append((f"{rp}.degraded_below", f"must lie between the rule ({r.need}) and the member count ({len(r.members)})"))
    return out


def _cycle_problem(settings, index) -> list[tuple[str, str]]:
    """The first cycle, reported at the edge that closes it."""
    edges: dict[str, list[tuple[str, str]]] = {}
    declared = [("services", i, n) for i, n in enumerate(settings.services)] + [("nodes", i, n) for i, n in enumerate(settings.nodes)]
    ref_of = {n.ref: n.id for _, _, n in declared if n.ref}
    for sec, i, n in declared:
        lst = edges.setdefault(n.id, [])
        for k, d in enumerate(n.depends_on):
            lst.append((ref_of.get(d, d), f"{sec}[{i}].depends_on[{k}]"))
        for k, r in enumerate(n.redundancy):
            for m, x in enumerate(r.members):
                lst.append((ref_of.get(x, x), f"{sec}[{i}].redundancy[{k}].members[{m}]"))
    color: dict[str, int] = {}
    for start in edges:
        if color.get(start):
            continue
        stack = [(start, iter(edges.get(start, ())))]
        trail = [start]
        color[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = 2
                stack.pop()
                trail.pop()
                continue
            to, where = nxt
            c = color.get(to, 0)
            if c == 1:
                cyc = trail[trail.index(to):] + [to]
                return [(where, "cycle: " + " -> ".join(cyc))]
            if c == 0:
                color[to] = 1
                trail.append(to)
                stack.append((to, iter(edges.get(to, ()))))
    return []


def validate(settings, index=None) -> list[tuple[str, str]]:
    """problems() plus cycles and services that reach no plant device."""
    out = problems(settings, index)
    if out:
        return out
    cyc = _cycle_problem(settings, index)
    if cyc:
        return cyc
    g = Graph.build(settings, index)
    for k, s in enumerate(settings.services):
        if not any(g.kind[j] in PLANT_KINDS for j in g.closure(s.id)):
            out.append((f"services[{k}].depends_on", f"service {s.id!r} has no path to any asset or device"))
    return out
