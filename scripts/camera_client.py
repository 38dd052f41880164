"""A camera in its own process: real aiortc sessions against a running server, one after the other.

Used by the robustness runs so that the server's process holds only the server (its tasks, threads,
files and memory are then the server's own), and so that a camera can vanish by SIGKILL.

    python -m scripts.camera_client --url http://127.0.0.1:8080 --cycles 100
    python -m scripts.camera_client --url http://127.0.0.1:8080 --hold   # stream until killed

One JSON line per session on stdout: {"cycle", "session", "frames", "messages", "released_s"}, where
`released_s` is how long after hang-up `/healthz` showed the session gone. With --hold, one line
{"connected": session} once video and detections flow, then nothing until the process is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp

from tests.media_helpers import CameraClient, FakeCameraTrack, blank_frame


async def sessions_open(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    async with http.get(f"{url}/healthz", headers=headers) as response:
        body = await response.json()
        return int(body.get("sessions", 0))


async def one_session(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], frames: int, hold: bool
) -> dict[str, object]:
    before = await sessions_open(http, url, headers)
    client = CameraClient(FakeCameraTrack([blank_frame()], fps=30.0))
    try:
        answer = await client.connect(http, url)
        await client.wait_for(
            lambda: client.frames_received >= frames and bool(client.messages), 20.0, "video and detections"
        )
        if hold:
            print(json.dumps({"connected": answer["session"]}), flush=True)
            await asyncio.Event().wait()
        received, messages = client.frames_received, len(client.messages)
    finally:
        await client.close()
    hung_up = time.monotonic()
    while await sessions_open(http, url, headers) > before:
        if time.monotonic() - hung_up > 30.0:
            raise TimeoutError("the server kept the session for 30 s after hang-up")
        await asyncio.sleep(0.02)
    return {
        "session": answer["session"],
        "frames": received,
        "messages": messages,
        "released_s": round(time.monotonic() - hung_up, 3),
    }


async def run(url: str, cycles: int, frames: int, hold: bool, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as http:
        for cycle in range(1, cycles + 1):
            result = await one_session(http, url, headers, frames, hold)
            print(json.dumps({"cycle": cycle, **result}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--cycles", type=int, default=1)
    parser.add_argument("--frames", type=int, default=5, help="video frames to receive before hanging up")
    parser.add_argument("--hold", action="store_true", help="keep the (first) session until killed")
    parser.add_argument("--token", help="access token, when the server has one")
    args = parser.parse_args(argv)
    asyncio.run(run(args.url.rstrip("/"), args.cycles, args.frames, args.hold, args.token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
