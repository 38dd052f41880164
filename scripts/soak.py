"""Soak: two cameras against `python run_server.py` for minutes; do memory and latency stay flat?

Starts the real server as a child process, connects two real aiortc cameras (moving scene photos from
../shared/data with the frame index stamped in a corner, as the benchmark's clients send them), and
prints every `--interval` seconds: the server's RSS and CPU (its analysis process included), the
machine's load, and per camera the video frames/s that came back, the glass-to-glass latency p50/p95
(index read back from the returned video) and the detection messages/s. At the end it compares the start
with the end.

    python -m scripts.soak                    # 10 minutes, 2 cameras
    python -m scripts.soak --minutes 2 --json soak.json

Flat means: RSS at most `--max-rss-growth-mb` (default 50) above the first interval, and the median
latency p50 of the last third of the intervals at most 20 % (and 30 ms) above that of the first third.
Exit code 0 when flat, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from bench.client import SceneVideoTrack, read_returned_video
from bench.frames import stream_scenes
from bench.resources import tree_usage
from scripts.cycle_test import wait_healthy
from tests.browser_helpers import ServerProcess

LATENCY_GROWTH_RATIO = 1.2
LATENCY_GROWTH_FLOOR_MS = 30.0


@dataclass
class Camera:
    """One soak camera: its peer, what it sent, and what came back (timestamps in monotonic seconds)."""

    name: str
    pc: RTCPeerConnection
    sender: SceneVideoTrack
    frames: list[tuple[float, float | None]] = field(default_factory=list)
    """(arrival, latency ms or None when the stamped index was unreadable) per returned frame."""
    messages: list[float] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass
class Interval:
    end_s: float
    server_rss_mb: float
    server_cpu_percent: float
    machine_load: float
    """1-minute load average of the whole machine: latency follows it on a shared machine."""
    cameras: dict[str, dict[str, float | None]]


async def connect_camera(http: aiohttp.ClientSession, url: str, name: str, scenes: list[Any]) -> Camera:
    pc = RTCPeerConnection()
    camera = Camera(name, pc, SceneVideoTrack(scenes, fps=30.0, scene_seconds=5.0))
    transceiver = pc.addTransceiver(camera.sender, direction="sendrecv")
    codecs = RTCRtpSender.getCapabilities("video").codecs
    transceiver.setCodecPreferences([codec for codec in codecs if codec.mimeType == "video/VP8"])
    channel = pc.createDataChannel("detections")
    channel.on("message", lambda message: camera.messages.append(time.monotonic()))

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video":
            reader = read_returned_video(track, camera.sender, lambda t, ms: camera.frames.append((t, ms)))
            camera.readers.append(asyncio.ensure_future(reader))

    await pc.setLocalDescription(await pc.createOffer())
    offer = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
    async with http.post(f"{url}/offer", json=offer) as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"/offer answered {response.status}: {body}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
    return camera


def camera_figures(camera: Camera, start: float, end: float) -> dict[str, float | None]:
    frames = [(t, latency) for t, latency in camera.frames if start <= t < end]
    latencies = [latency for _, latency in frames if latency is not None]
    seconds = end - start
    return {
        "fps": len(frames) / seconds,
        "detections_per_s": sum(start <= t < end for t in camera.messages) / seconds,
        "latency_p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies else None,
    }


def format_interval(interval: Interval) -> str:
    parts = [
        f"{interval.end_s:6.0f} s",
        f"RSS {interval.server_rss_mb:6.1f} MB",
        f"CPU {interval.server_cpu_percent:5.1f} %",
        f"load {interval.machine_load:4.1f}",
    ]
    for name, figures in interval.cameras.items():
        p50, p95 = figures["latency_p50_ms"], figures["latency_p95_ms"]
        latency = f"{p50:4.0f}/{p95:4.0f} ms" if p50 is not None and p95 is not None else "   -/   - ms"
        parts.append(f"{name}: {figures['fps']:4.1f} fps {figures['detections_per_s']:4.1f} det/s {latency}")
    return " | ".join(parts)


def _thirds(values: list[float]) -> tuple[float, float]:
    """Medians of the first and the last third (at least one value each): robust to one noisy interval."""
    size = max(1, len(values) // 3)
    return statistics.median(values[:size]), statistics.median(values[-size:])


def verdict(intervals: list[Interval], max_rss_growth_mb: float) -> tuple[bool, list[str]]:
    """Flat or not, and the lines that say why: RSS first vs last, latency first vs last third."""
    first, last = intervals[0], intervals[-1]
    lines = []
    flat = True
    growth = last.server_rss_mb - first.server_rss_mb
    peak = max(interval.server_rss_mb for interval in intervals)
    lines.append(
        f"server RSS: first {first.server_rss_mb:.1f} MB, last {last.server_rss_mb:.1f} MB "
        f"({growth:+.1f} MB), peak {peak:.1f} MB"
    )
    if growth > max_rss_growth_mb:
        flat = False
        lines.append(f"  RSS grew more than {max_rss_growth_mb:.0f} MB")
    for name in first.cameras:
        medians = [interval.cameras[name]["latency_p50_ms"] for interval in intervals]
        readable = [value for value in medians if value is not None]
        fps = [interval.cameras[name]["fps"] or 0.0 for interval in intervals]
        if len(readable) < len(medians):
            flat = False
            lines.append(f"{name}: intervals without a readable latency")
        if not readable:
            continue
        before, after = _thirds(readable)
        lines.append(
            f"{name}: latency p50 first third {before:.0f} ms, last third {after:.0f} ms; "
            f"fps min {min(fps):.1f} median {statistics.median(fps):.1f}"
        )
        if after > max(before * LATENCY_GROWTH_RATIO, before + LATENCY_GROWTH_FLOOR_MS):
            flat = False
            lines.append(f"  {name}: latency grew")
    return flat, lines


async def soak(
    url: str, server_pid: int, minutes: float, interval_s: float, cameras: int, warmup_s: float
) -> list[Interval]:
    scenes = stream_scenes(6)
    if not scenes:
        raise SystemExit("needs the scene photos of ../shared/data (none found)")
    server = psutil.Process(server_pid)
    intervals: list[Interval] = []
    async with aiohttp.ClientSession() as http:
        await wait_healthy(http, url)
        connected = [await connect_camera(http, url, f"cam{index + 1}", scenes) for index in range(cameras)]
        try:
            deadline = time.monotonic() + 30.0
            while not all(camera.frames for camera in connected):
                if time.monotonic() > deadline:
                    raise RuntimeError("no video came back within 30 s")
                await asyncio.sleep(0.1)
            await asyncio.sleep(warmup_s)
            for camera in connected:
                camera.frames.clear()
                camera.messages.clear()
            _, cpu_seconds = tree_usage(server)
            started = time.monotonic()
            window_start = started
            while time.monotonic() - started < minutes * 60.0:
                await asyncio.sleep(interval_s)
                now = time.monotonic()
                rss, cpu_now = tree_usage(server)
                interval = Interval(
                    end_s=now - started,
                    server_rss_mb=rss / 2**20,
                    server_cpu_percent=(cpu_now - cpu_seconds) / (now - window_start) * 100.0,
                    machine_load=os.getloadavg()[0],
                    cameras={camera.name: camera_figures(camera, window_start, now) for camera in connected},
                )
                intervals.append(interval)
                print(format_interval(interval), flush=True)
                window_start, cpu_seconds = now, cpu_now
                for camera in connected:
                    camera.frames = [entry for entry in camera.frames if entry[0] >= now]
                    camera.messages = [t for t in camera.messages if t >= now]
                    if camera.pc.connectionState in ("failed", "closed"):
                        raise RuntimeError(f"{camera.name} lost its connection ({camera.pc.connectionState})")
        finally:
            for camera in connected:
                await camera.pc.close()
                for reader in camera.readers:
                    reader.cancel()
    return intervals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds per printed row")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="seconds after the first frames, not measured"
    )
    parser.add_argument("--max-rss-growth-mb", type=float, default=50.0)
    parser.add_argument("--json", type=Path, help="also write every interval and the verdict here")
    parser.add_argument("server_args", nargs="*", help="extra run_server.py flags, after --")
    args = parser.parse_args(argv)

    server = ServerProcess(extra_args=["--offers-per-minute", "0", *args.server_args])
    with tempfile.TemporaryDirectory() as folder:
        server.start(Path(folder) / "server.log", timeout=120.0)
        assert server.process is not None
        print(
            f"server pid {server.process.pid} at {server.url}; {args.cameras} cameras for {args.minutes} min"
        )
        try:
            intervals = asyncio.run(
                soak(server.url, server.process.pid, args.minutes, args.interval, args.cameras, args.warmup)
            )
        finally:
            server.stop()
    flat, lines = verdict(intervals, args.max_rss_growth_mb)
    print("\n".join(lines))
    print("RESULT:", "FLAT" if flat else "NOT FLAT")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"flat": flat, "summary": lines, "intervals": [asdict(i) for i in intervals]}, indent=2
            )
        )
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
