"""The dashboard and the kiosks in Debian's Chromium against the real server, its SQLite history filled by
real passages: a kiosk at "Main entrance" whose fake camera plays real photos of people with empty frames
between them (tests/browser_helpers.py). The dashboard's totals, chart points, live list and CSV links must
agree with the API, and a second kiosk at the same entrance, in another browser, must show the same counts.
Screenshots go to pytest's tmp_path; with UPDATE_SCREENSHOTS=1 they are also copied to docs/.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, expect

from tests.browser_helpers import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    MASKED_PHOTO,
    REPO_ROOT,
    UNMASKED_PHOTO,
    ServerProcess,
    chromium_args,
    get_json,
    missing_prerequisites,
    save_copy_when_asked,
    visitors_video,
)
from tests.test_browser import LANDSCAPE, PORTRAIT, WAIT_MS, WAIT_S, PageProblems, wait_until

SKIP_REASON = missing_prerequisites()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]

CAMERA_TOKEN = "camera-secret"
ADMIN_TOKEN = "operator-secret"
ENTRANCE = "Main entrance"
LABELS = ("with_mask", "without_mask", "mask_worn_incorrectly")
VISIT_S, EMPTY_S = 3.0, 2.0
PASSAGES_WANTED = 4


@pytest.fixture(scope="module")
def plain_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium with the fake camera's own test pattern: a camera that sees nobody."""
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_FLAGS)
    )
    yield browser
    browser.close()


def fetch(url: str, token: str | None = ADMIN_TOKEN) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def api(server: ServerProcess, path: str, **params: str) -> Any:
    status, body = fetch(f"{server.url}{path}?{urllib.parse.urlencode(params)}")
    assert status == 200, f"{path} answered {status}: {body}"
    return json.loads(body)


def rows_of(page: Page, selector: str) -> int:
    return int(page.locator(selector).count())


def card_figures(page: Page, location: str) -> dict[str, str]:
    card = page.locator(f"#today-cards .card[data-location='{location}']")
    figures = {key: card.locator(f"[data-key='{key}'] dd").inner_text() for key in ("people", *LABELS)}
    figures["compliance"] = card.locator("[data-role='compliance']").inner_text()
    return figures


def kiosk_figures(page: Page) -> dict[str, str]:
    return {key: page.inner_text(f"#today-{key}") for key in ("people", *LABELS)}


