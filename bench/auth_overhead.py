"""Authentication overhead on HTTP ingest: the same requests through a real uvicorn server, with an API token
checked on every request (the platform as it runs) and with the credential check replaced by a fixed principal
(authentication off), alternating in the same run. Also the cost of one token check, cached and not.

    python bench/auth_overhead.py [--requests 300] [--readings 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
import orjson  # noqa: E402
import uvicorn  # noqa: E402

from common import print_machine, record  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--readings", type=int, default=1000, help="readings per request")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    m = print_machine()

    from plantguard.api import permissions
    from plantguard.api.app import create_app
    from plantguard.config import parse_config
    from plantguard.runtime import Platform
    from plantguard.security.accounts import Principal
    from plantguard.domain.roles import grants
    from plantguard.testing.auth import auth_headers
    from plantguard.testing.factories import plant_dict
    from plantguard.testing.mosquitto import free_port
    from plantguard.domain.actor import Actor

    n_points = 100
    p = Platform(parse_config(plant_dict(n_points, data_dir=tempfile.mkdtemp(), alarms=False))).start()
    headers = {"content-type": "application/json", **auth_headers(p, "engineer", name="bench", scopes=["ingest"])}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(p.services), host="127.0.0.1", port=port, log_level="warning", access_log=False))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.02)
    real = permissions.principal_of
    fixed = Principal(Actor.system("bench"), None, grants("engineer"), "token")

    def off(request):
        request.state.principal = fixed
        return fixed

    t0 = [int(time.time() * 1000) - 3_600_000]

    def payload() -> bytes:
        rows = []
        for i in range(a.readings):
            t0[0] += 1
            rows.append({"point": f"s1/a1/l1/pump1/plc1/p{i % n_points}", "ts": t0[0], "value": float(i)})
        return orjson.dumps({"readings": rows})

    bodies = [payload() for _ in range(a.requests)]

    def run(mode: str) -> float:
        for mod in (permissions,):
            mod.principal_of = real if mode == "on" else off
        import plantguard.api.ingest as ing  # the ingest route looks the principal up itself

        ing.principal_of = permissions.principal_of
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            start = time.perf_counter()
            for b in bodies:
                r = c.post("/api/ingest", content=b, headers=headers)
                assert r.status_code == 200, r.text
            dt = time.perf_counter() - start
        for i in range(len(bodies)):  # new timestamps for the next run (no duplicates)
            bodies[i] = payload()
        return a.requests * a.readings / dt

    res = {"on": [], "off": []}
    for _ in range(a.repeats):
        for mode in ("off", "on"):
            res[mode].append(run(mode))
    permissions.principal_of = real
    on, off_ = statistics.median(res["on"]), statistics.median(res["off"])
    print(f"HTTP ingest, {a.readings} readings per request, {a.requests} requests, median of {a.repeats}:")
    print(f"  authentication on : {on:,.0f} readings/s  (runs {', '.join(f'{x:,.0f}' for x in res['on'])})")
    print(f"  authentication off: {off_:,.0f} readings/s  (runs {', '.join(f'{x:,.0f}' for x in res['off'])})")
    print(f"  overhead: {100 * (1 - on / off_):.1f} % (ratio of medians {on / off_:.3f})")

    acc = p.services.accounts
    secret = headers["Authorization"].split()[1]
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        acc.authenticate_token(secret)
    cached_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for _ in range(200):
        acc._forget()  # noqa: SLF001 - every lookup goes to the store
        acc.authenticate_token(secret)
    uncached_us = (time.perf_counter() - start) / 200 * 1e6
    print(f"  one token check: {cached_us:.1f} us cached, {uncached_us:.0f} us from the store")
    server.should_exit = True
    th.join(10)
    p.stop()
    record("auth_overhead", {"readings_per_request": a.readings, "on_readings_per_s": round(on), "off_readings_per_s": round(off_),
                             "overhead_pct": round(100 * (1 - on / off_), 2), "token_check_cached_us": round(cached_us, 2),
                             "token_check_store_us": round(uncached_us, 1), "machine": m})


if __name__ == "__main__":
    main()
