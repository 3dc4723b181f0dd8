"""The central router and the outage test: a real central plantguard stopped during feeding, a gateway process
killed with -9 and restarted; afterwards every generated reading is stored exactly once with its timestamp."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest

from plantguard.connectors.gateway import codec
from plantguard.connectors.gateway.feeder import DEVICE, T0_US, expected_count, make_batch
from plantguard.connectors.gateway.forwarder import Forwarder
from plantguard.connectors.gateway.queue import GatewayQueue
from plantguard.connectors.gateway.testing import CentralServer, count_per_key
from plantguard.testing.factories import small_plant


@pytest.fixture
def central(data_dir):
    srv = CentralServer(small_plant(10, data_dir=str(data_dir), alarms=False)).start()
    yield srv
    srv.stop()


def frame(*ks: int, points: int = 10, per_batch: int = 3) -> bytes:
    return b"".join(codec.pack_record(k, 0, codec.encode_batch(make_batch(k, points, per_batch))) for k in ks)


def post(c: CentralServer, body: bytes, **headers) -> httpx.Response:
    return httpx.post(f"{c.url}/api/gateway/gw1/batches", content=body, headers={"content-type": codec.CONTENT_TYPE, **c.headers, **headers}, timeout=30)


def test_router_stores_once_answers_after_write_and_reports_gaps(central):
    r = post(central, frame(1, 2))
    assert r.status_code == 200, r.text
    assert r.json() == {"gateway_id": "gw1", "seq": 2, "first_seq": 1, "batches": 2, "accepted": 60, "duplicates": 0, "rejected": 0}
    s = central.platform.services.telemetry.query_raw(f"{DEVICE}/p0", T0_US, T0_US + 10**9)
    assert s.ts.tolist() == [T0_US + i * 1000 for i in range(6)]  # stored before the answer, original timestamps
    r = post(central, frame(2))  # a resend after a lost answer
    assert r.json()["accepted"] == 0 and r.json()["duplicates"] == 30
    assert post(central, frame(5), **{codec.DROPPED_HEADER: "3-4"}).status_code == 200  # announced drop
    assert post(central, frame(8)).status_code == 200  # 6..7 never arrived
    g = httpx.get(f"{central.url}/api/gateway/gw1", headers=central.headers).json()
    assert g["last_seq"] == 8 and g["resent_batches"] == 1 and g["unannounced_gap_batches"] == 2
    assert [(x["from"], x["to"], x["announced"]) for x in g["gaps"]] == [(3, 4, True), (6, 7, False)]
    assert httpx.get(f"{central.url}/api/gateway", headers=central.headers).json()["count"] == 1
    bad = bytearray(frame(9))
    bad[-1] ^= 1
    assert post(central, bytes(bad)).status_code == 400  # checksum failure: refused, nothing stored
    js = httpx.post(f"{central.url}/api/gateway/gw2/batches", timeout=30, headers=central.headers,
                    json={"seq": 1, "readings": [{"point": f"{DEVICE}/p1", "ts": 1_704_067_300_000, "value": 1.5}]})
    assert js.status_code == 200 and js.json()["accepted"] == 1
    assert httpx.get(f"{central.url}/api/gateway/nope", headers=central.headers).status_code == 404


def test_forwarder_drains_in_order_and_deletes_after_confirm(central, tmp_path):
    q = GatewayQueue(tmp_path / "q", min_free_bytes=0)
    for k in range(1, 51):
        q.append(make_batch(k, 10, 3))
    fwd = Forwarder(q, central.url, "gw1", max_request_bytes=8 << 10, backoff_min=0.05, backoff_max=0.2, headers=central.headers).start()
    deadline = time.monotonic() + 30
    while q.confirmed_seq < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    fwd.stop()
    assert q.confirmed_seq == 50 and fwd.requests > 1 and fwd.health()["state"] == "stopped"
    assert q.health()["depth"] == {"batches": 0, "readings": 0, "bytes": 0}
    assert central.platform.pipeline.stats.accepted == 1500
    q.close()


def _progress(proc: subprocess.Popen) -> dict:
    line = proc.stdout.readline().strip()
    return dict(kv.split("=") for kv in line.split()) if "=" in line else {"line": line}


def _wait(proc: subprocess.Popen, cond, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = _progress(proc)
        if "line" in p and not p["line"] and proc.poll() is not None:
            raise AssertionError(f"feeder exited with {proc.returncode}")
        if "next" in p and cond(int(p["next"]), int(p["confirmed"])):
            return p
    raise AssertionError("timed out waiting for the feeder")


@pytest.mark.slow
def test_outage_and_kill_9_lose_nothing_duplicate_nothing(data_dir, tmp_path):
    n_batches, points, per_batch, rate = 300, 10, 20, 40.0  # 60,000 readings over ~7.5 s
    cfg = small_plant(points, data_dir=str(data_dir), alarms=False)
    central = CentralServer(cfg).start()
    port = central.port
    qdir = tmp_path / "gwq"
    cmd = [sys.executable, "-m", "plantguard.connectors.gateway.feeder", "--dir", str(qdir), "--url", central.url,
           "--batches", str(n_batches), "--points", str(points), "--per-batch", str(per_batch), "--rate", str(rate),
           "--backoff-max", "0.3"]
    gw = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=central.env())
    try:
        _wait(gw, lambda nxt, conf: conf >= 20, 30)  # flowing
        central.stop()  # the central side goes away while the gateway keeps feeding
        _wait(gw, lambda nxt, conf: nxt >= 120, 30)
        central = CentralServer(cfg, port=port).start()
        _wait(gw, lambda nxt, conf: conf >= 125, 30)  # draining the backlog...
        gw.send_signal(signal.SIGKILL)  # ...when the gateway dies
        gw.wait(10)
        gw.stdout.close()
        gw = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=central.env())
        _wait(gw, lambda nxt, conf: conf >= n_batches, 60)
        assert gw.wait(20) == 0
        dup_seen = central.platform.pipeline.stats.duplicates
    finally:
        if gw.poll() is None:
            gw.kill()
        central.stop()
    rows, distinct, worst = count_per_key(str(data_dir))
    assert rows == distinct == expected_count(n_batches, points, per_batch)  # nothing missing
    assert worst == 1  # nothing stored twice
    # every reading with its original timestamp and value
    import duckdb

    con = duckdb.connect(f"{data_dir}/plantguard.duckdb", read_only=True)
    got = con.execute("SELECT p.tag, r.ts, r.value FROM raw r JOIN points p USING (pid) ORDER BY p.tag, r.ts").fetchall()
    con.close()
    want = []
    for k in range(1, n_batches + 1):
        b = make_batch(k, points, per_batch)
        want += [(b.tag(i), int(b.ts[i]), float(b.value[i])) for i in range(len(b))]
    assert got == sorted(want)
    print(f"resent readings deduplicated by the central side: {dup_seen}")


def test_buffer_autonomy_reaches_the_central_devices_page(central, tmp_path):
    """The forwarder reports its disk buffer with every request; the central dashboard shows its autonomy."""
    q = GatewayQueue(tmp_path / "q", min_free_bytes=0, max_bytes=64 << 20)
    for k in range(1, 21):
        q.append(make_batch(k, 10, 3))
    fwd = Forwarder(q, central.url, "gw-buf", backoff_min=0.05, backoff_max=0.2, headers=central.headers).start()
    deadline = time.monotonic() + 30
    while q.confirmed_seq < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    fwd.stop()
    r = httpx.get(f"{central.url}/api/gateway/gw-buf", timeout=10, headers=central.headers)
    assert r.status_code == 200, r.text
    buf = r.json()["buffer"]
    assert buf["limit"] > 0 and buf["bytes"] >= 0 and (buf["autonomy_h"] is None or buf["autonomy_h"] > 0)
    html = httpx.get(f"{central.url}/devices", timeout=10, headers=central.headers).text
    assert 'data-gateway="gw-buf"' in html and "data-autonomy-hours" in html and "not reported" not in html
    q.close()


def test_buffer_header_round_trip_and_malformed():
    h = {"autonomy_hours": 12.25, "depth": {"bytes": 1024}, "budget": {"limit_bytes": 1 << 30}, "oldest_age_s": 3.0}
    assert codec.parse_buffer_header(codec.buffer_header(h)) == {"autonomy_h": 12.25, "bytes": 1024, "limit": 1 << 30, "oldest_s": 3.0}
    assert codec.parse_buffer_header(codec.buffer_header({**h, "autonomy_hours": None}))["autonomy_h"] is None
    for bad in (None, "", "autonomy_h=x;bytes=1;limit=2", "bytes=1"):
        assert codec.parse_buffer_header(bad) is None
