"""The device posture audit over 10,000 devices (aim: under 5 s): every check plus advisory matching against
the fixture advisories and 1,000 generated ones of 50 vendors. The facts are generated (protocol mix, credentials,
inventory, last readings); gathering them from a platform is a pass over the model and one latest-value lookup.

    python bench/posture_audit.py [--devices 10000] [--advisories 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_machine, record  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--advisories", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    m = print_machine()

    from plantguard.security.csaf import AdvisoryIndex, AffectedProduct, Advisory, load_dir
    from plantguard.security.posture import DeviceFacts, audit

    rnd = random.Random(7)
    now = 1_800_000_000_000_000
    vendors = [f"Vendor {i}" for i in range(50)] + ["Acme Automation"]
    advs, _ = load_dir(Path(__file__).resolve().parent.parent / "src/plantguard/security/tests/fixtures/csaf")
    for i in range(a.advisories):
        v = rnd.choice(vendors)
        lo = rnd.randint(0, 5)
        advs.append(Advisory(f"GEN-{i}", "generated", [f"CVE-2026-{10000 + i}"], rnd.uniform(3, 10),
                             [AffectedProduct(f"P{i}", v, f"Product {rnd.randint(0, 40)}", f"vers:generic/>={lo}.0|<{lo + 1}.2", True)]))
    idx = AdvisoryIndex(advs)
    facts = []
    for i in range(a.devices):
        kind = rnd.choice(["modbus", "opcua", "mqtt", "sparkplug"])
        link = {"type": kind, "name": f"c{i % 40}", "endpoint": f"10.0.{i // 250}.{i % 250}:502",
                "security_mode": rnd.choice(["None", "SignAndEncrypt"]), "server_certificate": None, "tls": False,
                "client_id": f"pg-{i % 40}"}
        creds = [{"username": f"d{i}@k1", "created_at": now - rnd.randint(1, 800) * 86400 * 10**6, "expires_at": None,
                  "revoked_at": None, "suspended": False}] if kind in ("mqtt", "sparkplug") and rnd.random() < 0.8 else []
        inv = {"vendor": rnd.choice(vendors), "product": f"Product {rnd.randint(0, 40)}", "firmware": f"{rnd.randint(0, 6)}.{rnd.randint(0, 9)}",
               "owner": "ot" if rnd.random() < 0.7 else None, "criticality": rnd.choice([None, "low", "high"])}
        facts.append(DeviceFacts(f"s/a/l{i // 100}/x{i}/d", inv, [link], [f"s/a/l/x{i}/d/w"] if rnd.random() < 0.05 else [],
                                 False, 1_000_000, now - rnd.randint(0, 7200) * 10**6, creds,
                                 {"firmware": inv["firmware"] if rnd.random() < 0.95 else "0.1"}))
    times, n_findings = [], 0
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        r = audit(facts, now=now, advisories=idx)
        times.append(time.perf_counter() - t0)
        n_findings = len(r.findings)
    med = statistics.median(times)
    from collections import defaultdict

    from plantguard.security.risk import Dependents, compute

    by_dev = defaultdict(list)
    for f in r.findings:
        by_dev[f.device].append(f)
    crit = {f.path: f.inventory.get("criticality") for f in facts}
    deps = {f.path: Dependents(5, rnd.random() < 0.3, rnd.randint(0, 2)) for f in facts}
    risk_times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        entries = compute(by_dev, crit, deps)
        risk_times.append(time.perf_counter() - t0)
    risk_med = statistics.median(risk_times)
    print(f"risk recomputation: {len(entries):,} devices: median {risk_med * 1000:.1f} ms (runs {', '.join(f'{t * 1000:.1f}' for t in risk_times)})")
    print(f"posture audit: {a.devices:,} devices, {len(advs):,} advisories: median {med:.3f} s "
          f"(runs {', '.join(f'{t:.3f}' for t in times)}), {n_findings:,} findings, {a.devices / med:,.0f} devices/s")
    print(f"  by severity: {r.by_severity()}")
    record("posture_audit", {"devices": a.devices, "advisories": len(advs), "median_s": round(med, 4), "risk_median_s": round(risk_med, 4),
                             "findings": n_findings, "devices_per_s": round(a.devices / med), "machine": m})


if __name__ == "__main__":
    main()
