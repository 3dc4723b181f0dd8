"""The operator dashboard, server side: pages, the asset context and the live stream (browser tests are separate)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from plantguard.testing.auth import auth_headers
from plantguard.api.app import create_app
from plantguard.config import parse_config
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict, tag
from plantguard.timeutil import now_us
from plantguard.web.live import MAX_POINTS
from plantguard.web.routes import asset_context

# The API refuses state-changing requests without a JSON content type (415); these tests send JSON bodies.
JSON_HEADERS = {"content-type": "application/json"}

P0, P1 = tag(0), tag(1)
ASSET = "s1/a1/l1/pump1"
PAGES = {"/": "overview", "/alarms": "alarms", "/devices": "devices", "/quality": "quality"}
ASSET_TEMPLATE = Path(__file__).resolve().parent.parent / "src/plantguard/web/templates/asset.html"


def make_platform(tmp_path, **site) -> Platform:
    d = plant_dict(3, data_dir=str(tmp_path / "data"))
    d["sites"][0].update(site)
    return Platform(parse_config(d))


@pytest.fixture
def platform(tmp_path):
    p = make_platform(tmp_path, timezone="Europe/Paris", name="Bottling plant").start()
    yield p
    p.stop()


@pytest.fixture
def client(platform):
    app = create_app(platform.services)
    app.state.stream_tick_s = 0.05  # a fast clock and a short stream: TestClient reads a response to its end
    app.state.stream_lifetime_s = 0.6
    with TestClient(app, base_url="http://127.0.0.1", headers={**JSON_HEADERS, **auth_headers(app.state.services)}) as c:
        yield c


def ingest(client, point: str, value: float, ts_ms: int | None = None) -> None:
    r = client.post("/api/ingest", json={"readings": [{"point": point, "ts": ts_ms or now_us() // 1000, "value": value}]})
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


def raise_alarm(client, platform) -> str:
    ingest(client, P0, 95.0)  # above HIHI 90
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = [a for a in platform.services.alarms.engine.list() if a.active]
        if rows:
            return rows[0].id
        time.sleep(0.02)
    raise AssertionError("no alarm raised")


def events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


@pytest.mark.parametrize("path,page", PAGES.items())
def test_every_page_renders_with_its_hooks(client, path, page):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert f'data-page="{page}"' in html and 'data-tz="Europe/Paris"' in html
    for key in ("overview", "alarms", "devices", "quality"):
        assert f'data-nav="{key}"' in html
    assert 'aria-current="page"' in html and "<main" in html and 'href="#main"' in html
    assert "data-user" in html and "admin-tests" in html and 'action="/logout"' in html  # who is signed in
    assert "Bottling plant" in html and "/static/js/live.js" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # nothing from the internet


def test_static_files_are_served_from_the_package(client):
    for path in ("/static/js/live.js", "/static/js/alarms.js", "/static/css/app.css"):
        assert client.get(path).status_code == 200, path
    assert client.get("/static/nothing.js").status_code == 404


def test_root_is_the_dashboard_and_the_api_stays_where_it_was(client):
    assert client.get("/", follow_redirects=False).status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/api/health").json()["writer_alive"] is True
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/stream" in paths and "/" not in paths and "/alarms" not in paths


def test_overview_shows_the_tree_status_alarms_and_health(client, platform):
    html = client.get("/").text
    assert f'data-asset="{ASSET}" data-status="nodata"' in html and f'href="/asset/{ASSET}"' in html
    ingest(client, P1, 50.0)
    assert f'data-asset="{ASSET}" data-status="ok"' in client.get("/").text
    alarm_id = raise_alarm(client, platform)
    html = client.get("/").text
    assert f'data-asset="{ASSET}" data-status="{platform.services.alarms.engine.get(alarm_id).priority}"' in html
    assert f'data-alarm-id="{alarm_id}"' in html
    assert 'data-health="readings_per_s"' in html and 'data-health="queued_readings"' in html
    assert 'data-oee-line="s1/a1/l1"' in html and "no OEE configured" in html


def test_unknown_asset_is_a_404_page(client):
    for path in ("/asset/s1/a1/l1/nope", "/asset/s1/a1", "/asset/s1/a1/l1/pump1/plc1"):
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert 'data-page="not-found"' in r.text and "data-user" in r.text


@pytest.mark.skipif(not ASSET_TEMPLATE.exists(), reason="the asset page template is not there yet")
def test_asset_page_renders(client):
    r = client.get(f"/asset/{ASSET}")
    assert r.status_code == 200 and 'data-page="asset"' in r.text


def test_asset_context(platform):
    ctx = asset_context(platform.services, ASSET)
    assert {k: ctx[k] for k in ("path", "name", "kind", "line_path", "timezone", "rul", "multivariate", "oee_line")} == {
        "path": ASSET, "name": "pump1", "kind": "pump", "line_path": "s1/a1/l1", "timezone": "Europe/Paris",
        "rul": False, "multivariate": False, "oee_line": False}
    p0 = ctx["points"][0]
    assert p0 == {"tag": P0, "id": "p0", "device": "plc1", "name": "p0", "unit": "degC", "data_type": "float", "period_s": 1.0,
                  "limits": {"hi": 80, "hihi": 90, "lo": 20, "lolo": 10}, "spc": False, "anomaly": False}
    assert ctx["points"][1]["limits"] == {}
    assert ctx["anomaly_threshold"] is None  # no anomaly detection configured


def test_asset_context_anomaly_threshold_prefers_the_asset_detector(tmp_path):
    d = plant_dict(3, data_dir=str(tmp_path / "data"))
    asset = d["sites"][0]["areas"][0]["lines"][0]["assets"][0]
    asset["devices"][0]["points"][1]["analytics"] = {"anomaly": {"threshold": 0.8}}
    p = Platform(parse_config(d))
    try:
        assert asset_context(p.services, ASSET)["anomaly_threshold"] == 0.8
        asset["analytics"] = {"anomaly": {"points": ["plc1/p1", "plc1/p2"], "threshold": 0.97}}
        p.replace_model(d)
        assert asset_context(p.services, ASSET)["anomaly_threshold"] == 0.97
    finally:
        p.stop()


def test_html_escapes_names_from_the_plant_model(tmp_path):
    d = plant_dict(2, data_dir=str(tmp_path / "data"))
    d["sites"][0]["name"] = "<b>plant</b>"
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["name"] = "<script>alert(1)</script>"
    p = Platform(parse_config(d)).start()
    try:
        with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers={**JSON_HEADERS, **auth_headers(p)}) as c:
            html = c.get("/").text
            assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
            assert "<b>plant</b>" not in html and "&lt;b&gt;plant&lt;/b&gt;" in html
            r = c.get("/asset/s1/a1/l1/<img src=x onerror=alert(1)>")
            assert r.status_code == 404 and "<img src=x" not in r.text
            assert "<svg onload" not in c.get("/alarms", params={"prefix": "<svg onload=alert(1)>"}).text
    finally:
        p.stop()


def test_alarms_page_rows_filters_and_times_in_the_site_zone(client, platform):
    alarm_id = raise_alarm(client, platform)
    html = client.get("/alarms").text
    rec = platform.services.alarms.engine.get(alarm_id)
    assert f'data-alarm-id="{alarm_id}" data-state="unacknowledged" data-priority="{rec.priority}"' in html
    assert 'data-action="ack"' in html and 'data-action="shelve"' in html and "Active, unacknowledged" in html
    assert "95 °C" in html  # value with its unit
    assert (" CET" in html) or (" CEST" in html)  # raised time in Europe/Paris
    assert "data-operator-name" in html and "data-shelve-dialog" in html
    assert alarm_id not in client.get("/alarms", params={"state": "shelved"}).text
    assert alarm_id not in client.get("/alarms", params={"prefix": "s2/"}).text
    assert alarm_id in client.get("/alarms", params={"active": "true", "priority": rec.priority}).text
    assert client.get("/alarms", params={"state": "bogus"}).status_code == 200  # shown unfiltered, not an error
    assert 'data-state="normal"' not in client.get("/alarms").text  # the summary hides normal alarms...
    assert 'data-state="normal"' in client.get("/alarms", params={"state": "all"}).text  # ...unless asked
    r = client.post(f"/api/alarms/{alarm_id}/shelve", json={"duration": "30m", "reason": "sensor swap"})
    assert r.status_code == 200
    html = client.get("/alarms", params={"state": "shelved"}).text
    assert 'data-state="shelved"' in html and 'data-action="unshelve"' in html and "sensor swap" in html


def test_devices_page_shows_connection_state_and_last_seen(client):
    html = client.get("/devices").text
    assert 'data-device="s1/a1/l1/pump1/plc1" data-state="never"' in html
    ingest(client, P0, 50.0)
    html = client.get("/devices").text
    assert 'data-device="s1/a1/l1/pump1/plc1" data-state="online"' in html
    assert client.post("/api/gateway/edge-1/batches", json={"seq": 1, "readings": [
        {"point": P1, "ts": now_us() // 1000, "value": 3}]}).status_code == 200
    html = client.get("/devices").text
    assert 'data-gateway="edge-1"' in html and "autonomy" in html.lower()


def test_quality_page_lists_dead_letters_with_reasons(client):
    assert "data-no-dead-letters" in client.get("/quality").text
    r = client.post("/api/ingest", json={"readings": [{"point": P0, "ts": now_us() // 1000, "value": 5000},
                                                      {"point": "s1/a1/l1/pump1/plc1/nope", "ts": now_us() // 1000, "value": 1}]})
    assert r.json()["rejected"] == 2
    html = client.get("/quality").text
    assert html.count("data-dead-letter=") == 2 and "data-reason-counts" in html
    only = client.get("/quality", params={"reason": "unknown"}).text
    assert only.count("data-dead-letter=") == 1
    assert client.get("/quality", params={"code": "out_of_range"}).text.count("data-dead-letter=") == 1
    # grouped by the reason codes, with their whole label (not the first words of the reason text)
    assert 'data-reason="unknown_point"' in html and "unknown point (not in the plant model)" in html
    assert 'data-reason="out_of_range"' in html and "value outside the engineering range" in html


def test_quality_counts_every_dead_letter_in_the_store(client):
    rows = [{"point": f"nowhere/{i}", "ts": now_us() // 1000, "value": 1} for i in range(1500)]
    assert client.post("/api/ingest", json={"readings": rows}).json()["rejected"] == 1500
    html = client.get("/quality").text
    assert "1 500" in html and html.count("data-dead-letter=") == 200  # counted in the store, 200 rows shown


def test_stream_sends_latest_alarms_and_health(client, platform):
    ingest(client, P0, 42.0)
    since = now_us()
    raise_alarm(client, platform)
    r = client.get("/api/stream", params={"points": f"{P0},{P1}", "since": since})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.text.startswith("retry: 2000\n")
    evs = events(r.text)
    kinds = [k for k, _ in evs]
    assert kinds[0] == "latest" and "alarms" in kinds and "health" in kinds
    first = evs[0][1]
    assert set(first["values"]) == {P0} and first["values"][P0]["value"] == 95.0 and first["values"][P0]["quality"] == 0
    later = [d for k, d in evs[1:] if k == "latest"]
    assert later and all(d["values"] == {} for d in later)  # only changes after the first tick
    alarms = next(d for k, d in evs if k == "alarms")
    assert alarms["data"][0]["tag"] == P0 and alarms["data"][0]["state"] == "unacknowledged"
    assert sum(1 for k, _ in evs if k == "alarms") == 1  # sent once, not every tick
    health = next(d for k, d in evs if k == "health")
    assert health["writer_alive"] is True and "readings_per_s" in health and "queued_readings" in health


def test_stream_resumes_from_last_event_id_and_skips_known_alarms(client, platform):
    alarm_id = raise_alarm(client, platform)
    evs = events(client.get("/api/stream").text)  # no cursor: the page already shows current alarms
    assert not [d for k, d in evs if k == "alarms"] and not [d for k, d in evs if k == "latest"]
    before = platform.services.alarms.engine.get(alarm_id).updated_at
    client.post(f"/api/alarms/{alarm_id}/ack", json={})
    evs = events(client.get("/api/stream", headers={"Last-Event-ID": str(before)}).text)
    changed = [d for k, d in evs if k == "alarms"]
    assert changed and changed[0]["data"][0]["state"] == "acknowledged" and changed[0]["data"][0]["acked_by"] == "admin-tests/t1"  # the token that acted


def test_stream_refuses_unknown_and_too_many_points(client):
    assert client.get("/api/stream", params={"points": "s1/x/y"}).status_code == 404
    many = ",".join(f"s1/a1/l1/pump1/plc1/x{i}" for i in range(MAX_POINTS + 1))
    assert client.get("/api/stream", params={"points": many}).status_code == 400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(platform):
    """uvicorn serving the platform in a thread on a free port, started."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(platform.services), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return server, th, port