def test_dashboard_and_kiosks_show_the_historys_numbers(
    playwright: Playwright, plain_browser: Browser, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = tmp_path / "history.sqlite3"
    server = ServerProcess(
        extra_args=["--history", str(history), "--token", CAMERA_TOKEN, "--admin-token", ADMIN_TOKEN]
    ).start(tmp_path / "server.log")
    video = visitors_video([UNMASKED_PHOTO, MASKED_PHOTO], tmp_path / "visitors.y4m", VISIT_S, EMPTY_S)
    camera = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=chromium_args(video)
    )
    operator = plain_browser.new_context(viewport=LANDSCAPE, color_scheme="dark")
    try:
        dashboard = operator.new_page()
        problems = PageProblems(dashboard)
        dashboard.goto(f"{server.url}/dashboard?token={ADMIN_TOKEN}")
        expect(dashboard.locator("body")).to_have_attribute("data-state", "ok", timeout=WAIT_MS)
        expect(dashboard.locator("#today-empty")).to_have_text("No passages yet.")
        dashboard.evaluate("window.__sameDocument = true")

        entrance = camera.new_page()
        entrance.goto(f"{server.url}/kiosk?location={urllib.parse.quote(ENTRANCE)}&token={CAMERA_TOKEN}")
        # The camera appears among those connected now, with its live verdict once someone is in view.
        expect(dashboard.locator(f"#cameras li[data-location='{ENTRANCE}']")).to_have_count(
            1, timeout=WAIT_MS
        )

        def passages() -> list[dict[str, Any]]:
            return list(api(server, "/api/passages")["passages"])

        wait_until(lambda: len(passages()) >= 1, 2 * (VISIT_S + EMPTY_S) + WAIT_S, "a first passage")
        wait_until(lambda: rows_of(dashboard, "#recent tbody tr") >= 1, WAIT_S, "the live list to show it")
        first = rows_of(dashboard, "#recent tbody tr")
        wait_until(
            lambda: rows_of(dashboard, "#recent tbody tr") > first,
            2 * (VISIT_S + EMPTY_S) + WAIT_S,
            "the live list to grow",
        )
        assert dashboard.evaluate("window.__sameDocument") is True, "the dashboard reloaded"
        wait_until(
            lambda: len(passages()) >= PASSAGES_WANTED,
            PASSAGES_WANTED * (VISIT_S + EMPTY_S) + WAIT_S,
            f"{PASSAGES_WANTED} passages",
        )
        entrance.close()
        wait_until(
            lambda: get_json(f"{server.url}/healthz")[1].get("sessions") == 0, WAIT_S, "no camera left"
        )
        settled: list[int] = []

        def history_settled() -> bool:
            settled.append(len(passages()))
            return len(settled) >= 3 and settled[-1] == settled[-3]

        wait_until(history_settled, WAIT_S, "the last passages to be written")
        found = passages()
        with capsys.disabled():
            print("\npassages:", [(p["label"], p["seconds"], p["frames"]) for p in found])

        today = api(server, "/api/today")
        (entry,) = today["locations"]
        assert entry["location"] == ENTRANCE and entry["people"] == len(found)
        assert sum(entry[label] for label in LABELS) == len(found)
        assert {entry["with_mask"], entry["without_mask"]} <= {len(found) // 2, (len(found) + 1) // 2}
        expected = {key: str(entry[key]) for key in ("people", *LABELS)}
        expected["compliance"] = f"{round(entry['compliance'] * 100)}%"

        # The dashboard: today's totals, chart points, the live list, the CSV links.
        wait_until(lambda: card_figures(dashboard, ENTRANCE) == expected, WAIT_S, "the dashboard's totals")
        # The newest 8 are listed; "show all" lists every one.
        wait_until(
            lambda: rows_of(dashboard, "#recent tbody tr") == min(len(found), 8), WAIT_S, "the newest listed"
        )
        if len(found) > 8:
            dashboard.click("#recent-more")
            assert rows_of(dashboard, "#recent tbody tr") == len(found)
        hours = api(server, "/api/summary", bucket="hour", since=today["date"])["buckets"]
        assert dashboard.get_attribute("#chart-hour", "data-points") == str(len(hours)) and hours
        assert rows_of(dashboard, "#table-hour tbody tr") == len(hours)
        assert rows_of(dashboard, "#chart-hour canvas") >= 1
        frm, to = dashboard.input_value("#from"), dashboard.input_value("#to")
        assert to == today["date"]
        href = str(dashboard.get_attribute("#csv-summary", "href"))
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(href).query))
        assert (query["bucket"], query["since"]) == ("day", frm) and query["until"] > to
        days = api(server, "/api/summary", bucket="day", since=query["since"], until=query["until"])[
            "buckets"
        ]
        assert dashboard.get_attribute("#chart-day", "data-points") == str(len(days)) == "1"
        download = operator.request.get(href)
        assert download.status == 200
        rows = list(csv.DictReader(io.StringIO(download.text())))
        assert rows == [{key: str(day[key]) for key in ("start", "location", *LABELS)} for day in days]
        download = operator.request.get(str(dashboard.get_attribute("#csv-passages", "href")))
        passage_rows = list(csv.DictReader(io.StringIO(download.text())))
        assert [row["time"] for row in passage_rows] == [p["time"] for p in found]
        assert [row["label"] for row in passage_rows] == [p["label"] for p in found]

        # A second kiosk at the same entrance, in another browser, shows the same counts (in Korean).
        other = plain_browser.new_context(viewport=LANDSCAPE).new_page()
        other_problems = PageProblems(other)
        other.goto(f"{server.url}/kiosk?location={urllib.parse.quote(ENTRANCE)}&token={CAMERA_TOKEN}&lang=ko")
        expect(other.locator("#today")).to_have_attribute("data-source", "server", timeout=WAIT_MS)
        wait_until(
            lambda: kiosk_figures(other) == {key: expected[key] for key in ("people", *LABELS)},
            WAIT_S,
            "the second kiosk's counts",
        )
        other.wait_for_selector("#kiosk-message[data-verdict='none']", timeout=WAIT_MS)
        assert other.inner_text("#kiosk-headline") == "어서 오세요"
        assert other.inner_text(".today-item[data-label='without_mask'] dt") == "마스크 미착용"
        expect(dashboard.locator(f"#cameras li[data-location='{ENTRANCE}'] .verdict")).to_have_text(
            "Nobody in view", timeout=WAIT_MS
        )

        screenshot = tmp_path / "dashboard.png"
        dashboard.screenshot(path=str(screenshot), full_page=True)
        save_copy_when_asked(screenshot, REPO_ROOT / "docs" / "dashboard.png")

        # Korean: the headings and the numbers, on a phone in the light theme.
        phone = plain_browser.new_context(viewport=PORTRAIT, color_scheme="light", is_mobile=True)
        korean = phone.new_page()
        korean_problems = PageProblems(korean)
        korean.goto(f"{server.url}/dashboard?token={ADMIN_TOKEN}&lang=ko")
        expect(korean.locator("#today-cards .card")).to_have_count(1, timeout=WAIT_MS)
        assert korean.evaluate("document.documentElement.lang") == "ko"
        assert korean.inner_text("h1") == "마스크 착용 현황"
        assert korean.inner_text("#today-heading").startswith("오늘, ")
        assert korean.inner_text("#cameras-heading") == "현재 연결된 카메라"
        assert korean.inner_text("#hour-heading") == "오늘 시간대별"
        # Named for its window once the passages are read (the page's static heading says only "recent").
        expect(korean.locator("#recent-heading")).to_have_text("최근 10분의 통행", timeout=WAIT_MS)
        assert card_figures(korean, ENTRANCE) == expected
        screenshot = tmp_path / "dashboard-phone-ko.png"
        korean.screenshot(path=str(screenshot), full_page=True)
        save_copy_when_asked(screenshot, REPO_ROOT / "docs" / "dashboard-phone-ko.png")

        # Keyboard: a location chosen with the arrow keys and applied with Enter filters the page and links.
        dashboard.focus("#location")
        dashboard.keyboard.press("ArrowDown")
        dashboard.focus("#filters button[type='submit']")
        dashboard.keyboard.press("Enter")
        expect(dashboard.locator("#csv-summary")).to_have_attribute(
            "href", re.compile(r"[?&]location=Main\+entrance(&|$)"), timeout=WAIT_MS
        )
        assert "location=Main+entrance" in dashboard.url
        assert dashboard.evaluate("window.__sameDocument") is True
        assert problems.errors == [] and other_problems.errors == [] and korean_problems.errors == []
    finally:
        operator.close()
        camera.close()
        server.stop()


