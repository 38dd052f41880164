"""The dashboard's sinks panel in Debian's Chromium against the real server (run_server.py) with three real
sinks: a Mosquitto, a webhook receiver that accepts, and a webhook URL where nobody listens. Passages left
in the spool by an earlier run (written into the spool file before the start) are what the two webhooks
have to deliver: the working one delivers them, the dead one keeps them waiting, and the panel says so.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

from server.spool import Spool, SpoolItem
from tests.browser_helpers import CHROMIUM, CHROMIUM_FLAGS, ServerProcess, free_port, missing_prerequisites
from tests.mqtt_helpers import Broker
from tests.test_browser import LANDSCAPE, WAIT_MS, PageProblems
from tests.webhook_helpers import Receiver, ReceiverThread

SKIP_REASON = missing_prerequisites()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]
NOTES = Path("/work/notes")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        yield launch(playwright)


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_FLAGS))


def waiting_passages(count: int) -> list[SpoolItem]:
    items = []
    for _ in range(count):
        uid = uuid.uuid4().hex
        body = {"uid": uid, "time": "2026-12-07T08:00:00+00:00", "start_ms": 1796630400000,
                "location": "Main entrance", "label": "with_mask", "confidence": 0.95, "seconds": 2.0,
                "frames": 20, "size": "large", "label_changed": False}  # fmt: skip
        items.append(SpoolItem(uid, json.dumps(body)))
    return items


def test_the_sinks_panel_shows_connection_last_delivery_and_queue(
    browser: Browser, broker: Broker, tmp_path: Path
) -> None:
    receiver = Receiver(secret="s3cret")
    served = ReceiverThread(receiver)
    spool_path = tmp_path / "spool.sqlite3"
    spool = Spool(spool_path)
    spool.add("webhook-1", waiting_passages(2), limit=100)
    spool.add("webhook-2", waiting_passages(3), limit=100)
    spool.close()
    server = ServerProcess(
        extra_args=[
            f"--spool={spool_path}",
            f"--history={tmp_path / 'history.sqlite3'}",
            f"--mqtt={broker.url}",
            f"--webhook=http://127.0.0.1:{served.port}/hook",
            f"--webhook=http://127.0.0.1:{free_port()}/nobody",
            "--webhook-secret=s3cret",
        ]
    ).start(tmp_path / "server.log")
    try:
        page = browser.new_context(viewport=LANDSCAPE).new_page()
        problems = PageProblems(page)
        page.goto(f"{server.url}/dashboard")
        panel = page.locator("#sinks-panel")
        expect(panel).to_be_visible(timeout=WAIT_MS)
        mqtt = panel.locator("tr[data-sink='mqtt']")
        working = panel.locator("tr[data-sink='webhook-1']")
        dead = panel.locator("tr[data-sink='webhook-2']")
        expect(mqtt.locator(".sink-state")).to_have_text("Connected", timeout=WAIT_MS)
        expect(working.locator(".sink-queued")).to_have_text("0", timeout=WAIT_MS)
        expect(working.locator(".sink-state")).to_have_text("Connected")
        assert "None yet" not in working.inner_text()  # a last delivery time
        expect(dead.locator(".sink-state")).to_contain_text("Not connected", timeout=WAIT_MS)
        expect(dead.locator(".sink-queued")).to_have_text("3")
        assert "/nobody" in dead.inner_text() and "None yet" in dead.inner_text()
        assert len(receiver.uids) == 2 and receiver.refused_signatures == 0
        screenshot = tmp_path / "dashboard-sinks.png"
        panel.screenshot(path=str(screenshot))
        if NOTES.is_dir():
            (NOTES / "issue21-sinks-panel.png").write_bytes(screenshot.read_bytes())
        korean = browser.new_context(viewport=LANDSCAPE).new_page()
        korean.goto(f"{server.url}/dashboard?lang=ko")
        expect(korean.locator("#sinks-heading")).to_have_text(
            "건물 시스템으로 보내는 이벤트", timeout=WAIT_MS
        )
        expect(korean.locator("tr[data-sink='mqtt'] .sink-state")).to_have_text("연결됨", timeout=WAIT_MS)
        assert problems.errors == []
    finally:
        server.stop()
        served.stop()