def test_stream_ends_when_uvicorn_shuts_down(platform):
    server, th, port = _serve(platform)
    deadline = time.monotonic() + 10
    got: list[str] = []

    headers = auth_headers(platform)

    def listen():
        try:
            with httpx.stream("GET", f"http://127.0.0.1:{port}/api/stream", timeout=10, headers=headers) as r:
                for line in r.iter_lines():
                    got.append(line)
        except httpx.HTTPError:
            pass

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    while not any(x.startswith("event: health") for x in got) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert any(x.startswith("event: health") for x in got)
    t0 = time.monotonic()
    server.should_exit = True  # what the demo does; SIGINT/SIGTERM set the same flag in `plantguard serve`
    th.join(5)
    assert not th.is_alive() and time.monotonic() - t0 < 3
    reader.join(2)
    assert not reader.is_alive()


def test_stream_ends_when_the_client_goes_away(platform):
    server, th, port = _serve(platform)
    deadline = time.monotonic() + 10
    try:
        with httpx.stream("GET", f"http://127.0.0.1:{port}/api/stream", timeout=10, headers=auth_headers(platform)) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("event: health"):
                    break
        while server.server_state.tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.server_state.tasks  # the response task ended with the connection
    finally:
        server.should_exit = True
        th.join(5)


def test_a_stream_subscribes_to_alarm_changes_while_it_runs_only(client, platform):
    """Each stream learns which alarms changed from the event bus (no scan of every alarm per tick) and its
    subscription ends with the stream."""
    before = {n for n in platform.bus.stats() if n.startswith("sse-")}
    r = client.get("/api/stream", params={"points": P0})
    assert r.status_code == 200
    assert {n for n in platform.bus.stats() if n.startswith("sse-")} == before


