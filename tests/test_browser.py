"""The page and the kiosk in Debian's Chromium, driven by Playwright, against the real server.

Chromium's fake camera plays a .y4m made here from real photos in ../shared/data (an unmasked and a masked
person side by side for the main page; the masked person alone for the kiosk); those tests skip without
the data. The screenshots in docs/ show none of that data: their test's camera plays a public-domain
portrait from tests/assets/, bare-faced and with a drawn mask, and copies them to docs/ with
UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, ViewportSize, expect

from tests.browser_helpers import (
    CHROMIUM,
    MASKED_PHOTO,
    REPO_ROOT,
    UNMASKED_PHOTO,
    ServerProcess,
    chromium_args,
    demo_portrait,
    get_json,
    missing_prerequisites,
    photos_video,
    read_photo,
    save_copy_when_asked,
    visitors_video,
)

SKIP_REASON = missing_prerequisites(photos=())
DATA_REASON = missing_prerequisites()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]
needs_data = pytest.mark.skipif(DATA_REASON is not None, reason=DATA_REASON or "")
"""For the tests whose camera shows photos of ../shared/data."""

LANDSCAPE: ViewportSize = {"width": 1280, "height": 800}
PORTRAIT: ViewportSize = {"width": 390, "height": 844}
INSECURE_HOST = "insecure-camera.test"
WAIT_MS = 30_000
WAIT_S = WAIT_MS / 1000

# Waits poll with page.evaluate() or Playwright's own locators: wait_for_function() compiles its predicate
# with eval, which the server's Content-Security-Policy (rightly) forbids.

# Remembers every RTCPeerConnection the page creates, so that the test can read getStats() itself.
CAPTURE_PEER_CONNECTIONS = """
window.__peerConnections = [];
const NativePeerConnection = window.RTCPeerConnection;
window.RTCPeerConnection = class extends NativePeerConnection {
  constructor(...args) { super(...args); window.__peerConnections.push(this); }
};
"""

FRAMES_DECODED = """async () => {
  const pc = window.__peerConnections.at(-1);
  if (!pc) return -1;
  let frames = -1;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded;
  });
  return frames;
}"""

# What Chrome's encoder really sends: [width, height, frames per second, quality limitation].
OUTBOUND_VIDEO = """async () => {
  const pc = window.__peerConnections.at(-1);
  if (!pc) return null;
  let sent = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      sent = [s.frameWidth ?? 0, s.frameHeight ?? 0, s.framesPerSecond ?? 0, s.qualityLimitationReason];
    }
  });
  return sent;
}"""


class PageProblems:
    """Uncaught errors and Content-Security-Policy violations seen on a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._on_console)

    def _on_console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.errors.append(f"CSP: {message.text}")


def launch_with_camera(playwright: Playwright, folder: Path, video: Path) -> BrowserContext:
    return playwright.chromium.launch_persistent_context(
        str(folder / "profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=chromium_args(video, extra=[f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1"]),
        viewport=LANDSCAPE,
    )


@contextlib.contextmanager
def camera(playwright: Playwright, folder: Path, photos: Sequence[np.ndarray]) -> Iterator[BrowserContext]:
    """Chromium whose fake camera plays ``photos`` (one, or two side by side); it remembers its peer
    connections for the tests that read getStats()."""
    context = launch_with_camera(playwright, folder, photos_video(photos, folder / "camera.y4m"))
    context.add_init_script(CAPTURE_PEER_CONNECTIONS)
    try:
        yield context
    finally:
        context.close()


def dataset_photos(names: Sequence[str]) -> list[np.ndarray]:
    """Photos of ../shared/data by name; the test is skipped without the data."""
    if DATA_REASON is not None:
        pytest.skip(DATA_REASON)
    return [read_photo(name) for name in names]


