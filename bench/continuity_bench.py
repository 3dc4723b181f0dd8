"""Continuity: impact analysis on a 100,000-node graph (one failure; the worst case), the graph library chosen by
measurement (networkx's descendants, the usual choice, as the peer in the same run), and an alarm flood's
correlation into incidents (10,000 alarms in a minute: time, and incidents per root).

    python bench/continuity_bench.py [--nodes 100000] [--repeats 7]

The graph: 50 sites x 40 lines; per line 5 processes of 8 assets with 2 devices each behind a gateway with a disk
buffer, line networks and power feeds; each line's output service; a platform and its database under every
gateway. Redundancy groups on a share of the processes.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import print_machine, record
from plantguard.continuity.config import ContinuitySettings
from plantguard.continuity.graph import Graph
from plantguard.continuity.incidents import Correlator


def settings(target_nodes: int) -> ContinuitySettings:
    per_line = 1 + 5 + 40 + 80 + 4 + 2  # service, processes, assets, devices, gateways, network + power
    lines = max(1, target_nodes // per_line)
    services, nodes = [], [{"id": "platform", "kind": "platform", "depends_on": ["db"], "buffer": "24h"},
                           {"id": "db", "kind": "database", "backup_every": "1h", "recovery": "30m"}]
    for l in range(lines):
        p = f"l{l}"
        nodes += [{"id": f"{p}-net", "kind": "network", "depends_on": [f"{p}-pwr"], "recovery": "2h"},
                  {"id": f"{p}-pwr", "kind": "power", "recovery": "1h"}]
        for g in range(4):
            nodes.append({"id": f"{p}-gw{g}", "kind": "gateway", "depends_on": [f"{p}-net", "platform"], "buffer": "4h", "recovery": "1h"})
        procs = []
        for k in range(5):
            assets = []
            for a in range(8):
                aid = f"{p}-p{k}-a{a}"
                devs = [f"{aid}-d{d}" for d in range(2)]
                for d in devs:
                    nodes.append({"id": d, "kind": "device", "depends_on": [f"{p}-gw{(k * 8 + a) % 4}"], "recovery": "1h"})
                nodes.append({"id": aid, "kind": "asset", "depends_on": devs, "recovery": "4h"})
                assets.append(aid)
            proc = {"id": f"{p}-p{k}", "kind": "process"}
            if k % 2:
                proc["redundancy"] = [{"members": assets, "at_least": 6, "proportional": True}]
            else:
                proc["depends_on"] = assets
            nodes.append(proc)
            procs.append(proc["id"])
        services.append({"id": f"{p}-out", "depends_on": procs, "mtpd": "12h", "rto": "2h", "rpo": "15m", "cost_per_hour": 5000})
    return ContinuitySettings.model_validate({"services": services, "nodes": nodes})


def median_ms(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    m = print_machine()
    s = settings(a.nodes)
    t = time.perf_counter()
    g = Graph.build(s)
    build_s = time.perf_counter() - t
    n = len(g)
    print(f"graph: {n:,} nodes, built in {build_s:.2f} s")
    one = {"l7-p1-a3-d0": 0.0}
    ours_one = median_ms(lambda: g.impact(one), a.repeats)
    ours_gw = median_ms(lambda: g.impact({"l7-gw1": 0.0}), a.repeats)
    ours_worst = median_ms(lambda: g.impact({"db": 0.0}), max(3, a.repeats // 2))
    imp = g.impact({"l7-gw1": 0.0})
    print(f"impact, one device: {ours_one:.3f} ms; one gateway: {ours_gw:.3f} ms ({len(imp.nodes)} nodes affected); "
          f"the database under everything: {ours_worst:.1f} ms")
    out = {"nodes": n, "build_s": round(build_s, 2), "impact_device_ms": round(ours_one, 3), "impact_gateway_ms": round(ours_gw, 3),
           "impact_gateway_affected": len(imp.nodes), "impact_worst_ms": round(ours_worst, 1), "machine": m}
    try:
        import networkx as nx

        G = nx.DiGraph()
        for i in range(n):
            for d in g.dependents[i]:
                G.add_edge(i, d)
        src = g.index["l7-gw1"]
        nx_ms = median_ms(lambda: nx.descendants(G, src), a.repeats)
        # the peer only finds what is downstream; it does not time the cascade (redundancy, buffers, workarounds)
        print(f"peer networkx {nx.__version__} descendants of one gateway: {nx_ms:.3f} ms (reachability only)")
        out["peer"] = {"engine": f"networkx {nx.__version__} descendants", "gateway_ms": round(nx_ms, 3)}
        out["ratio_gateway_to_peer"] = round(ours_gw / nx_ms, 2)
    except ImportError:
        print("networkx not installed (pip install -e '.[bench]'): no peer")
    # an alarm flood: 10,000 stale alarms in a minute behind 25 gateways of 7 lines
    devices = [i for i in range(n) if g.kind[i] == "device" and g.ids[i].split("-")[0] in {f"l{k}" for k in range(7)}]
    flood = [devices[k % len(devices)] for k in range(10_000)]
    times, roots = [], None
    for _ in range(max(3, a.repeats // 2)):
        c = Correlator(g, root_share=0.5)
        t = time.perf_counter()
        got = [c.signal("outage", d, True)[0] for d in flood]
        times.append(time.perf_counter() - t)
        roots = {g.ids[c.root_of[("outage", d)]] for d in set(flood)}
    print(f"correlation: 10,000 alarms in {statistics.median(times) * 1e3:.1f} ms -> {len(roots)} root(s): {sorted(roots)[:8]}...")
    out.update(flood_alarms=10_000, flood_ms=round(statistics.median(times) * 1e3, 1), flood_roots=len(roots),
               flood_roots_expected=7)  # the whole of 7 lines went silent: one root per line (its network or power feed)
    record("continuity", out)


if __name__ == "__main__":
    main()