def _stream_until_revoked(platform, revoke, *, headers=None, cookies=None) -> int:
    """Opens the stream on a real server, waits for its first events, calls `revoke`, and returns how many events
    still came before the stream ended (it never ends by itself: without the check this waits until it fails)."""
    from plantguard.testing.wait import wait_for

    app = create_app(platform.services)
    app.state.stream_tick_s = 0.05
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    wait_for(lambda: server.started, "the server to start")
    lines: list[str] = []
    ended = threading.Event()

    def listen():
        try:
            with httpx.stream("GET", f"http://127.0.0.1:{port}/api/stream", params={"points": P0}, headers=headers,
                              cookies=cookies, timeout=120) as r:
                for line in r.iter_lines():
                    lines.append(line)
        except httpx.HTTPError:
            pass
        ended.set()

    threading.Thread(target=listen, daemon=True).start()
    try:
        wait_for(lambda: any(x.startswith("event: ") for x in lines), "the stream's first event")
        before = sum(1 for x in lines if x.startswith("event: "))
        revoke()
        wait_for(ended.is_set, "the stream to end after its credential was revoked")
        return sum(1 for x in list(lines) if x.startswith("event: ")) - before
    finally:
        server.should_exit = True
        th.join(10)


def test_a_stream_ends_when_its_token_is_revoked_or_its_session_ends(platform):
    """The credential is checked again while the stream runs: a revoked token, or a session that logged out,
    receives no more plant data (before, the stream kept sending after the revocation until the client left)."""
    from plantguard.domain.actor import Actor
    from plantguard.testing.auth import login
    from plantguard.web.live import HEALTH_EVERY_TICKS

    h = auth_headers(platform, "viewer", name="stream-viewer")
    tid = next(t.id for t in platform.services.accounts.tokens("stream-viewer"))
    after = _stream_until_revoked(platform, lambda: platform.services.accounts.revoke_token(tid, Actor.system("tests")), headers=h)
    assert after <= 3 * HEALTH_EVERY_TICKS  # at most the ticks until the next check (three kinds of event per tick)
    with TestClient(create_app(platform.services), base_url="http://127.0.0.1") as c:
        login(c, platform, "viewer", "stream-user")
        session = c.cookies.get("pg_session")
    after = _stream_until_revoked(platform, lambda: platform.services.accounts.logout(session), cookies={"pg_session": session})
    assert after <= 3 * HEALTH_EVERY_TICKS
