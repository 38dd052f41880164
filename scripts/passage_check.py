"""The passage rule on a real stream: scripted visits of real faces through the real server, then the history.

Starts `python run_server.py` (its defaults: analysis process, `--detect-every 8`, the committed model)
with a history in a temporary folder, sends one real aiortc camera that plays a script of visits made of
two CC0 photos from ../shared/data (an unmasked man, a masked woman) with empty frames between them, and
compares what `/api/passages` lists with what the script says should be there:

- one visit each of the man and the woman (3 s);
- the man standing for `--stand` seconds (one passage);
- the man, 0.5 s away, the man again (within the 1 s gap: one passage);
- the man, 2 s away, the man again (two passages);
- both side by side (two passages);
- the man for 2 s, then at once the woman for 4 s in his place (one passage, label changed, with_mask).

    python -m scripts.passage_check             # about 80 s of video
    python -m scripts.passage_check --repeat 3 --json passages.json

Exit code 0 when every expected passage was found with its label and nothing else was, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from tests.browser_helpers import (
    MASKED_PHOTO,
    UNMASKED_PHOTO,
    ServerProcess,
    camera_frames,
    letterbox,
    read_photo,
    side_by_side,
)
from tests.media_helpers import CameraClient, FakeCameraTrack

FPS = 30


@dataclass(frozen=True)
class Expected:
    """One passage the script should produce."""

    what: str
    labels: tuple[str, ...]
    """Its label, or two labels side by side (any order)."""
    label_changed: bool = False


class Script:
    """A scene as frame indices into a few images (the photos sway a little, like people standing)."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = [np.zeros((480, 640, 3), np.uint8)]
        self.order: list[int] = []
        self.expected: list[Expected] = []
        self._clips: dict[str, range] = {}

    def clip(self, name: str, frame: np.ndarray) -> None:
        start = len(self.images)
        self.images += camera_frames(frame, seconds=2.0, fps=FPS)
        self._clips[name] = range(start, len(self.images))

    def show(self, name: str, seconds: float) -> None:
        clip = self._clips[name]
        self.order += [clip[i % len(clip)] for i in range(round(seconds * FPS))]

    def empty(self, seconds: float) -> None:
        self.order += [0] * round(seconds * FPS)


def build(stand: float) -> Script:
    unmasked, masked = read_photo(UNMASKED_PHOTO), read_photo(MASKED_PHOTO)
    script = Script()
    script.clip("man", letterbox(unmasked, fill=0.75))
    script.clip("woman", letterbox(masked, fill=0.75))
    script.clip("both", side_by_side(unmasked, masked))
    script.empty(2)
    for name, label in (("man", "without_mask"), ("woman", "with_mask")):
        script.show(name, 3)
        script.empty(3)
        script.expected.append(Expected(f"{name}, 3 s", (label,)))
    script.show("man", stand)
    script.empty(3)
    script.expected.append(Expected(f"man standing {stand:g} s", ("without_mask",)))
    script.show("man", 3)
    script.empty(0.5)
    script.show("man", 3)
    script.empty(3)
    script.expected.append(Expected("man, away 0.5 s, back", ("without_mask",)))
    for turn in ("first", "second"):
        script.show("man", 3)
        script.empty(2)
        script.expected.append(Expected(f"man, away 2 s, back: {turn}", ("without_mask",)))
    script.empty(1)
    script.show("both", 4)
    script.empty(3)
    script.expected.append(Expected("side by side", ("with_mask", "without_mask")))
    script.show("man", 2)
    script.show("woman", 4)
    script.empty(3)
    script.expected.append(Expected("mask put on in front of the camera", ("with_mask",), label_changed=True))
    return script


async def play(server: ServerProcess, script: Script, repeat: int) -> float:
    """Play the script; returns the longest time (s) between two analysed frames (analysis stalls)."""
    frames = len(script.order) * repeat
    camera = FakeCameraTrack(script.images, fps=FPS, limit=frames, order=script.order)
    client = CameraClient(camera)
    async with aiohttp.ClientSession() as http:
        await client.connect(http, server.url, location="Passage check")
        await client.wait_for(lambda: camera.sent >= frames, 60.0 + frames / FPS, "the script")
        await asyncio.sleep(2.0)
        await client.close()
    arrivals = [m["received_at"] / 1000 for m in client.messages if m.get("type") == "detections"]
    return max((b - a for a, b in itertools.pairwise(arrivals)), default=0.0)


def passages(server: ServerProcess) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{server.url}/api/passages?tz=UTC&limit=10000", timeout=10) as response:
        return list(reversed(json.loads(response.read())["passages"]))


def compare(expected: list[Expected], found: list[dict[str, Any]]) -> tuple[list[str], bool]:
    """Walk the script in order; side-by-side visits take two passages that start together."""
    lines, ok, index = [], True, 0
    for item in expected:
        count = len(item.labels)
        got = found[index : index + count]
        index += count
        labels = tuple(sorted(p["label"] for p in got))
        good = labels == tuple(sorted(item.labels)) and (not item.label_changed or got[0]["label_changed"])
        ok &= good
        detail = ", ".join(
            f"{p['label']} {p['seconds']:.2f} s {p['frames']} frames conf {p['confidence']:.2f}"
            + (" changed" if p["label_changed"] else "")
            for p in got
        )
        lines.append(f"{'ok  ' if good else 'FAIL'} {item.what}: {detail or 'nothing'}")
    if index < len(found):
        ok = False
        lines.append(f"FAIL {len(found) - index} passages more than expected: {found[index:]}")
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--stand", type=float, default=30.0, help="seconds the man stands in front of the camera"
    )
    parser.add_argument("--repeat", type=int, default=1, help="play the script this many times")
    parser.add_argument("--json", type=Path, help="write the passages and the verdict here")
    parser.add_argument("server_args", nargs="*", help="extra run_server.py flags, after --")
    args = parser.parse_args(argv)
    script = build(args.stand)
    with tempfile.TemporaryDirectory() as folder:
        history = Path(folder) / "history.sqlite3"
        server = ServerProcess(
            extra_args=["--offers-per-minute", "0", "--history", str(history), *args.server_args]
        )
        server.start(Path(folder) / "server.log")
        try:
            stall = asyncio.run(play(server, script, args.repeat))
            found = passages(server)
        finally:
            server.stop()
    lines, ok = compare(script.expected * args.repeat, found)
    print(f"{len(found)} passages for {sum(len(e.labels) for e in script.expected) * args.repeat} expected")
    print("\n".join(lines))
    print(f"longest time between two analysed frames: {stall:.2f} s")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "ok": ok,
                    "longest_stall_s": stall,
                    "expected": [asdict(e) for e in script.expected],
                    "passages": found,
                },
                indent=1,
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
