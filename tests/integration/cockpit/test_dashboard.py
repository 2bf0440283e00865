"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright (which is
told where the browser is: it cannot download its own here). `.ci/run` installs Chromium; a
machine without it fails this test rather than skipping it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

from emulator.pytest_plugin import EmuUp

pytestmark = pytest.mark.docker

HELLO = Path(__file__).resolve().parents[3] / "examples" / "hello" / "wrangler.jsonc"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 20_000


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"no {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_the_dashboard_shows_requests_kills_and_logs(
    emu_up: EmuUp, browser: Browser, tmp_path: Path
) -> None:
    emu = emu_up(HELLO, stop_grace="5s", seed=3)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(emu.url + "/_emu/")
    page.wait_for_selector("#link.ok", timeout=WAIT_MS)  # the event stream is live

    for n in range(30):
        assert requests.get(f"{emu.url}/r{n}", timeout=60).status_code == 200
    sent = {r["path"]: r["instance"] for r in emu.requests() if r["path"].startswith("/r")}
    assert len(sent) == 30
    page.wait_for_function(
        "document.querySelectorAll('#feed tbody tr').length >= 30", timeout=WAIT_MS
    )
    shown = feed(page)
    assert {path: shown[path] for path in sent} == sent  # each with the instance that served it

    victim = sent["/r0"]
    row = f'#classes tr[data-instance="{victim}"]'
    page.click(f'{row} button[data-action="kill"]')  # arms it
    page.click(f'{row} button[data-action="kill"].confirm')  # the one confirmation
    page.wait_for_selector(
        f'#events li[data-event="exited"][data-instance="{victim}"]', timeout=WAIT_MS
    )
    page.wait_for_selector(f"{row} td.state.stopped_with_code", timeout=WAIT_MS)
    assert emu.instances()[victim]["exit_code"] == 137

    page.click(f"{row} a.name")  # its log pane: the lines of the container that was killed
    mine = [path for path, inst in sent.items() if inst == victim]
    page.wait_for_function(
        "want => want.every(l => document.querySelector('#log-lines').textContent"
        ".split('\\n').includes(l))",
        arg=[f"GET {path}" for path in mine],
        timeout=WAIT_MS,
    )
    others = [path for path, inst in sent.items() if inst != victim]
    pane = page.inner_text("#log-lines")
    assert not any(f"GET {path}\n" in pane for path in others)

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def feed(page: Page) -> dict[str, str]:
    """path -> instance, as the request feed shows them."""
    rows = page.eval_on_selector_all(
        "#feed tbody tr",
        "rows => rows.map(r => [r.querySelector('.path').textContent,"
        " r.querySelector('.instance').textContent])",
    )
    return {str(path): str(inst) for path, inst in rows}
