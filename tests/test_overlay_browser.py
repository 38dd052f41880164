"""The page-drawn overlay (?overlay=page) in Debian's Chromium against the real server.

The fake camera shows the demo portrait (tests/assets, public domain) on the LEFT of its picture. The page
shows its own camera as a mirror, so the box must be drawn on the RIGHT of the preview, over the face, at
every camera size and page shape; no video comes back from the server, and the camera is sent at the
server's frame rate cap (getStats()). The kiosk tests of tests/test_browser.py run again here against a
server whose default overlay is the page's (`--overlay page`), so the kiosk in page mode passes them too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, ViewportSize

from tests.browser_helpers import ServerProcess, camera_frames, chromium_args, demo_portrait, write_y4m
from tests.media_helpers import blank_frame, place
from tests.test_browser import (  # noqa: F401  (fixtures and tests collected again here)
    CAPTURE_PEER_CONNECTIONS,
    CHROMIUM,
    LANDSCAPE,
    OUTBOUND_VIDEO,
    PORTRAIT,
    WAIT_S,
    PageProblems,
    demo_masked_person,
    masked_person,
    pytestmark,
    test_kiosk_recovers_from_a_lost_camera,
    test_kiosk_speaks_korean_with_lang_ko,
    test_kiosk_thanks_a_masked_person_and_counts_them_once,
    wait_until,
)

CAP_FPS = 15


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server with the page-drawn overlay as its default (the kiosk tests use no ?overlay=)."""
    process = ServerProcess(extra_args=["--overlay", "page", "--page-frame-rate", str(CAP_FPS)])
    process.start(tmp_path_factory.mktemp("server") / "server.log")
    yield process
    process.stop()


