"""The security page's forms and the admins' users page over HTTP: every form needs the session's CSRF token,
each role sees only the actions it may take, a refused page is a page (not JSON), a service's refusal (four eyes,
a bad reason, an unknown device) is shown on the page with its status, and hostile form input is refused."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from plantguard.api.app import create_app
from plantguard.config import parse_config
from plantguard.runtime import Platform
from plantguard.testing.auth import PASSWORD, auth_headers, user
from plantguard.testing.factories import plant_dict

BASE = "http://127.0.0.1"
DEV = "s1/a1/l1/pump1/plc1"
HTML = {"accept": "text/html"}


@pytest.fixture
def plat(tmp_path):
    p = Platform(parse_config(plant_dict(2, data_dir=str(tmp_path), alarms=False))).start()
    yield p
    p.stop()


def session(p, role: str, name: str) -> tuple[TestClient, str]:
    """A browser-like client signed in through the login form: (client, the page's CSRF token)."""
    c = TestClient(create_app(p.services), base_url=BASE)
    who = user(p, role, name)
    r = c.post("/api/auth/login", json={"user": who, "password": PASSWORD})
    r.raise_for_status()
    return c, r.json()["csrf"]


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def test_each_role_sees_the_actions_it_may_take(plat):
    for role, operate, users in (("viewer", None, False), ("engineer", False, False), ("admin", True, True)):
        c, _ = session(plat, role, f"{role}-web")
        with c:
            r = c.get("/security", headers=HTML)
            if operate is None:
                assert r.status_code == 403 and "Not allowed" in r.text and "data-forbidden" in r.text  # a page, not JSON
            else:
                assert r.status_code == 200
                assert ("data-quarantine-form" in r.text) is operate and ("data-triage-form" in r.text) is operate
            r = c.get("/admin/users", headers=HTML)
            assert (r.status_code == 200) is users and ('href="/admin/users"' in c.get("/", headers=HTML).text) is users


def test_forms_need_the_csrf_token_of_the_session(plat):
    c, csrf = session(plat, "admin", "ann")
    with c:
        form = {"device": DEV, "reason": "a test"}
        assert c.post("/security/quarantine", data=form, headers=HTML).status_code == 403
        assert c.post("/security/quarantine", data={**form, "csrf": "x" * 43}, headers=HTML).status_code == 403
        other, other_csrf = session(plat, "admin", "bob")
        with other:  # another session's token is not this session's
            assert c.post("/security/quarantine", data={**form, "csrf": other_csrf}, headers=HTML).status_code == 403
        assert plat.services.quarantine.list() == []
        assert c.post("/admin/users", data={"action": "create", "name": "eve", "role": "admin", "password": PASSWORD},
                      headers=HTML).status_code == 403
        r = c.post("/security/quarantine", data={**form, "csrf": csrf}, headers=HTML)
        assert r.status_code == 200 and "quarantined" in r.text
    # a bearer token is not a browser: no CSRF (no cookie to ride on)
    with TestClient(create_app(plat.services), base_url=BASE, headers=auth_headers(plat, "admin", name="carol")) as t:
        r = t.post("/security/release", data={"device": DEV, "reason": "checked", "disposition": "discard"}, headers=HTML)
        assert r.status_code == 200 and "released" in r.text


def test_four_eyes_and_other_refusals_are_shown_on_the_page(plat):
    ann, ann_csrf = session(plat, "admin", "ann")
    bob, bob_csrf = session(plat, "admin", "bob")
    with ann, bob:
        r = ann.post("/security/quarantine", data={"device": DEV, "reason": "", "csrf": ann_csrf}, headers=HTML)
        assert r.status_code == 400 and "data-flash-error" in r.text and "reason" in r.text
        r = ann.post("/security/quarantine", data={"device": "s1/a1/l1/pump1/nope", "reason": "x", "csrf": ann_csrf}, headers=HTML)
        assert r.status_code == 404 and "data-flash-error" in r.text
        ann.post("/security/quarantine", data={"device": DEV, "reason": "odd traffic", "csrf": ann_csrf}, headers=HTML)
        page = ann.get("/security", headers=HTML).text
        assert "another user must release it" in page and "data-release-form" not in page
        r = ann.post("/security/release", data={"device": DEV, "reason": "fine", "disposition": "admit", "csrf": ann_csrf}, headers=HTML)
        assert r.status_code == 403 and "four eyes" in r.text
        r = bob.post("/security/release", data={"device": DEV, "reason": "fine", "disposition": "burn", "csrf": bob_csrf}, headers=HTML)
        assert r.status_code == 400
        r = bob.post("/security/release", data={"device": DEV, "reason": "fine", "disposition": "admit", "csrf": bob_csrf}, headers=HTML)
        assert r.status_code == 200 and "released" in r.text
        # triage from the page: the finding leaves the list, the decision is audited
        assert 'data-check="inventory.no_owner" data-device="s1/a1/l1/pump1/plc1"' in bob.get("/security", headers=HTML).text
        r = bob.post("/security/triage", data={"check": "inventory.no_owner", "device": DEV, "decision": "accept",
                                                "reason": "test rig, no owner", "csrf": bob_csrf}, headers=HTML)
        assert r.status_code == 200 and 'data-check="inventory.no_owner" data-device="s1/a1/l1/pump1/plc1"' not in r.text
        r = bob.post("/security/triage", data={"check": "no.such.check", "device": DEV, "decision": "mute", "reason": "x",
                                                "csrf": bob_csrf}, headers=HTML)
        assert r.status_code == 400
    actions = {e.action for e in plat.services.audit.entries()}
    assert {"quarantine", "quarantine.release.admit", "security.triage.accept"} <= actions


def test_users_and_tokens_from_the_admin_page(plat):
    c, csrf = session(plat, "admin", "ann")
    with c:
        r = c.post("/admin/users", data={"action": "create", "name": "dave", "role": "operator", "password": "too short", "csrf": csrf},
                   headers=HTML)
        assert r.status_code == 400 and "data-flash-error" in r.text
        r = c.post("/admin/users", data={"action": "create", "name": "dave", "role": "operator", "password": PASSWORD, "csrf": csrf},
                   headers=HTML)
        assert r.status_code == 200 and 'data-user-row="dave"' in r.text
        r = c.post("/admin/tokens", data={"action": "create", "owner": "dave", "token_name": "scada", "days": "30",
                                          "scopes": ["read", "alarms.operate"], "csrf": csrf}, headers=HTML)
        secret = re.search(r"data-token-secret>Token secret \(shown once\): <code>([^<]+)</code>", r.text).group(1)
        with TestClient(create_app(plat.services), base_url=BASE, headers={"Authorization": f"Bearer {secret}"}) as t:
            assert t.get("/api/auth/me").json()["permissions"] == ["alarms.operate", "read"]
        assert secret not in c.get("/admin/users", headers=HTML).text  # shown once
        tid = plat.services.accounts.tokens("dave")[0].id
        for bad in ({"days": "a lot"}, {"days": "100000"}, {"scopes": ["users.manage"]}, {"owner": "nobody"}, {"token_name": "a b"}):
            form = {"action": "create", "owner": "dave", "token_name": "x", "days": "30", "csrf": csrf, **bad}
            assert c.post("/admin/tokens", data=form, headers=HTML).status_code in (400, 404), bad
        r = c.post("/admin/tokens", data={"action": "revoke", "id": tid, "csrf": csrf}, headers=HTML)
        assert r.status_code == 200 and f'data-token-row="{tid}" data-token-state="revoked"' in r.text
        r = c.post("/admin/users", data={"action": "disable", "name": "ann", "csrf": csrf}, headers=HTML)
        assert r.status_code == 400  # not one's own account
        r = c.post("/admin/users", data={"action": "disable", "name": "dave", "csrf": csrf}, headers=HTML)
        assert r.status_code == 200 and plat.services.accounts.user("dave").disabled
        # hostile input: a huge field, an unknown action, a JSON body to a form route
        r = c.post("/admin/users", data={"action": "create", "name": "x" * 1000, "role": "admin", "password": PASSWORD, "csrf": csrf},
                   headers=HTML)
        assert r.status_code == 400
        assert c.post("/admin/users", data={"action": "drop tables", "csrf": csrf}, headers=HTML).status_code == 400
        r = c.post("/admin/users", json={"action": "create"}, headers={**HTML, "X-CSRF-Token": csrf})
        assert r.status_code == 400


def test_bodies_above_the_route_limit_are_refused_before_they_are_read(plat):
    c, csrf = session(plat, "admin", "ann")
    with c:
        big = {"csrf": csrf, "device": DEV, "reason": "x" * 100_000}
        r = c.post("/security/quarantine", data=big, headers=HTML)
        assert r.status_code == 413 and plat.services.quarantine.list() == []

        def chunks():  # no Content-Length: streamed in chunks, 32 MiB in all
            for _ in range(512):
                yield b"x" * 65536

        r = c.post("/api/security/triage", content=chunks(), headers={"content-type": "application/json", "X-CSRF-Token": csrf})
        assert r.status_code == 413
        r = c.post("/api/security/triage", content=b"{}", headers={"content-type": "application/json", "X-CSRF-Token": csrf,
                                                                    "content-length": "99999999999"})
        assert r.status_code == 413
        # a small streamed body still reaches its route
        r = c.post("/api/security/triage", content=iter([b'{"check": "inventory.no_owner", ', b'"device": "%s", ' % DEV.encode(),
                                                          b'"decision": "mute", "reason": "streamed"}']),
                   headers={"content-type": "application/json", "X-CSRF-Token": csrf})
        assert r.status_code == 204, r.text