def test_dashboard_wants_the_operator_token(plain_browser: Browser, tmp_path: Path) -> None:
    server = ServerProcess(
        extra_args=[
            "--no-history",
            "--token",
            CAMERA_TOKEN,
            "--admin-token",
            ADMIN_TOKEN,
            "--video-size",
            "320x240",
        ]
    ).start(tmp_path / "server.log")
    try:
        assert fetch(f"{server.url}/dashboard", token=None)[0] == 401
        status, body = fetch(f"{server.url}/dashboard", token=CAMERA_TOKEN)
        assert status == 401 and "Operator token required" in body
        context = plain_browser.new_context(viewport=LANDSCAPE)
        page = context.new_page()
        response = page.goto(f"{server.url}/dashboard?token={CAMERA_TOKEN}")
        assert response is not None and response.status == 401
        assert "operator" in page.inner_text("body").lower()

        # With the operator's token and no history, the dashboard says so in words.
        page.goto(f"{server.url}/dashboard?token={ADMIN_TOKEN}")
        expect(page.locator("#notice")).to_contain_text("--no-history", timeout=WAIT_MS)
        assert page.is_hidden("#today-cards")
        assert page.is_visible("#cameras-empty")

        # The page asks the camera for the server's size (--video-size), not a size of its own.
        page.add_init_script(
            "window.__constraints = [];"
            "const ask = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);"
            "navigator.mediaDevices.getUserMedia = (c) => { window.__constraints.push(c); return ask(c); };"
        )
        page.goto(f"{server.url}/?token={CAMERA_TOKEN}")
        expect(page.locator("#resolution-select")).to_have_value("320x240", timeout=WAIT_MS)
        expect(page.locator("#start-button")).to_be_enabled()
        page.click("#start-button")
        wait_until(lambda: page.evaluate("window.__constraints.length") > 0, WAIT_S, "the camera to be asked")
        video = page.evaluate("window.__constraints[0].video")
        assert video["width"]["ideal"] == 320 and video["height"]["ideal"] == 240
        assert video["frameRate"]["ideal"] == 30
        page.click("#start-button")
        context.close()
    finally:
        server.stop()


