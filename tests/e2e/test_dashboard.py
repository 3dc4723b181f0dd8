"""The operator dashboard in headless Chromium against the simulated plant running live.

Every page loads without a console error at 1280x800 and at tablet width, live values change, a fault injected
into the simulator raises an alarm that appears on the alarms page without a reload, acknowledging it there
changes its state in the API, the asset chart zooms to 30 days of 1 Hz data in under a second, and the
navigation works from the keyboard. Screenshots of each page go to build/screenshots/, or with
PLANTGUARD_UPDATE_SCREENSHOTS=1 to docs/screenshots/ (shown in the README).
"""

from __future__ import annotations

import time

from urllib.parse import quote

import httpx
import pytest

from .conftest import SCREENSHOTS, TABLET
from .harness import LINE_PATH, PUMP, SEEDED

PAGES = {
    "overview": "/",
    "asset": "/asset/" + PUMP,
    "alarms": "/alarms",
    "devices": "/devices",
    "quality": "/quality",
}
PRESSURE_ALARMS = (f"{SEEDED}:LO", f"{SEEDED}:LOLO")
NAV = ("overview", "alarms", "devices", "quality")


def open_page(page, plant, name: str) -> None:
    page.goto(plant.base_url + PAGES[name], wait_until="load")
    page.wait_for_selector(f'body[data-page="{name}"]', state="attached")
    page.wait_for_selector('body[data-sse-state="open"]', state="attached")
    if name == "asset":
        page.wait_for_selector('body[data-charts-ready="1"]', state="attached", timeout=30_000)


def api(plant) -> httpx.Client:
    from plantguard.testing.auth import auth_headers

    return httpx.Client(base_url=plant.base_url, timeout=10, headers=auth_headers(plant.platform, "engineer", name="e2e-api"))


@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_without_errors_and_is_captured(page, plant, name):
    resp = page.goto(plant.base_url + PAGES[name], wait_until="load")
    assert resp is not None and resp.status == 200
    open_page(page, plant, name)
    body = page.locator("body")
    assert body.get_attribute("data-tz")
    assert page.locator("[data-user]").inner_text().strip().startswith("e2e-operator")  # who is signed in
    for key in NAV:
        assert page.locator(f'a[data-nav="{key}"]').is_visible()
    if name in NAV:
        assert page.locator(f'a[data-nav="{name}"]').get_attribute("aria-current") == "page"
    if name == "asset":
        charts = page.locator("[data-chart]")
        assert charts.count() >= 4
        kinds = set(charts.evaluate_all("els => els.map(e => e.dataset.chart)"))
        assert {"points", "spc", "anomaly", "rul"} <= kinds
        assert charts.evaluate_all("els => els.every(e => e.dataset.state === 'ready')")
    if name == "alarms":  # the bearing's vibration HI alarm was raised while the history was written
        page.wait_for_selector(f'tr[data-alarm-id="{PUMP}/wsn/bearing-vibration:HI"]', state="attached")
    page.wait_for_timeout(300)  # the first live event has been drawn
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    # nothing overflows the 1280 px viewport sideways (1 px of sub-pixel rounding allowed)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280 + 1


@pytest.mark.parametrize("name", list(PAGES))
def test_page_fits_a_tablet(tablet_page, plant, name):
    open_page(tablet_page, plant, name)
    assert tablet_page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"], \
        f"{name} scrolls sideways at {TABLET['width']} px"
    for key in NAV:
        assert tablet_page.locator(f'a[data-nav="{key}"]').is_visible()
    if name == "alarms":
        tablet_page.screenshot(path=str(SCREENSHOTS / "alarms-tablet.png"))


def test_live_values_change(page, plant):
    open_page(page, plant, "asset")
    live = page.locator("[data-live-point]")
    assert live.count() >= 5
    units = live.evaluate_all("els => els.map(e => e.dataset.unit)")
    assert "bar" in units and "mm/s" in units
    page.wait_for_function("() => [...document.querySelectorAll('[data-live-point]')].some(e => /\\d/.test(e.textContent))")
    first = live.evaluate_all("els => els.map(e => e.textContent)")
    page.wait_for_function(
        "before => [...document.querySelectorAll('[data-live-point]')].some((e, i) => /\\d/.test(e.textContent) && e.textContent !== before[i])",
        arg=first, timeout=10_000)