@pytest.fixture(scope="module")
def two_people(playwright: Playwright, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Chromium whose camera sees an unmasked man (left) and a masked woman (right)."""
    photos = dataset_photos([UNMASKED_PHOTO, MASKED_PHOTO])
    with camera(playwright, tmp_path_factory.mktemp("two-people"), photos) as context:
        yield context


@pytest.fixture(scope="module")
def masked_person(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    """Chromium whose camera sees one woman wearing a mask properly."""
    with camera(playwright, tmp_path_factory.mktemp("masked"), dataset_photos([MASKED_PHOTO])) as context:
        yield context


@pytest.fixture(scope="module")
def demo_two_people(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    """Chromium whose camera sees the demo portrait twice: bare-faced (left) and with a drawn mask (right)."""
    photos = [demo_portrait(masked=False), demo_portrait(masked=True)]
    with camera(playwright, tmp_path_factory.mktemp("demo-two"), photos) as context:
        yield context


@pytest.fixture(scope="module")
def demo_masked_person(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    """Chromium whose camera sees the demo portrait with a drawn mask."""
    with camera(playwright, tmp_path_factory.mktemp("demo-masked"), [demo_portrait(masked=True)]) as context:
        yield context


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_for_full_video(page: Page) -> None:
    """Chrome starts low against aiortc; the answer's bitrate floor must bring it to the full 640x480 at
    about 30 fps (the fake camera's rate), and the annotated video comes back at that size."""

    def sends_full_video() -> bool:
        sent = page.evaluate(OUTBOUND_VIDEO)
        return bool(sent) and sent[0] == 640 and sent[1] == 480 and sent[2] >= 24

    wait_until(sends_full_video, WAIT_S, "Chrome to send 640x480 at >= 24 fps")
    wait_until(
        lambda: (
            page.evaluate(
                "[document.querySelector('#remote-video').videoWidth, "
                "document.querySelector('#remote-video').videoHeight]"
            )
            == [640, 480]
        ),
        WAIT_S,
        "the annotated video to come back at 640x480",
    )


def active_sessions(server: ServerProcess) -> int:
    status, body = get_json(f"{server.url}/healthz")
    assert status == 200, f"/healthz answered {status}"
    return int(str(body["sessions"]))


def test_page_plays_annotated_video_and_shows_labels(
    server: ServerProcess, two_people: BrowserContext
) -> None:
    page = two_people.new_page()
    problems = PageProblems(page)
    page.goto(server.url + "/")
    page.click("#start-button")

    wait_until(
        lambda: page.evaluate("document.querySelector('#remote-video').videoWidth") > 0,
        WAIT_S,
        "the annotated video to play",
    )
    page.wait_for_selector("#banner[data-verdict='unmasked']", timeout=WAIT_MS)
    assert page.inner_text("#banner") == "Someone is not wearing a mask"
    expect(page.locator("#count-with_mask")).to_have_text("1", timeout=WAIT_MS)
    expect(page.locator("#count-without_mask")).to_have_text("1", timeout=WAIT_MS)
    assert page.inner_text("#count-mask_worn_incorrectly") == "0"

    frames_before = page.evaluate(FRAMES_DECODED)
    page.wait_for_timeout(1500)
    frames_after = page.evaluate(FRAMES_DECODED)
    assert frames_after > frames_before > 0, (frames_before, frames_after)
    video_size = page.evaluate(
        "[document.querySelector('#remote-video').videoWidth, "
        "document.querySelector('#remote-video').videoHeight]"
    )
    assert video_size[0] > 0 and video_size[1] > 0

    wait_for_full_video(page)

    expect(page.locator("#stat-detections")).to_have_text(re.compile(r"^\d+\.\d /s$"))
    assert page.inner_text("#stat-video-fps").endswith("fps")
    assert page.inner_text("#stat-connection") == "Connected"
    assert page.is_hidden("#message")
    assert active_sessions(server) == 1

    page.click("#start-button")
    assert page.get_attribute("#banner", "data-verdict") == "idle"
    assert page.evaluate("window.__peerConnections.at(-1).connectionState") == "closed"
    wait_until(lambda: active_sessions(server) == 0, 15, "the server to end the session after Stop")
    assert problems.errors == []
    page.close()


def test_kiosk_thanks_a_masked_person_and_counts_them_once(
    server: ServerProcess, masked_person: BrowserContext
) -> None:
    page = masked_person.new_page()
    problems = PageProblems(page)
    page.goto(server.url + "/kiosk")

    page.wait_for_selector("#kiosk-message[data-verdict='masked']", timeout=WAIT_MS)
    assert page.inner_text("#kiosk-headline") == "Thank you for wearing a mask"
    # The counts are the server's passages of today at this location ("unnamed": no ?location=), not
    # this screen's own: the woman standing there is no passage until she leaves.
    expect(page.locator("#today")).to_have_attribute("data-source", "server", timeout=WAIT_MS)
    assert page.is_hidden("#counts-note")

    def kiosk_shows_the_servers_counts() -> bool:
        _, body = get_json(f"{server.url}/today")
        shown = {key: page.inner_text(f"#today-{key}") for key in ("people", "with_mask", "without_mask")}
        return shown == {key: str(body[key]) for key in ("people", "with_mask", "without_mask")}

    wait_until(kiosk_shows_the_servers_counts, WAIT_S, "the kiosk to show the server's counts of today")
    assert page.get_attribute("#chime-button", "aria-pressed") == "false"

    page.click("#chime-button")
    expect(page.locator("#chime-button")).to_have_attribute("aria-pressed", "true")
    assert page.inner_text("#chime-button") == "Chime on"
    assert page.evaluate("localStorage.getItem('maskcheck.kiosk.chime')") == "on"

    # A failed poll of /today (the history busy, then no answer at all) keeps the server's last counts,
    # marked stale in small type: the numbers do not jump to this screen's own count and back.
    served = kiosk_counts(page)
    busy = json.dumps({"error": "busy", "reason": "history_busy"})
    page.route(
        "**/today*", lambda route: route.fulfill(status=503, body=busy, content_type="application/json")
    )
    expect(page.locator("#counts-note")).to_contain_text("server's counts as of", timeout=WAIT_MS)
    expect(page.locator("#today")).to_have_attribute("data-stale", "true")
    assert page.get_attribute("#today", "data-source") == "server" and kiosk_counts(page) == served
    page.unroute("**/today*")
    page.route("**/today*", lambda route: route.abort())
    time.sleep(6)  # more than one poll
    assert page.get_attribute("#today", "data-source") == "server" and kiosk_counts(page) == served
    assert page.is_visible("#counts-note")
    page.unroute("**/today*")
    expect(page.locator("#today")).to_have_attribute("data-stale", "false", timeout=WAIT_MS)
    assert page.is_hidden("#counts-note")
    assert problems.errors == []
    page.close()

    # A kiosk restarted while the server is down (no /config, no /today) shows this screen's own count of
    # today from localStorage, the label rows it last had, and says so in small type.
    stored = page_storage_counts(masked_person)
    assert stored["with_mask"] >= 1
    page = masked_person.new_page()
    problems = PageProblems(page)
    for route in ("**/today*", "**/config*", "**/offer*"):
        page.route(route, lambda route: route.abort())
    page.goto(server.url + "/kiosk")
    expect(page.locator("#counts-note")).to_contain_text("this screen only", timeout=WAIT_MS)
    expect(page.locator("#today")).to_have_attribute("data-source", "local")
    expect(page.locator("#today-with_mask")).to_have_text(str(stored["with_mask"]))
    assert page.inner_text("#today-people") == str(stored["people"])
    for route in ("**/today*", "**/config*", "**/offer*"):
        page.unroute(route)
    expect(page.locator("#today")).to_have_attribute("data-source", "server", timeout=WAIT_MS)
    assert page.is_hidden("#counts-note")
    assert problems.errors == []
    page.close()


def test_screenshots_of_the_page_and_the_kiosk(
    server: ServerProcess, demo_two_people: BrowserContext, demo_masked_person: BrowserContext, tmp_path: Path
) -> None:
    """The screenshots of docs/ (with UPDATE_SCREENSHOTS=1), from the demo portrait: the page labels the
    bare face and the masked one, and the kiosk thanks the masked person."""
    page = demo_two_people.new_page()
    problems = PageProblems(page)
    page.goto(server.url + "/")
    page.click("#start-button")
    page.wait_for_selector("#banner[data-verdict='unmasked']", timeout=WAIT_MS)
    expect(page.locator("#count-with_mask")).to_have_text("1", timeout=WAIT_MS)
    expect(page.locator("#count-without_mask")).to_have_text("1", timeout=WAIT_MS)
    assert page.inner_text("#count-mask_worn_incorrectly") == "0"
    wait_for_full_video(page)
    page.wait_for_timeout(1000)
    landscape = tmp_path / "screenshot.png"
    page.screenshot(path=str(landscape))
    save_copy_when_asked(landscape, REPO_ROOT / "docs" / "screenshot.png")
    page.set_viewport_size(PORTRAIT)
    page.wait_for_timeout(1000)
    portrait = tmp_path / "screenshot-portrait.png"
    page.screenshot(path=str(portrait), full_page=True)
    save_copy_when_asked(portrait, REPO_ROOT / "docs" / "screenshot-portrait.png")
    page.click("#start-button")
    assert problems.errors == []
    page.close()

    kiosk = demo_masked_person.new_page()
    problems = PageProblems(kiosk)
    kiosk.goto(server.url + "/kiosk")
    kiosk.wait_for_selector("#kiosk-message[data-verdict='masked']", timeout=WAIT_MS)
    assert kiosk.inner_text("#kiosk-headline") == "Thank you for wearing a mask"
    expect(kiosk.locator("#today")).to_have_attribute("data-source", "server", timeout=WAIT_MS)
    kiosk.wait_for_timeout(1000)
    shot = tmp_path / "kiosk.png"
    kiosk.screenshot(path=str(shot))
    save_copy_when_asked(shot, REPO_ROOT / "docs" / "kiosk.png")
    assert problems.errors == []
    kiosk.close()


class PausableAnalysis:
    """A server's real analysis processes (every lane's), stopped (SIGSTOP, as hung or starved ones) and
    resumed by a test, and never left stopped."""

    def __init__(self, server: ServerProcess) -> None:
        self._server = server
        self._children: list[psutil.Process] = []

    def pause(self) -> None:
        self._children = self._server.analysis_children()
        for child in self._children:
            child.suspend()

    def resume(self) -> None:
        children, self._children = self._children, []
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.resume()


@contextlib.contextmanager
def server_with_pausable_analysis(tmp_path: Path) -> Iterator[tuple[ServerProcess, PausableAnalysis]]:
    """A server of the test's own (its analysis process is stopped: no other test may share it)."""
    own_server = ServerProcess().start(tmp_path / "server.log")
    analysis = PausableAnalysis(own_server)
    try:
        yield own_server, analysis
    finally:
        analysis.resume()
        own_server.stop()


COUNT_CHIME_NOTES = """
window.__chimeNotes = 0;
const createOscillator = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () {
  window.__chimeNotes += 1;
  return createOscillator.call(this);
};
"""


def test_the_kiosk_does_not_chime_again_for_the_same_person_after_an_analysis_pause(
    playwright: Playwright, tmp_path: Path
) -> None:
    """An unmasked person stands at the kiosk with the chime on; the real analysis process stops
    (SIGSTOP) long enough for the kiosk to say "checking paused", then resumes: the kiosk warns the same
    person again, but without a second chime (each chime is two Web Audio notes, counted in the page)."""
    with (
        server_with_pausable_analysis(tmp_path) as (own_server, analysis),
        camera(playwright, tmp_path, [demo_portrait(masked=False)]) as context,
    ):
        context.add_init_script(COUNT_CHIME_NOTES)
        kiosk = context.new_page()
        problems = PageProblems(kiosk)
        kiosk.goto(own_server.url + "/kiosk")
        kiosk.click("#chime-button")  # a gesture: it unlocks audio and plays the chime once to show it
        expect(kiosk.locator("#chime-button")).to_have_attribute("aria-pressed", "true")
        wait_until(lambda: kiosk.evaluate("window.__chimeNotes") >= 2, WAIT_S, "the chime to sound")
        kiosk.wait_for_selector("#kiosk-message[data-verdict='unmasked']", timeout=WAIT_MS)
        kiosk.wait_for_timeout(1000)
        before = kiosk.evaluate("window.__chimeNotes")

        analysis.pause()
        kiosk.wait_for_selector("#kiosk-message[data-verdict='paused']", timeout=WAIT_MS)
        analysis.resume()
        kiosk.wait_for_selector("#kiosk-message[data-verdict='unmasked']", timeout=WAIT_MS)
        # The chime would ring as the verdict is shown; give a late one time to show up.
        kiosk.wait_for_timeout(1500)
        assert kiosk.evaluate("window.__chimeNotes") == before
        assert problems.errors == []


def evaluate_on_the_page(server: ServerProcess, context: BrowserContext, script: str) -> Any:
    """The value of `script` run in the served main page (for the page's own modules, imported by URL)."""
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        return page.evaluate(script)
    finally:
        page.close()


CHIME_SCENARIO = """async () => {
  const { ChimeTrigger } = await import('/static/js/verdict.js');
  const trigger = new ChimeTrigger({ settleMs: 1500 });
  const shown = [
    ['none', 0], ['unmasked', 1000],                      // someone unmasked arrives: ring
    ['paused', 5000], ['none', 9000], ['unmasked', 9500], // a pause; the same verdict 0.5 s after: not again
    ['masked', 12000], ['unmasked', 14000],               // someone masked, then someone unmasked: ring
    ['paused', 20000], ['none', 25000], ['unmasked', 30000], // a pause, nobody for 5 s, someone new: ring
    ['offline', 40000], ['unmasked', 41000],              // the link lost and back: a new arrival
  ];
  return shown.map(([verdict, at]) => trigger.shown(verdict, at));
}"""


def test_the_kiosk_chimes_once_per_unmasked_arrival_not_again_after_a_pause(
    server: ServerProcess, demo_two_people: BrowserContext
) -> None:
    assert evaluate_on_the_page(server, demo_two_people, CHIME_SCENARIO) == [
        *(False, True),
        *(False, False, False),
        *(False, True),
        *(False, False, True),
        *(False, True),
    ]


def kiosk_counts(page: Page) -> dict[str, str]:
    return {key: page.inner_text(f"#today-{key}") for key in ("people", "with_mask", "without_mask")}


def page_storage_counts(context: BrowserContext) -> dict[str, int]:
    """The kiosk's own count of today in the context's localStorage (tally.js)."""
    (origin,) = context.storage_state()["origins"]
    (saved,) = [
        entry["value"] for entry in origin["localStorage"] if entry["name"].startswith("maskcheck.tally.")
    ]
    return dict(json.loads(saved))


def test_kiosk_speaks_korean_with_lang_ko(server: ServerProcess, demo_masked_person: BrowserContext) -> None:
    page = demo_masked_person.new_page()
    problems = PageProblems(page)
    page.goto(server.url + "/kiosk?lang=ko")
    page.wait_for_selector("#kiosk-message[data-verdict='masked']", timeout=WAIT_MS)
    assert page.evaluate("document.documentElement.lang") == "ko"
    assert page.inner_text("#kiosk-headline") == "마스크를 착용해 주셔서 감사합니다"
    assert page.inner_text("#kiosk-subline") == "들어오세요."
    pressed = page.get_attribute("#chime-button", "aria-pressed")  # the test before may have turned it on
    assert page.inner_text("#chime-button") == ("알림음 켜짐" if pressed == "true" else "알림음 꺼짐")
    expect(page.locator("#today-with_mask")).to_be_attached(timeout=WAIT_MS)
    assert page.inner_text(".today-item:first-child dt") == "오늘 방문자"
    assert page.inner_text(".today-item[data-label='with_mask'] dt") == "마스크 착용"
    expect(page.locator("#kiosk-status")).to_contain_text("연결됨", timeout=WAIT_MS)
    assert problems.errors == []
    page.close()


# Keeps the streams the page opens, so that a test can pull the camera away (a track stopped from script
# fires no `ended` event: the kiosk must notice by itself).
CAPTURE_CAMERA_STREAMS = """
window.__cameraStreams = [];
const nativeGetUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = async (constraints) => {
  const stream = await nativeGetUserMedia(constraints);
  window.__cameraStreams.push(stream);
  return stream;
};
"""


def test_kiosk_recovers_from_a_lost_camera(server: ServerProcess, demo_masked_person: BrowserContext) -> None:
    page = demo_masked_person.new_page()
    page.add_init_script(CAPTURE_CAMERA_STREAMS)
    page.goto(server.url + "/kiosk")
    page.wait_for_selector("#kiosk-message[data-verdict='masked']", timeout=WAIT_MS)

    page.evaluate("window.__cameraStreams.at(-1).getTracks().forEach((track) => track.stop())")
    expect(page.locator("#kiosk-status")).to_contain_text("camera was lost", timeout=WAIT_MS)
    assert page.get_attribute("#kiosk-message", "data-verdict") == "camera"
    assert page.inner_text("#kiosk-headline") == "Mask check offline"
    page.wait_for_selector("#kiosk-message[data-verdict='masked']", timeout=WAIT_MS)
    assert page.evaluate("window.__cameraStreams.length") == 2
    wait_until(lambda: active_sessions(server) == 1, 15, "the lost camera's session to end")
    page.close()


def test_page_reports_lost_server_and_reconnects_when_it_is_back(
    demo_two_people: BrowserContext, tmp_path: Path
) -> None:
    own_server = ServerProcess().start(tmp_path / "server.log")
    try:
        page = demo_two_people.new_page()
        page.goto(own_server.url + "/")
        page.click("#start-button")
        page.wait_for_selector("#banner[data-verdict='unmasked']", timeout=WAIT_MS)

        assert own_server.process is not None
        own_server.process.kill()
        own_server.process.wait(timeout=10)
        expect(page.locator("#message")).to_contain_text("Cannot reach the server", timeout=WAIT_MS)
        assert page.get_attribute("#banner", "data-verdict") == "offline"
        assert page.get_attribute("#message", "data-severity") == "error"

        own_server.start(tmp_path / "server.log")
        page.wait_for_selector("#banner[data-verdict='unmasked']", timeout=45_000)
        assert page.is_hidden("#message")
        page.close()
    finally:
        own_server.stop()


def test_insecure_context_tells_the_user_about_https(
    server: ServerProcess, demo_two_people: BrowserContext
) -> None:
    page = demo_two_people.new_page()
    page.goto(f"http://{INSECURE_HOST}:{server.port}/")
    assert page.evaluate("window.isSecureContext") is False
    message = page.locator("#message")
    message.wait_for(state="visible")
    assert "--https" in message.inner_text() and "localhost" in message.inner_text()
    assert page.is_disabled("#start-button")

    page.goto(f"http://{INSECURE_HOST}:{server.port}/kiosk")
    expect(page.locator("#kiosk-status")).to_contain_text("--https")
    page.close()


@pytest.mark.parametrize(
    ("status", "body", "expected", "retries"),
    [
        (
            503,
            {"error": "Server at capacity", "reason": "capacity", "maxSessions": 4},
            "at capacity: all 4 sessions are in use",
            True,
        ),
        (429, {"error": "Too many", "reason": "rate_limited"}, "Too many connection attempts", True),
        (401, {"error": "Access token missing or wrong.", "reason": "unauthorized"}, "access token", False),
    ],
)
def test_page_explains_refused_offers(
    server: ServerProcess,
    demo_two_people: BrowserContext,
    status: int,
    body: dict[str, Any],
    expected: str,
    retries: bool,
) -> None:
    page = demo_two_people.new_page()
    offers: list[str] = []

    def refuse(route: Any) -> None:
        offers.append(route.request.url)
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    page.route("**/offer*", refuse)
    page.goto(server.url + "/")
    page.click("#start-button")
    expect(page.locator("#message")).to_contain_text(expected, timeout=WAIT_MS)
    page.wait_for_timeout(3500)
    assert (len(offers) > 1) is retries, offers
    if retries:
        page.unroute("**/offer*")
        page.wait_for_selector("#banner[data-verdict='unmasked']", timeout=WAIT_MS)
        assert page.is_hidden("#message")
    page.click("#start-button")
    page.close()


def test_page_passes_the_access_token_on(server: ServerProcess, demo_two_people: BrowserContext) -> None:
    page = demo_two_people.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.route("**/offer*", lambda route: route.fulfill(status=401, body="{}"))
    page.goto(server.url + "/?token=s3cret")
    assert str(page.get_attribute("#kiosk-link", "href")).endswith("/kiosk?token=s3cret")
    page.click("#start-button")
    expect(page.locator("#message")).to_contain_text("access token")
    api_calls = [url for url in requested if "/config" in url or "/offer" in url]
    assert api_calls and all(url.endswith("?token=s3cret") for url in api_calls), api_calls
    page.click("#start-button")
    page.close()


def test_camera_permission_denied_is_explained(
    server: ServerProcess, demo_two_people: BrowserContext
) -> None:
    page = demo_two_people.new_page()
    page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () => "
        "Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"
    )
    page.goto(server.url + "/")
    page.click("#start-button")
    message = page.locator("#message")
    message.wait_for(state="visible")
    assert "Camera access was blocked" in message.inner_text()
    assert page.inner_text("#start-button") == "Start"
    page.close()


TALLY_SCENARIO = """async () => {
  const { DailyTally } = await import('/static/js/tally.js');
  const store = new Map();
  const storage = {
    getItem: (k) => store.get(k) ?? null,
    setItem: (k, v) => store.set(k, v),
    removeItem: (k) => store.delete(k),
    key: (i) => [...store.keys()][i] ?? null,
    get length() { return store.size; },
  };
  let now = new Date(2026, 10, 26, 9, 0, 0);
  const labels = ['with_mask', 'without_mask', 'mask_worn_incorrectly'];
  const tally = new DailyTally({ labels, storage, clock: () => now });
  const one = { with_mask: 0, without_mask: 1, mask_worn_incorrectly: 0 };
  const two = { with_mask: 1, without_mask: 1, mask_worn_incorrectly: 0 };
  const nobody = { with_mask: 0, without_mask: 0, mask_worn_incorrectly: 0 };
  let t = 0;
  const feed = (counts, n) => { for (let i = 0; i < n; i += 1) { tally.observe(counts, t); t += 100; } };
  const steps = {};
  feed(one, 50);                       // one unmasked person stands there for 5 s
  steps.oneVisitor = tally.today;
  feed(two, 1); feed(one, 5);          // a single misread frame with two faces
  steps.afterGlitch = tally.today;
  feed(two, 10);                       // a masked person joins
  steps.secondVisitor = tally.today;
  feed(nobody, 30);                    // both leave for 3 s
  feed(one, 10);                       // someone new arrives
  steps.newVisit = tally.today;
  steps.stored = JSON.parse(store.get('maskcheck.tally.2026-11-26'));
  now = new Date(2026, 10, 27, 0, 0, 1);
  steps.nextDay = tally.today;
  steps.reloaded = new DailyTally({ labels, storage, clock: () => new Date(2026, 10, 26, 18, 0, 0) }).today;
  return steps;
}"""


def test_daily_tally_counts_visits_not_frames(server: ServerProcess, demo_two_people: BrowserContext) -> None:
    page = demo_two_people.new_page()
    page.goto(server.url + "/")
    steps = page.evaluate(TALLY_SCENARIO)
    page.close()

    def counts(step: str) -> tuple[int, int, int]:
        return steps[step]["people"], steps[step]["with_mask"], steps[step]["without_mask"]

    assert counts("oneVisitor") == (1, 0, 1)
    assert counts("afterGlitch") == (1, 0, 1)
    assert counts("secondVisitor") == (2, 1, 1)
    assert counts("newVisit") == (3, 1, 2)
    assert steps["stored"]["people"] == 3
    assert steps["nextDay"]["date"] == "2026-11-27" and counts("nextDay") == (0, 0, 0)
    assert counts("reloaded") == (3, 1, 2)


VISIT_S, EMPTY_S = 3.0, 2.0


@needs_data
def test_kiosk_location_names_one_passage_per_visitor(
    playwright: Playwright, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kiosk at "Main entrance" whose camera sees an unmasked man, nobody, a masked woman, nobody, in
    a loop: the history has one passage per appearance, each with the right label."""
    history = tmp_path / "history.sqlite3"
    own_server = ServerProcess(extra_args=["--history", str(history)]).start(tmp_path / "server.log")
    video = visitors_video([UNMASKED_PHOTO, MASKED_PHOTO], tmp_path / "visitors.y4m", VISIT_S, EMPTY_S)
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=chromium_args(video)
    )
    try:
        page = context.new_page()
        page.goto(own_server.url + "/kiosk?location=Main%20entrance")

        def passages() -> list[dict[str, Any]]:
            status, body = get_json(f"{own_server.url}/api/passages?tz=UTC")
            assert status == 200, f"/api/passages answered {status}"
            return list(reversed(body["passages"]))  # type: ignore[call-overload]

        live_seen: list[Any] = []

        def live_camera() -> bool:
            _, body = get_json(f"{own_server.url}/api/live")
            live_seen[:] = list(body.get("cameras", []))  # type: ignore[call-overload]
            return bool(live_seen)

        wait_until(live_camera, WAIT_S, "the kiosk in /api/live")
        assert live_seen[0]["location"] == "Main entrance"
        wait_until(lambda: len(passages()) >= 4, 4 * (VISIT_S + EMPTY_S) + WAIT_S, "four passages")
        page.close()
        wait_until(lambda: active_sessions(own_server) == 0, WAIT_S, "the session to end")
        found = passages()
    finally:
        context.close()
        own_server.stop()
    with capsys.disabled():
        print("\npassages:", [(p["label"], p["seconds"], p["frames"], p["confidence"]) for p in found])
    assert {p["location"] for p in found} == {"Main entrance"}
    labels = [p["label"] for p in found]
    assert all(a != b for a, b in itertools.pairwise(labels)), f"a visit split in two: {labels}"
    assert set(labels) == {"without_mask", "with_mask"}
    for passage in found[1:-1]:  # the first and the last may be cut by the connection's start and end
        assert VISIT_S - 1.0 <= passage["seconds"] <= VISIT_S + 0.5, passage
    assert history.stat().st_size > 0
