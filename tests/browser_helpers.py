"""What the browser tests need around Chromium: a fake-camera .y4m from real photos, the real server as a
subprocess, and the Chromium launch settings that work headless here (see ../shared/ENGINEERING.md)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SCENE_IMAGES = SHARED_DATA / "scenes" / "andrewmvd" / "images"
CHROMIUM = Path("/usr/bin/chromium")
DEFAULT_MODEL = REPO_ROOT / "models" / "mask_classifier.onnx"

# Photos of one large face each from the andrewmvd set (CC0, so screenshots of them may go into docs/),
# chosen by looking at them: a clearly unmasked young man in a webcam-like shot, and a woman wearing a
# white mask over nose and mouth.
UNMASKED_PHOTO = "maksssksksss343.jpg"
MASKED_PHOTO = "maksssksksss446.jpg"

# The screenshots' camera: a public-domain portrait that is not from ../shared/data (tests/assets/README.md).
DEMO_PHOTO = REPO_ROOT / "tests" / "assets" / "astronaut.jpg"

CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
)


def letterbox(image: np.ndarray, width: int = 640, height: int = 480, fill: float = 1.0) -> np.ndarray:
    """Scale `image` (BGR) to fit `fill` of width x height without distortion, centred on black."""
    scale = fill * min(width / image.shape[1], height / image.shape[0])
    new_w, new_h = round(image.shape[1] * scale), round(image.shape[0] * scale)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


def camera_frames(
    image: np.ndarray, seconds: float = 2.0, fps: int = 30, sway_px: int = 6
) -> list[np.ndarray]:
    """A camera-like clip of one photo: it sways a few pixels left and right, like a person standing
    still, and ends where it starts so that Chromium's endless loop of the file has no jump."""
    count = round(seconds * fps)
    frames = []
    for index in range(count):
        shift = sway_px * np.sin(2 * np.pi * index / count)
        matrix = np.array([[1, 0, shift], [0, 1, 0]], dtype=np.float32)
        frames.append(cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0])))
    return frames


def write_y4m(path: Path, frames: Iterable[np.ndarray], fps: int = 30) -> Path:
    """Write BGR frames (all one even size) as YUV 4:2:0 .y4m, the format Chromium's fake camera reads."""
    frames = list(frames)
    if not frames:
        raise ValueError("no frames to write")
    height, width = frames[0].shape[:2]
    if width % 2 or height % 2:
        raise ValueError(f"4:2:0 needs even sizes, got {width}x{height}")
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for frame in frames:
            if frame.shape[:2] != (height, width):
                raise ValueError("all frames must have the same size")
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def read_photo(photo_name: str) -> np.ndarray:
    image = cv2.imread(str(SCENE_IMAGES / photo_name))
    if image is None:
        raise FileNotFoundError(SCENE_IMAGES / photo_name)
    return image


def read_demo_photo() -> np.ndarray:
    image = cv2.imread(str(DEMO_PHOTO))
    if image is None:
        raise FileNotFoundError(DEMO_PHOTO)
    return image


# A surgical mask over nose and mouth of DEMO_PHOTO (its face box, as YuNet finds it, is about
# (180, 81, 273, 182)): fixed pixel coordinates of that one photo. ``top`` moves it down the face; at
# about 130 the nose is uncovered.
_MASK_OUTLINE = ((184, 6), (226, -4), (268, 6), (274, 40), (258, 68), (226, 80), (194, 68), (180, 40))
_MASK_FABRIC_BGR = (235, 205, 150)
_MASK_PLEAT_BGR = (200, 170, 120)
_MASK_LOOP_BGR = (230, 230, 230)


def with_drawn_mask(image: np.ndarray, top: int = 112) -> np.ndarray:
    """DEMO_PHOTO with a light-blue surgical mask drawn on (pleats, ear loops), its upper edge at ``top``."""
    out = image.copy()
    outline = np.array([(x, top + dy) for x, dy in _MASK_OUTLINE], dtype=np.int32)
    cv2.fillPoly(out, [outline], _MASK_FABRIC_BGR, lineType=cv2.LINE_AA)
    for dy in (20, 38, 56):
        cv2.line(out, (188, top + dy), (268, top + dy), _MASK_PLEAT_BGR, 2, cv2.LINE_AA)
    cv2.line(out, (181, top + 12), (172, top - 4), _MASK_LOOP_BGR, 2, cv2.LINE_AA)
    cv2.line(out, (271, top + 12), (280, top - 4), _MASK_LOOP_BGR, 2, cv2.LINE_AA)
    return out