def test_injected_fault_raises_an_alarm_that_is_acknowledged_from_the_page(page, plant):
    open_page(page, plant, "alarms")
    page.evaluate("window.__sameDocument = true")
    with api(plant) as client:
        before = {a["id"]: a["state"] for a in client.get("/api/alarms").json()["data"]}
    assert all(before.get(i, "normal") == "normal" for i in PRESSURE_ALARMS), before
    operator = "e2e-operator"  # the signed-in user: the page has no name field to type another into

    t0 = time.time()
    plant.inject("stop", line=LINE_PATH, duration_s=600)  # the line stops: pump pressure falls below LO and LOLO
    row = page.locator(", ".join(f'tr[data-alarm-id="{i}"][data-state="unacknowledged"]' for i in PRESSURE_ALARMS)).first
    row.wait_for(state="visible", timeout=45_000)
    assert page.evaluate("window.__sameDocument === true"), "the alarm only appeared after a reload"
    alarm_id = row.get_attribute("data-alarm-id")
    raised_after = time.time() - t0

    row.locator('button[data-action="ack"]').click()
    page.wait_for_selector(f'tr[data-alarm-id="{alarm_id}"][data-state="acknowledged"]', state="attached")
    with api(plant) as client:
        rec = client.get("/api/alarms/" + quote(alarm_id, safe="/:")).json()
    assert rec["state"] == "acknowledged" and rec["acked_by"] == operator and rec["acked_at"]
    assert raised_after < 45


def test_asset_chart_zooms_to_30_days_in_under_a_second(page, plant):
    open_page(page, plant, "asset")
    ms = page.evaluate("""() => new Promise((resolve, reject) => {
        const b = document.querySelector('button[data-range="30d"]');
        const t0 = performance.now();
        b.click();
        const check = () => document.body.dataset.chartsReady === "1" ? resolve(performance.now() - t0)
            : performance.now() - t0 > 20000 ? reject(new Error("charts not ready after 20 s")) : requestAnimationFrame(check);
        requestAnimationFrame(check);
    })""")
    assert page.locator('button[data-range="30d"]').get_attribute("aria-pressed") == "true"
    chart = page.locator(f'[data-chart="points"][data-tag="{SEEDED}"]')
    assert chart.get_attribute("data-state") == "ready"
    rows, render_ms = int(chart.get_attribute("data-points")), int(chart.get_attribute("data-render-ms"))
    assert rows >= 500, f"the 30-day chart drew {rows} rows"
    assert render_ms < 1000 and ms < 1000, f"click to charts ready {ms:.0f} ms, pressure chart {render_ms} ms"
    page.screenshot(path=str(SCREENSHOTS / "asset-30d.png"))


def test_keyboard_reaches_the_navigation(page, plant):
    open_page(page, plant, "overview")
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.dataset.nav === 'alarms'"):
            break
    else:
        pytest.fail("Tab never reached the Alarms link")
    page.keyboard.press("Enter")
    page.wait_for_url("**/alarms")
    page.wait_for_selector('body[data-page="alarms"]', state="attached")


def test_api_docs_render_with_no_network(page, plant):
    """/docs is Swagger UI from the vendored copy: with every request beyond the server refused (a plant network
    without internet), the operations still render, and nothing was asked of another host."""
    foreign: list[str] = []
    origin = plant.base_url.rstrip("/")

    def route(r):
        if r.request.url.startswith(origin):
            r.continue_()
        else:
            foreign.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(plant.base_url + "/docs", wait_until="load")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert page.locator(".swagger-ui .opblock").count() > 20
    assert "plantguard" in page.locator(".swagger-ui .title").inner_text()
    assert foreign == []


def test_long_payloads_wrap_on_the_data_quality_page(page, plant):
    with api(plant) as c:
        junk = "x" * 3000
        r = c.post("/api/ingest", content=('{"readings": [{"point": "' + junk + '", "ts": 1, "value": 1}, "' + junk + '"]}').encode(),
                   headers={"content-type": "application/json"})
        assert r.status_code == 200 and r.json()["rejected"] >= 1
    page.set_viewport_size({"width": 1280, "height": 800})
    open_page(page, plant, "quality")
    width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > 1280)
        .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
    assert width <= 1280, f"the page is {width} px wide: {wide}"


