"""End-to-end fixtures: the simulated plant served live, and headless Chromium (Debian's, driven by Playwright).

The browser is the chromium executable Debian installs (scripts/system-deps.sh); Playwright never downloads one.
Every page fixture records console errors and uncaught page errors; the tests assert there are none.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .harness import LivePlant

CHROMIUM = os.environ.get("PLANTGUARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}
# Every run saves a screenshot of each page. They go to build/screenshots/ so a test run leaves the tree clean;
# PLANTGUARD_UPDATE_SCREENSHOTS=1 writes them to docs/screenshots/, the ones the README shows.
_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = _ROOT / ("docs" if os.environ.get("PLANTGUARD_UPDATE_SCREENSHOTS") == "1" else "build") / "screenshots"


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: install the Debian packages chromium and chromium-driver (scripts/system-deps.sh)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed: pip install -e '.[test]'"
    try:
        import plantguard.web  # noqa: F401
    except ImportError:
        return "the web dashboard (plantguard.web) is not in this tree"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    if reason is None:
        return
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(pytest.mark.skip(reason=reason))


# Module scope, not session: Playwright's sync API runs an event loop on the main thread while it is open, and
# the connector tests that run after this module call asyncio.run() there.
@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    p = LivePlant(tmp_path_factory.mktemp("e2e") / "data")
    try:
        p.start()
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class PageErrors:
    """Console messages of type error and uncaught exceptions of one page."""

    def __init__(self, page) -> None:
        self.items: list[str] = []
        page.on("console", lambda m: self.items.append(f"console.error: {m.text} ({m.location.get('url', '')})")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.items.append(f"page error: {e}"))

    def assert_none(self) -> None:
        assert not self.items, "errors in the browser:\n" + "\n".join(self.items)


def new_page(browser, viewport=DESKTOP):
    ctx = browser.new_context(viewport=viewport, device_scale_factor=1, timezone_id="UTC", locale="en-GB")
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    return ctx, page, PageErrors(page)


OPERATOR = "e2e-operator"


def _checked_page(browser, plant, *viewport, role: str = "operator", name: str = OPERATOR):
    from plantguard.testing.auth import user

    ctx, pg, errors = new_page(browser, *viewport)
    pg.errors = errors
    # signed in the way a user is: a one-time login link sets the session cookie
    who = user(plant.platform, role, name)
    pg.goto(plant.base_url + "/login?link=" + plant.platform.services.accounts.login_link(who), wait_until="load")
    try:
        yield pg
        errors.assert_none()
    finally:
        ctx.close()


@pytest.fixture
def page(browser, plant):
    """A 1280x800 page signed in as an operator; the test fails if the browser logged an error while it ran."""
    yield from _checked_page(browser, plant)


@pytest.fixture
def viewer_page(browser, plant):
    """The same signed in as a viewer."""
    yield from _checked_page(browser, plant, role="viewer", name="e2e-viewer")


@pytest.fixture
def tablet_page(browser, plant):
    """The same at tablet size (768x1024)."""
    yield from _checked_page(browser, plant, TABLET)


@pytest.fixture
def admin_pages(browser, plant):
    """Two admins' pages (ann and bob), for the four-eyes actions of the security page."""
    a = _checked_page(browser, plant, role="admin", name="e2e-ann")
    b = _checked_page(browser, plant, role="admin", name="e2e-bob")
    pa, pb = next(a), next(b)
    yield pa, pb
    for g in (a, b):
        try:
            next(g)
        except StopIteration:
            pass
