"""Operator dashboard in headless Chromium: page load times, and the asset chart of 30 days of 1 Hz data.

Set-up (the same as tests/e2e): the demo bottling line with 30 days of 1 Hz history for the pump discharge
pressure (2.6 M readings, written through the pipeline with its rollups), 2 h of the whole simulated line, then
the simulator live in real time; the API and dashboard served by uvicorn on loopback; Debian's chromium
(/usr/bin/chromium) driven by Playwright, 1280x800, a fresh browser context (cold cache) for every page load.

Measured, median of --repeats (default 5):
- page load: navigationStart -> load event, and for the asset page navigationStart -> every chart drawn
  (body[data-charts-ready="1"]), for each page;
- 30-day zoom on the pump's asset page: click on "30 days" -> every chart of the page drawn, the discharge
  pressure chart's own fetch + render (data-render-ms), and the downsample request for that point (resource
  timing in the browser, and the same request from Python).

    python bench/web_dashboard.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

import httpx

from common import print_machine, record

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from harness import PUMP, SEEDED, LivePlant  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--no-first-run",
        "--disable-component-update", "--disable-sync"]
PAGES = {"overview": "/", "asset": "/asset/" + PUMP, "alarms": "/alarms", "devices": "/devices", "quality": "/quality"}

CLICK_30D = """() => new Promise((resolve, reject) => {
    performance.clearResourceTimings();
    const b = document.querySelector('button[data-range="30d"]');
    const t0 = performance.now();
    b.click();
    const check = () => document.body.dataset.chartsReady === "1" ? resolve(performance.now() - t0)
        : performance.now() - t0 > 30000 ? reject(new Error("charts not ready after 30 s")) : requestAnimationFrame(check);
    requestAnimationFrame(check);
})"""


def med(xs):
    return round(statistics.median(xs), 1)


def signed_in(browser, base: str, cookie: str):
    """A browser context with a dashboard session (the cookie a login sets), so page loads are measured alone."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.add_cookies([{"name": "pg_session", "value": cookie, "url": base}])
    return ctx


def page_loads(browser, base: str, repeats: int, cookie: str) -> dict:
    out = {}
    for name, path in PAGES.items():
        load, dcl, ready = [], [], []
        for _ in range(repeats):
            ctx = signed_in(browser, base, cookie)
            page = ctx.new_page()
            page.goto(base + path, wait_until="load")
            nav = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                                " return {load: n.loadEventEnd, dcl: n.domContentLoadedEventEnd}; }")
            load.append(nav["load"])
            dcl.append(nav["dcl"])
            if name == "asset":
                page.wait_for_selector('body[data-charts-ready="1"]', state="attached", timeout=30_000)
                ready.append(page.evaluate("performance.now()"))  # an upper bound: polled after the event
            ctx.close()
        out[name] = {"dom_content_loaded_ms": med(dcl), "load_ms": med(load)}
        if ready:
            out[name]["charts_ready_ms"] = med(ready)
        print(f"  {name:9s} DOMContentLoaded {med(dcl):7.1f} ms   load {med(load):7.1f} ms"
              + (f"   all charts drawn {med(ready):7.1f} ms" if ready else ""), flush=True)
    return out


def zoom_30d(browser, base: str, repeats: int, cookie: str, headers: dict) -> dict:
    ctx = signed_in(browser, base, cookie)
    page = ctx.new_page()
    page.goto(base + PAGES["asset"], wait_until="load")
    page.wait_for_selector('body[data-charts-ready="1"]', state="attached", timeout=30_000)
    click, render, fetch, rows, charts = [], [], [], [], 0
    for _ in range(repeats):
        page.click('button[data-range="1h"]')
        page.wait_for_selector('body[data-charts-ready="1"]', state="attached")
        click.append(page.evaluate(CLICK_30D))
        el = page.locator(f'[data-chart="points"][data-tag="{SEEDED}"]')
        render.append(int(el.get_attribute("data-render-ms")))
        rows.append(int(el.get_attribute("data-points")))
        charts = page.locator("[data-chart]").count()
        entries = page.evaluate("() => performance.getEntriesByType('resource').map(e => [e.name, e.duration])")
        mine = [d for n, d in entries if "/telemetry/downsample" in n and SEEDED in unquote(n)]
        fetch.extend(mine)
    tier = page.locator(f'[data-chart="points"][data-tag="{SEEDED}"]').get_attribute("data-tier")
    ctx.close()
    # the same request from Python, without the browser
    direct = []
    with httpx.Client(base_url=base, timeout=30, headers=headers) as c:
        for _ in range(repeats):
            t = time.perf_counter()
            r = c.get("/api/telemetry/downsample", params={"point": SEEDED, "start": "now-30d", "end": "now", "buckets": 1000})
            r.raise_for_status()
            direct.append((time.perf_counter() - t) * 1000)
    res = {"charts_on_page": charts, "click_to_all_charts_ms": med(click), "pressure_chart_fetch_render_ms": med(render),
           "pressure_chart_rows": int(statistics.median(rows)), "tier": tier,
           "downsample_request_browser_ms": med(fetch) if fetch else None,
           "downsample_request_python_ms": med(direct), "click_to_all_charts_max_ms": round(max(click), 1)}
    print(f"  30-day zoom: click -> {charts} charts drawn {res['click_to_all_charts_ms']} ms (max {res['click_to_all_charts_max_ms']}), "
          f"pressure chart fetch + render {res['pressure_chart_fetch_render_ms']} ms, {res['pressure_chart_rows']} rows from {tier}, "
          f"downsample requests of that point (points and SPC charts) {res['downsample_request_browser_ms']} ms in the "
          f"browser, queued with the page's other requests / {res['downsample_request_python_ms']} ms alone from Python (1000 buckets)", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    m = print_machine()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing (Debian packages chromium and chromium-driver): skipping")
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        plant = LivePlant(Path(tmp) / "data")
        try:
            plant.start()
            print(f"set-up: 30 days of 1 Hz for {SEEDED.rsplit('/', 2)[-2:]} in {plant.timings['seed_point_s']:.1f} s, "
                  f"2 h of the line in {plant.timings['seed_line_s']:.1f} s, live after {plant.timings['start_s']:.1f} s", flush=True)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                version = browser.version
                print(f"chromium {version}, {args.repeats} repeats, medians", flush=True)
                from plantguard.testing.auth import auth_headers, user

                cookie, _ = plant.platform.services.accounts.redeem_link(plant.platform.services.accounts.login_link(user(plant.platform, "viewer", "bench")))
                loads = page_loads(browser, plant.base_url, args.repeats, cookie)
                zoom = zoom_30d(browser, plant.base_url, args.repeats, cookie, auth_headers(plant.platform, "viewer", name="bench"))
                browser.close()
        finally:
            plant.stop()
    record("web_dashboard", {"chromium": version, "repeats": args.repeats, "viewport": "1280x800",
                             "seeded_point_readings": 30 * 86400, "page_load": loads, "zoom_30d": zoom, "machine": m})


if __name__ == "__main__":
    main()