def test_a_viewer_sees_alarms_but_no_action_it_would_be_refused(viewer_page, plant):
    open_page(viewer_page, plant, "alarms")
    assert viewer_page.locator("[data-user]").inner_text().strip().startswith("e2e-viewer")
    assert viewer_page.locator("button[data-action]").count() == 0
    assert "cannot acknowledge" in viewer_page.locator("p.operator").inner_text() or "not acknowledge" in viewer_page.locator("p.operator").inner_text()


def test_login_form_logout_and_the_way_back(browser, plant):
    from plantguard.testing.auth import PASSWORD, user

    from .conftest import new_page

    ctx, page, errors = new_page(browser)
    try:
        who = user(plant.platform, "operator", "e2e-form")
        page.goto(plant.base_url + "/alarms", wait_until="load")
        assert "/login" in page.url  # not signed in: the page sends to the login form, and back afterwards
        page.fill("input[name=user]", who)
        page.fill("input[name=password]", "wrong password, long enough")
        page.click("button[type=submit]")
        assert page.locator(".login-error").is_visible()
        page.fill("input[name=user]", who)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector('body[data-page="alarms"]', state="attached")
        cookie = next(c for c in ctx.cookies() if c["name"] == "pg_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        page.click("form.logout button")
        page.wait_for_selector('body[data-page="login"]', state="attached")
        assert not [c for c in ctx.cookies() if c["name"] == "pg_session"]
        errors.assert_none()
    finally:
        ctx.close()


def test_quarantine_and_four_eyes_release_from_the_security_page(admin_pages, plant):
    ann, bob = admin_pages
    ann.goto(plant.base_url + "/security", wait_until="load")
    ann.wait_for_selector('body[data-page="security"]', state="attached")
    device = ann.locator("form[data-quarantine-form] select[name=device] option").first.inner_text()
    ann.select_option("form[data-quarantine-form] select[name=device]", device)
    ann.fill("form[data-quarantine-form] input[name=reason]", "firmware changed without a work order")
    ann.click("form[data-quarantine-form] button[type=submit]")
    ann.wait_for_selector("[data-flash]")
    row = ann.locator(f'tr[data-quarantined="{device}"]')
    assert row.count() == 1 and "another user must release it" in row.inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ann.screenshot(path=str(SCREENSHOTS / "security.png"), full_page=False)
    assert ann.evaluate("document.documentElement.scrollWidth") <= 1280 + 1
    bob.goto(plant.base_url + "/security", wait_until="load")
    form = bob.locator(f'tr[data-quarantined="{device}"] form[data-release-form]')
    form.locator("input[name=reason]").fill("checked with the maintenance team: planned")
    form.locator("button[data-disposition=discard]").click()
    bob.wait_for_selector("[data-flash]")
    assert "released" in bob.locator("[data-flash]").inner_text()
    assert bob.locator(f'tr[data-quarantined="{device}"]').count() == 0
    assert plant.platform.services.quarantine.list() == []


def test_admins_manage_users_and_tokens_from_the_users_page(admin_pages, plant):
    ann, _ = admin_pages
    ann.goto(plant.base_url + "/admin/users", wait_until="load")
    ann.wait_for_selector('body[data-page="users"]', state="attached")
    ann.fill("form[data-create-user] input[name=name]", "e2e-carol")
    ann.select_option("form[data-create-user] select[name=role]", "viewer")
    ann.fill("form[data-create-user] input[name=password]", "carol's long enough passphrase")
    ann.click("form[data-create-user] button[type=submit]")
    ann.wait_for_selector('tr[data-user-row="e2e-carol"]')
    ann.select_option("form[data-create-token] select[name=owner]", "e2e-carol")
    ann.fill("form[data-create-token] input[name=token_name]", "script")
    ann.click("form[data-create-token] button[type=submit]")
    secret = ann.locator("[data-token-secret] code").inner_text().strip()
    r = httpx.get(plant.base_url + "/api/auth/me", headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    assert r.status_code == 200 and r.json()["actor"] == "token:e2e-carol/script", r.text
    ann.goto(plant.base_url + "/admin/users", wait_until="load")  # a reload does not show the secret again
    assert ann.locator("[data-token-secret]").count() == 0
    ann.screenshot(path=str(SCREENSHOTS / "users.png"), full_page=False)
    assert ann.evaluate("document.documentElement.scrollWidth") <= 1280 + 1