def demo_portrait(masked: bool) -> np.ndarray:
    """Head and shoulders of DEMO_PHOTO (320x320 about the face), bare-faced or with the drawn mask."""
    photo = read_demo_photo()
    if masked:
        photo = with_drawn_mask(photo)
    return photo[10:330, 66:386]


def side_by_side(left: np.ndarray, right: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """Two photos, each letterboxed into one half of a width x height frame: two people in one shot."""
    half = width // 2
    return np.hstack([letterbox(left, half, height), letterbox(right, width - half, height)])


def photos_video(photos: Sequence[np.ndarray], path: Path, seconds: float = 2.0) -> Path:
    """A 640x480, 30 fps fake-camera file of one photo (or two side by side)."""
    if len(photos) == 1:
        # A face that fills the whole frame is not what a camera at a door sees, and the detector
        # finds a second, false face in this one's shoulder: keep a border around the photo.
        frame = letterbox(photos[0], fill=0.75)
    elif len(photos) == 2:
        frame = side_by_side(photos[0], photos[1])
    else:
        raise ValueError("one or two photos")
    return write_y4m(path, camera_frames(frame, seconds=seconds))


def visitors_video(photo_names: Sequence[str], path: Path, seconds: float = 3.0, gap: float = 2.0) -> Path:
    """A fake-camera file of people passing one at a time: each photo for `seconds`, then an empty (black)
    frame for `gap` seconds, in turn; Chromium loops it."""
    frames: list[np.ndarray] = []
    empty = np.zeros((480, 640, 3), dtype=np.uint8)
    for name in photo_names:
        frames += camera_frames(letterbox(read_photo(name), fill=0.75), seconds=seconds)
        frames += [empty] * round(gap * 30)
    return write_y4m(path, frames)


def missing_prerequisites(photos: Sequence[str] = (UNMASKED_PHOTO, MASKED_PHOTO)) -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if not DEFAULT_MODEL.exists():
        return f"the trained model {DEFAULT_MODEL.relative_to(REPO_ROOT)} is missing"
    for name in photos:
        if not (SCENE_IMAGES / name).exists():
            return f"face photos from ../shared/data are absent ({SCENE_IMAGES / name})"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str, timeout: float = 2.0) -> tuple[int, dict[str, object]]:
    """Status and JSON body of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {}
    except (urllib.error.URLError, OSError):
        return 0, {}


class ServerProcess:
    """`python run_server.py` on a free port, started and stopped by a test."""

    def __init__(self, port: int | None = None, extra_args: Sequence[str] = ()) -> None:
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_path: Path, timeout: float = 60.0) -> ServerProcess:
        """Start the server and wait until /healthz says the models are loaded."""
        self.log_path = log_path
        command = [sys.executable, "run_server.py", "--port", str(self.port), *self.extra_args]
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
            status, _ = get_json(f"{self.url}/healthz", timeout=1.0)
            if status == 200:
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"server not healthy after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def analysis_children(self) -> list[psutil.Process]:
        """The server's analysis processes, one per lane (multiprocessing's spawned children, not its
        resource tracker)."""
        assert self.process is not None
        children = [
            child
            for child in psutil.Process(self.process.pid).children(recursive=True)
            if "spawn_main" in (command := " ".join(child.cmdline())) and "resource_tracker" not in command
        ]
        if not children:
            raise LookupError("the server has no analysis process")
        return children

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


def chromium_args(fake_video: Path, extra: Sequence[str] = ()) -> list[str]:
    return [*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={fake_video}", *extra]


def save_copy_when_asked(screenshot: Path, destination: Path) -> None:
    """Copy a screenshot into docs/ only when UPDATE_SCREENSHOTS=1, so ordinary test runs change no files."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, destination)