def face_on_the_left(width: int, height: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    frame = blank_frame(width, height)
    region = place(frame, demo_portrait(masked=False), width // 4, round(min(width, height) * 0.55))
    return frame, region


OVERLAY_STATE = """() => {
  const canvas = document.querySelector('#face-overlay');
  const video = document.querySelector('#local-video');
  const box = video.getBoundingClientRect();
  return {
    state: canvas.dataset.state, boxes: JSON.parse(canvas.dataset.boxes || '[]'),
    video: [video.videoWidth, video.videoHeight], element: [box.x, box.y, box.width, box.height],
    mirrored: video.dataset.mirrored,
    direction: window.__peerConnections.at(-1)?.getTransceivers()[0]?.currentDirection,
  };
}"""


def picture_rect(element: list[float], video: list[int]) -> tuple[float, float, float, float]:
    """Where object-fit: contain puts the picture inside the element (x, y, width, height)."""
    scale = min(element[2] / video[0], element[3] / video[1])
    width, height = video[0] * scale, video[1] * scale
    return (element[2] - width) / 2, (element[3] - height) / 2, width, height


@pytest.mark.parametrize(
    ("camera_size", "viewport"),
    [((640, 480), LANDSCAPE), ((1280, 720), LANDSCAPE), ((480, 640), PORTRAIT)],
    ids=["640x480", "1280x720", "portrait"],
)
def test_page_draws_the_boxes_over_the_mirrored_preview(
    server: ServerProcess,
    playwright: Playwright,
    tmp_path: Path,
    camera_size: tuple[int, int],
    viewport: ViewportSize,
) -> None:
    width, height = camera_size
    frame, (fx0, fy0, fx1, fy1) = face_on_the_left(width, height)
    video = write_y4m(tmp_path / "camera.y4m", camera_frames(frame, seconds=1.0))
    context: BrowserContext = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=chromium_args(video),
        viewport=viewport,
    )
    context.add_init_script(CAPTURE_PEER_CONNECTIONS)
    try:
        page = context.new_page()
        problems = PageProblems(page)
        page.goto(f"{server.url}/?overlay=page&resolution={width}x{height}")
        page.click("#start-button")
        wait_until(
            lambda: overlay_state(page)["state"] == "shown" and len(overlay_state(page)["boxes"]) == 1,
            WAIT_S,
            "one box drawn over the preview",
        )
        state = overlay_state(page)
        assert state["video"] == [width, height] and state["mirrored"] == "true"
        # No video comes back: the page only sends.
        assert state["direction"] == "sendonly"
        assert page.evaluate("document.querySelector('#remote-video').srcObject") is None

        px, py, pw, ph = picture_rect(state["element"], state["video"])
        x, y, w, h = state["boxes"][0]
        centre_x, centre_y = (x + w / 2 - px) / pw, (y + h / 2 - py) / ph
        # The portrait is on the left of the camera's picture, so on the right of its mirror image.
        mirrored_left, mirrored_right = 1 - fx1 / width, 1 - fx0 / width
        assert mirrored_left < centre_x < mirrored_right, (centre_x, mirrored_left, mirrored_right)
        assert centre_x > 0.5
        assert fy0 / height < centre_y < fy1 / height, (centre_y, fy0 / height, fy1 / height)
        assert w / pw < (fx1 - fx0) / width * 1.2 and w / pw > 0.1 * (fx1 - fx0) / width

        # What is on the screen: the box outline in the class colour of the server-drawn stream. A box is
        # hidden once its result is older than the server's limit (a loaded machine analyses seldom), so
        # the screenshot counts only when the same box was shown before and after it.
        colours = label_colours(page)
        wait_until(
            lambda: outline_on_screen(page, tmp_path / "page.png", colours), WAIT_S, "the box on screen"
        )

        # The camera goes out at the server's cap, however fast the camera is (the fake one: 30 fps).
        page.wait_for_timeout(5000)
        sent = page.evaluate(OUTBOUND_VIDEO)
        assert sent is not None and CAP_FPS - 4 <= sent[2] <= CAP_FPS + 1, sent
        assert problems.errors == []
        page.screenshot(path=str(tmp_path / f"overlay-{width}x{height}.png"))
    finally:
        context.close()


def label_colours(page: Page) -> list[np.ndarray]:
    """The class colours of /config (BGR, as the screenshot reads)."""
    config = json.loads(page.evaluate("fetch('config').then((r) => r.text())"))
    return [
        np.array([int(code[i : i + 2], 16) for i in (5, 3, 1)], float)
        for code in config["labelColours"].values()
    ]


def outline_on_screen(
    page: Page, screenshot: Path, colours: list[np.ndarray], state_script: str = OVERLAY_STATE
) -> bool:
    """Whether a screenshot shows the drawn box's top edge in a class colour (same box before and after)."""
    before: dict[str, Any] = page.evaluate(state_script)
    page.screenshot(path=str(screenshot))
    after: dict[str, Any] = page.evaluate(state_script)
    if before["state"] != "shown" or after["state"] != "shown" or before["boxes"] != after["boxes"]:
        return False
    image = cv2.imread(str(screenshot))
    assert image is not None
    x, y, w, _ = after["boxes"][0]
    left, top = after["element"][0], after["element"][1]
    edge = image[round(top + y) - 2 : round(top + y) + 3, round(left + x + w / 2)].astype(float)
    return any(min(np.abs(pixel - colour).max() for colour in colours) < 50 for pixel in edge)


def overlay_state(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(OVERLAY_STATE)
    return result


KIOSK_STATE = """() => {
  const canvas = document.querySelector('#kiosk-overlay');
  const box = canvas.getBoundingClientRect();
  return {
    element: [box.x, box.y, box.width, box.height],
    hidden: canvas.hidden, state: canvas.dataset.state, boxes: JSON.parse(canvas.dataset.boxes || '[]'),
    mirrored: document.querySelector('#kiosk-video').dataset.mirrored,
    direction: window.__peerConnections.at(-1)?.getTransceivers()[0]?.currentDirection,
  };
}"""


def test_the_kiosk_draws_the_boxes_itself_when_the_server_says_page(
    server: ServerProcess,
    demo_masked_person: BrowserContext,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The server's `--overlay page` is the kiosk's default: boxes over its mirrored camera, no video back."""
    page = demo_masked_person.new_page()
    problems = PageProblems(page)
    page.goto(server.url + "/kiosk")
    page.wait_for_selector("#kiosk-message[data-verdict='masked']", timeout=WAIT_S * 1000)
    wait_until(
        lambda: (
            page.evaluate(KIOSK_STATE)["state"] == "shown" and len(page.evaluate(KIOSK_STATE)["boxes"]) == 1
        ),
        WAIT_S,
        "a box over the kiosk's camera",
    )
    state = page.evaluate(KIOSK_STATE)
    assert not state["hidden"] and state["mirrored"] == "true" and state["direction"] == "sendonly"
    screenshot = tmp_path / "kiosk-page-overlay.png"
    colours = label_colours(page)
    wait_until(lambda: outline_on_screen(page, screenshot, colours, KIOSK_STATE), WAIT_S, "the box on screen")
    assert problems.errors == []
    page.close()