def test_dashboard_in_privacy_mode_and_with_the_database_away(plain_browser: Browser, tmp_path: Path) -> None:
    """Counts mode: no list of passages, the charts and totals still work; a database that cannot be read
    (answered 503 here) is said in words and the numbers already shown stay."""
    from server.history.api import today_in
    from server.history.buckets import server_timezone
    from server.history.store import HistoryStore
    from tests.test_history_store import record

    history = str(tmp_path / "counts.sqlite3")
    store = HistoryStore(history, "counts")
    store.open()
    day = today_in(server_timezone())
    store.write("b1", [record(day.since_ms + 60_000, ENTRANCE, "with_mask")])
    store.write("b2", [record(day.since_ms + 120_000, ENTRANCE, "without_mask")])
    store.close()
    server = ServerProcess(extra_args=["--history", history, "--history-detail", "counts"]).start(
        tmp_path / "server.log"
    )
    try:
        page = plain_browser.new_context(viewport=PORTRAIT).new_page()
        problems = PageProblems(page)
        page.goto(f"{server.url}/dashboard")
        expect(page.locator("#recent-empty")).to_contain_text("Privacy mode", timeout=WAIT_MS)
        assert page.is_hidden("#recent") and page.is_hidden("#csv-passages")
        assert card_figures(page, ENTRANCE) == {
            "people": "2",
            "with_mask": "1",
            "without_mask": "1",
            "mask_worn_incorrectly": "0",
            "compliance": "50%",
        }
        assert page.get_attribute("#chart-hour", "data-points") == "1"
        assert page.get_attribute("#chart-day", "data-points") == "1"

        unavailable = json.dumps({"error": "down", "reason": "history_unavailable"})
        page.route("**/api/summary*", lambda route: route.fulfill(status=503, body=unavailable))
        expect(page.locator("#notice")).to_contain_text("cannot be reached", timeout=WAIT_MS)
        assert card_figures(page, ENTRANCE)["people"] == "2"
        page.unroute("**/api/summary*")
        expect(page.locator("#notice")).to_be_hidden(timeout=WAIT_MS)
        assert problems.errors == []
    finally:
        server.stop()


def test_dashboard_says_a_bad_filter_in_words_and_follows_the_date(
    plain_browser: Browser, tmp_path: Path
) -> None:
    """Headings in the page's language before the first answer; a reversed range in the URL and a location
    the server refuses (400 bad_query) said as what they are, the rest of the page working and refreshing;
    the default range follows the server's date past midnight."""
    server = ServerProcess(extra_args=["--history", str(tmp_path / "history.sqlite3")]).start(
        tmp_path / "server.log"
    )
    try:
        page = plain_browser.new_context(viewport=LANDSCAPE).new_page()
        problems = PageProblems(page)
        page.route("**/api/today*", lambda route: route.abort())
        page.goto(f"{server.url}/dashboard?lang=ko")
        expect(page.locator("#notice")).to_be_visible(timeout=WAIT_MS)
        assert page.inner_text("#today-heading") == "오늘"
        assert page.inner_text("#day-heading") == "날짜별"
        assert page.inner_text("#recent-heading") == "최근 통행"
        assert "{" not in page.inner_text("body")
        page.unroute("**/api/today*")

        date = api(server, "/api/today")["date"]
        page.goto(f"{server.url}/dashboard?from=2026-12-10&to=2026-12-01")
        expect(page.locator("#notice")).to_contain_text("date range is not valid", timeout=WAIT_MS)
        assert page.get_attribute("body", "data-state") == "badRange"
        expect(page.locator("#to")).to_have_value(date)
        expect(page.locator("#today-heading")).to_contain_text("Today, ")
        assert page.is_visible("#cameras-empty")

        page.goto(f"{server.url}/dashboard?location=%3Cbad%3E")
        expect(page.locator("#notice")).to_contain_text("refused this filter", timeout=WAIT_MS)
        assert page.get_attribute("body", "data-state") == "badQuery"
        assert "location" in page.inner_text("#notice")  # the server's reason, as a detail
        expect(page.locator("#today-heading")).to_contain_text("Today, ")
        updated = page.inner_text("#updated")
        wait_until(lambda: page.inner_text("#updated") != updated, WAIT_S, "the next refresh")
        assert page.get_attribute("body", "data-state") == "badQuery"
        page.select_option("#location", "")
        page.click("#filters button[type='submit']")
        expect(page.locator("body")).to_have_attribute("data-state", "ok", timeout=WAIT_MS)
        assert page.is_hidden("#notice")
        assert page.is_visible("#csv-limit") and "10,000" in page.inner_text("#csv-limit")

        # Past midnight (the server's next date): the default range moves on by itself.
        year, month, day = map(int, date.split("-"))
        following = (datetime.date(year, month, day) + datetime.timedelta(days=1)).isoformat()
        first = (datetime.date(year, month, day) + datetime.timedelta(days=1 - 29)).isoformat()

        def next_day(route: Route) -> None:
            response = route.fetch()
            route.fulfill(response=response, json={**response.json(), "date": following})

        page.route("**/api/today*", next_day)
        expect(page.locator("#to")).to_have_value(following, timeout=WAIT_MS)
        expect(page.locator("#from")).to_have_value(first)
        assert problems.errors == []
    finally:
        server.stop()
