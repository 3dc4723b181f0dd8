"""Reads do not write: checking a token or a session, a GET of any route and a page view leave every stored table
as it was. Session activity and token use are kept in memory and written in one batch by the background flush."""

import pytest
from fastapi.testclient import TestClient

from plantguard.api.app import create_app
from plantguard.config import parse_config
from plantguard.domain.readings import RawBatch
from plantguard.runtime import Platform
from plantguard.testing.auth import auth_headers, login
from plantguard.testing.factories import plant_dict, tag

LINE = "s1/a1/l1"
ASSET = "s1/a1/l1/pump1"
DEVICE = "s1/a1/l1/pump1/plc1"


def snapshot(p) -> dict:
    """Every row of every table (they are small here), so that any write shows."""
    tables = [t for (t,) in p.store.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")]
    return {t: sorted(map(repr, p.store.fetch(f"SELECT * FROM {t}"))) for t in tables}


@pytest.fixture
def plat(tmp_path):
    d = plant_dict(2, data_dir=str(tmp_path))
    d["connectors"] = [{"type": "modbus", "name": "plc", "transport": {"kind": "tcp", "host": "10.0.0.5", "port": 502},
                        "devices": [{"device": DEVICE, "points": [{"id": "p0", "address": 0}]}]}]
    p = Platform(parse_config(d))
    p.pipeline.process_now(RawBatch.build([tag(0), tag(1)], [p.clock() - 2_000_000] * 2, [1.0, 2.0]))
    yield p
    p.stop()


GETS = ["/api/health", "/api/model", "/api/points", "/api/alarms", "/api/dead-letters", f"/api/telemetry/latest?points={tag(0)}", f"/api/telemetry/raw?point={tag(0)}&start=now-1h&end=now",
        "/api/security/findings", "/api/security/risks", f"/api/security/risks/{DEVICE}/history", "/api/security/events",
        "/api/security/quarantine", "/api/security/ca.pem", "/api/users", "/api/tokens", "/api/audit", "/api/audit/verify",
        "/api/auth/me", "/metrics", "/", f"/asset/{ASSET}", "/alarms", "/devices", "/quality", "/security", "/admin/users"]


def test_gets_and_page_views_change_nothing_stored(plat):
    with TestClient(create_app(plat.services), base_url="http://127.0.0.1", headers=auth_headers(plat)) as c:
        c.get("/api/health")  # the first request of a token: its use is noted in memory only
        plat.services.accounts.flush_activity()
        before = snapshot(plat)
        for path in GETS:
            r = c.get(path)
            assert r.status_code in (200, 503), (path, r.status_code, r.text[:300])  # 503: health of a platform not started
        assert snapshot(plat) == before


def test_session_activity_and_token_use_are_written_in_one_batch(plat):
    acc = plat.services.accounts
    with TestClient(create_app(plat.services), base_url="http://127.0.0.1") as c:
        login(c, plat, "viewer", "vera")
        headers = auth_headers(plat, "viewer", name="tom")
        acc.flush_activity()
        seen_before = plat.store.fetch("SELECT last_seen FROM sessions")
        assert c.get("/api/auth/me").json()["actor"] == "user:vera"
        assert TestClient(c.app, base_url="http://127.0.0.1", headers=headers).get("/api/model").status_code == 200
        assert plat.store.fetch("SELECT last_seen FROM sessions") == seen_before  # the checks wrote nothing
        assert plat.store.fetch("SELECT last_used_at FROM api_tokens WHERE owner = 'tom'") == [(None,)]
        assert acc.tokens("tom")[0].last_used_at is not None  # yet the use is shown
        acc.flush_activity()
        assert plat.store.fetch("SELECT last_used_at FROM api_tokens WHERE owner = 'tom'")[0][0] is not None


def test_an_ended_session_is_refused_at_once_and_deleted_by_the_flush(plat):
    acc = plat.services.accounts
    with TestClient(create_app(plat.services), base_url="http://127.0.0.1") as c:
        login(c, plat, "viewer", "vera")
        cookie = c.cookies.get("pg_session")
        real = acc.clock
        acc.clock = lambda: real() + int((acc.settings.session_idle + 5) * 1e6)
        acc._forget()  # noqa: SLF001 - the short principal cache, as after its few seconds
        try:
            assert acc.session(cookie) is None
            assert plat.store.fetch("SELECT count(*) FROM sessions") == [(1,)]  # the refusal wrote nothing
            acc.flush_activity()
            assert plat.store.fetch("SELECT count(*) FROM sessions") == [(0,)]
        finally:
            acc.clock = real
