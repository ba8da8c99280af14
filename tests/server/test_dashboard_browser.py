"""The dashboard in a real browser: Chromium driven by Playwright against a live uvicorn server."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from headwater import FeatureStore
from headwater.server import create_app
from tests.server import build_project

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("HEADWATER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(os.environ.get("HEADWATER_TEST_SCREENSHOT", "/tmp/dashboard.png"))
TOKEN = "browser-token"
TIMEOUT_MS = 15_000


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free localhost port in a background thread."""
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", ws="none", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureStore]:
    with build_project(tmp_path_factory.mktemp("project")) as built:
        yield built


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # scripts/test installs both; a missing browser is a failure, not a skip, unless asked.
    if not Path(CHROMIUM).is_file() and os.environ.get("HEADWATER_SKIP_BROWSER") == "1":
        pytest.skip(f"no Chromium at {CHROMIUM} and HEADWATER_SKIP_BROWSER=1")
    assert Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM}: apt-get install chromium"
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; any script error or console error (CSP violations too) fails the test."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", on_console)
    yield page
    context.close()
    # A refused token makes the browser log the 401 response: expected, not a problem.
    assert [p for p in problems if "401" not in p] == []


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def _cells(row: Any) -> list[str]:
    return [text.strip() for text in row.locator("td").all_inner_texts()]


def test_dashboard_lists_views_runs_and_looks_features_up(store: FeatureStore, page: Any) -> None:
    with running(create_app(store)) as url:
        page.goto(url)
        views = page.locator("#views-table tbody tr[data-view]")
        views.first.wait_for()
        assert views.count() == 2
        daily = _cells(page.locator('tr[data-view="user_orders_daily"]'))
        assert daily[0].startswith("user_orders_daily") and "amount_sum, count" in daily[0]
        assert "aggregation" in daily[1] and "tumbling 1d" in daily[1]
        assert "user" in daily[2] and "orders" in daily[3]
        offline = {s.name: s.offline_rows for s in store.status()}
        assert daily[4] == str(offline["user_orders_daily"])
        assert daily[5].endswith("UTC") and daily[6].endswith("ago")
        assert "success" in daily[7]
        assert page.locator("#project").inner_text() == "t"

        runs = page.locator("#runs-table tbody tr[data-run]")
        runs.first.wait_for()
        expected = store.registry.runs()
        assert runs.count() == len(expected) == 4
        shown = {(c[1], c[2]) for c in (_cells(runs.nth(i)) for i in range(runs.count()))}
        assert shown == {(r.view, r.kind) for r in expected}
        assert all(_cells(runs.nth(i))[0] == "success" for i in range(runs.count()))

        page.select_option("#lookup-view", "user_orders_daily")
        page.fill('#lookup-keys input[name="user_id"]', "1")
        page.click("#lookup-form button[type=submit]")
        value = page.locator('#lookup-result tr[data-feature="amount_sum"] td').nth(1)
        value.wait_for()
        sdk = store.get_online_features(["user_orders_daily:amount_sum"], [{"user_id": 1}])
        assert value.inner_text() == str(sdk.to_dict()["amount_sum"][0]) == "15.5"
        count = page.locator('#lookup-result tr[data-feature="count"] td').nth(1)
        assert count.inner_text() == "2"
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        page.select_option("#runs-view", "user_last_order")
        # Locator assertions poll from Playwright's side: the page's CSP forbids eval().
        expect(runs).to_have_count(2)

        page.fill('#lookup-keys input[name="user_id"]', "99")
        page.click("#lookup-form button[type=submit]")
        expect(count).to_have_text("null")


def test_dashboard_asks_for_the_token_and_keeps_it(store: FeatureStore, page: Any) -> None:
    with running(create_app(store, token=TOKEN)) as url:
        page.goto(url)
        panel = page.locator("#token-panel")
        panel.wait_for(state="visible")
        assert page.locator("#views-table tbody tr[data-view]").count() == 0

        page.fill("#token-input", "not-the-token")
        page.click("#token-form button[type=submit]")
        page.locator("#token-error").wait_for(state="visible")
        assert "refused" in page.locator("#token-error").inner_text()

        page.fill("#token-input", TOKEN)
        page.click("#token-form button[type=submit]")
        page.locator("#views-table tbody tr[data-view]").first.wait_for()
        expect(panel).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('headwater.token')") == TOKEN

        page.reload()
        page.locator("#runs-table tbody tr[data-run]").first.wait_for()
        expect(panel).to_be_hidden()

        page.click("#forget-token")
        panel.wait_for(state="visible")
        assert page.evaluate("sessionStorage.getItem('headwater.token')") is None
