"""Deny by default, checked from the OpenAPI document and the page list, so a new route cannot escape: every
operation names its permission; without a credential every one but the public ones answers 401 (a page sends
to the login form); each role gets 403 exactly where it lacks the permission, and never a server error."""

from __future__ import annotations

import re

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from plantguard import capabilities
from plantguard.api.app import create_app
from plantguard.capabilities import Capability
from plantguard.config import parse_config
from plantguard.runtime import Platform
from plantguard.domain.roles import GRANTS, Permission, Role
from plantguard.testing.auth import auth_headers
from plantguard.testing.factories import plant_dict

BASE = "http://127.0.0.1"
SAMPLE = {"alarm_id": "s1/a1/l1/pump1/plc1/p0:HI", "gateway_id": "gw1", "name": "nobody-here", "token_id": "0" * 16}
PAGES = ["/", "/alarms", "/devices", "/quality", "/asset/s1/a1/l1/pump1", "/docs"]


@pytest.fixture
def served(tmp_path):
    # one platform per test: an admin's calls change the model (a PUT of {} empties it)
    p = Platform(parse_config(plant_dict(3, data_dir=str(tmp_path)))).start()
    app = create_app(p.services)
    headers = {role.value: auth_headers(p, role.value) for role in Role}
    yield app, p, headers
    p.stop()


def operations(app) -> list[tuple[str, str, Permission]]:
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            out.append((method.upper(), path, Permission(op["x-permission"])))
    return out


DEPTH = {"sites": 1, "areas": 2, "lines": 3, "assets": 4, "devices": 5, "points": 6}
MODEL_PATH = "s1/a1/l1/pump1/plc1/p0".split("/")


def concrete(path: str) -> str:
    """The path with its parameters filled in; a model path as deep as its collection (sites/{path}: one level)."""
    def fill(m: re.Match) -> str:
        name, before = m.group(1), path[:m.start()].rstrip("/").rsplit("/", 1)[-1]
        if name in ("path", "parent_path") and before in DEPTH:
            return "/".join(MODEL_PATH[:DEPTH[before]])
        return SAMPLE.get(name, "x")
    return re.sub(r"\{(\w+)\}", fill, path)


def call(c: TestClient, method: str, path: str, headers: dict | None = None):
    h = {"content-type": "application/json", **(headers or {})}
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    with c.stream(method, concrete(path), headers=h, content=body, follow_redirects=False) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            return r  # the live stream: its status is the answer; it would run until the client leaves
        r.read()
        return r


def test_every_operation_names_its_permission(served):
    app, _, _ = served
    ops = operations(app)
    assert len(ops) > 50
    schema = app.openapi()
    for method, path, perm in ops:
        op = schema["paths"][path][method.lower()]
        assert op["security"] == ([] if perm is Permission.PUBLIC else [{"bearer": []}, {"session": []}]), (method, path)


def test_without_a_credential_only_public_operations_answer(served):
    app, _, _ = served
    with TestClient(app, base_url=BASE) as c:
        for method, path, perm in operations(app):
            r = call(c, method, path)
            if perm is Permission.PUBLIC:
                assert r.status_code != 401, (method, path, r.text)
            else:
                assert r.status_code == 401, (method, path, r.status_code, r.text)
                assert r.headers.get("www-authenticate", "").startswith("Bearer")


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_each_role_is_refused_exactly_where_it_lacks_the_permission(served, role):
    app, _, headers = served
    grants = GRANTS[Role(role)]
    with TestClient(app, base_url=BASE) as c:
        for method, path, perm in operations(app):
            if (method, path) == ("POST", "/api/auth/logout"):
                continue  # would end nothing here (a token), but keep the session tests' meaning clear
            r = call(c, method, path, headers[role])
            assert r.status_code < 500 or r.status_code == 503, (role, method, path, r.status_code, r.text)
            if perm is Permission.PUBLIC or perm in grants:
                assert r.status_code not in (401, 403), (role, method, path, r.status_code, r.text)
            else:
                assert r.status_code == 403 and perm.value in r.json()["detail"], (role, method, path, r.status_code, r.text)


def test_pages_send_to_the_login_form_and_open_for_a_viewer(served):
    app, _, headers = served
    with TestClient(app, base_url=BASE) as c:
        for page in PAGES:
            r = c.get(page, headers={"accept": "text/html"}, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), (page, r.status_code)
            r = c.get(page, headers={"accept": "text/html", **headers["viewer"]})
            assert r.status_code == 200, (page, r.status_code)
        assert c.get("/login").status_code == 200


def test_a_route_without_a_permission_stops_the_app_from_being_built(tmp_path):
    r = APIRouter()

    @r.get("/open-door")
    def open_door() -> dict:
        return {}

    cap = Capability("open_door", routers=lambda: [r])
    capabilities.register(cap)
    p = Platform(parse_config(plant_dict(1, data_dir=str(tmp_path))))
    try:
        with pytest.raises(RuntimeError, match="GET /api/open-door"):
            create_app(p.services)
    finally:
        capabilities.unregister("open_door")
        p.stop()


def test_the_permission_an_operation_names_is_the_only_one_it_needs(served):
    """A token scoped to exactly that permission passes (a router-wide requirement would also demand another)."""
    app, p, _ = served
    by_perm: dict = {}
    with TestClient(app, base_url=BASE) as c:
        for method, path, perm in operations(app):
            if perm is Permission.PUBLIC or (method, path) == ("PUT", "/api/model"):
                continue  # the PUT would empty the model for the calls after it
            if perm not in by_perm:
                by_perm[perm] = auth_headers(p, "admin", scopes=[perm.value])
            r = call(c, method, path, by_perm[perm])
            assert r.status_code not in (401, 403), (method, path, perm.value, r.status_code, r.text)


def test_the_security_page_is_for_roles_that_read_security_and_only_they_see_its_link(served):
    app, _, headers = served
    with TestClient(app, base_url=BASE) as c:
        r = c.get("/security", headers={"accept": "text/html", **headers["viewer"]})
        assert r.status_code == 403
        assert 'href="/security"' not in c.get("/", headers=headers["viewer"]).text  # no link it would be refused
        r = c.get("/security", headers={"accept": "text/html", **headers["engineer"]})
        assert r.status_code == 200 and "data-findings" in r.text and 'data-audit-state="intact"' in r.text
        assert 'href="/security"' in c.get("/", headers=headers["engineer"]).text
        assert 'data-check="inventory.no_owner"' in r.text  # the test plant has no owners: a real finding


def test_the_users_page_is_for_admins_only_and_its_forms_refuse_everyone_else(served):
    app, _, headers = served
    with TestClient(app, base_url=BASE) as c:
        r = c.get("/admin/users", headers={"accept": "text/html"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/admin/users"
        for role in ("viewer", "operator", "engineer"):
            r = c.get("/admin/users", headers={"accept": "text/html", **headers[role]})
            assert r.status_code == 403 and "users.manage" in r.text, role
            for form in ("/admin/users", "/admin/tokens"):
                assert c.post(form, data={"action": "create"}, headers=headers[role]).status_code == 403, (role, form)
            for form in ("/security/triage", "/security/quarantine", "/security/release"):  # security.operate: admins
                assert c.post(form, data={}, headers=headers[role]).status_code == 403, (role, form)
        for form in ("/security/triage", "/security/quarantine", "/security/release", "/admin/users", "/admin/tokens"):
            assert c.post(form, data={}, follow_redirects=False).status_code == 401, form
        r = c.get("/admin/users", headers={"accept": "text/html", **headers["admin"]})
        assert r.status_code == 200 and "data-create-token" in r.text
