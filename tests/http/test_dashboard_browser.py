"""The dashboard in headless Chromium (Debian's, never a downloaded one): a device appears,
an alert turns firing then resolved without a reload, its trace opens; a screenshot is
saved to test-artifacts/ for a human to look at."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.http.conftest import LiveGateway, unique

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is needed (make test-deps installs it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_dashboard(browser: Browser, url: str, width: int = 1280) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The console has the browser's own errors: a file refused by the page's
    # Content-Security-Policy (an inline script or style, a data: image), a failed load.
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(url)
    expect(page.locator("#conn")).to_have_text("live", timeout=5000)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def test_dashboard_shows_a_device_then_an_alert_firing_and_resolved(
        live_gateway: LiveGateway, browser: Browser) -> None:
    gw = live_gateway
    page = open_dashboard(browser, gw.url + "/")
    device = unique("greenhouse")
    gw.publish(device, "humidity", 55)
    for i in range(6):
        gw.publish(device, "temperature", 24 + i / 2)
        time.sleep(0.02)

    card = page.locator(f'.device[data-device="{device}"]')
    expect(card).to_have_class("device online", timeout=5000)
    row = page.locator(f'#readings tr[data-device="{device}"][data-metric="temperature"]')
    expect(row.locator("td.num")).to_contain_text("26.5", timeout=5000)

    gw.publish(device, "temperature", 32.5)
    alert = page.locator(f'.alert[data-device="{device}"]')
    expect(alert).to_have_attribute("data-state", "firing", timeout=5000)
    expect(alert).to_contain_text("critical")
    expect(alert).to_contain_text("32.5")
    expect(page.locator('.rule[data-rule="too_hot"] .states')).to_contain_text(
        f"{device}: firing", timeout=5000)
    expect(page.locator("#commands")).to_contain_text("speed=100", timeout=5000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-alert-firing.png", full_page=True)

    alert.click()
    steps = page.locator("#trace-steps")
    expect(steps).to_contain_text("alert", timeout=5000)
    expect(steps).to_contain_text("acknowledged", timeout=5000)
    page.screenshot(path=ARTIFACTS / "dashboard-trace.png")
    page.keyboard.press("Escape")

    gw.publish(device, "temperature", 25)
    expect(alert).to_have_attribute("data-state", "resolved", timeout=5000)
    page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)
    assert page.errors == []  # type: ignore[attr-defined]


def test_dashboard_is_readable_on_a_phone(live_gateway: LiveGateway, browser: Browser) -> None:
    gw = live_gateway
    device = unique("phone")
    gw.publish(device, "temperature", 21)
    page = open_dashboard(browser, gw.url + "/", width=390)
    expect(page.locator(f'.device[data-device="{device}"]')).to_be_visible(timeout=5000)
    # nothing but the readings table (which scrolls inside its card) is wider than the screen
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 390
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-phone.png", full_page=True)
    assert page.errors == []  # type: ignore[attr-defined]
