"""One benchmark camera: a real aiortc peer that sends moving scene photos and measures what comes back.

It sends 640x480 frames at a steady 30 fps (VP8), each carrying its index as a block code in a corner;
the annotated video that returns is decoded, the code read, and the frame matched to its send time:
that difference is the glass-to-glass latency (camera capture and screen excluded). Detection messages
on the data channel are counted too. Run one process per client so that clients do not slow each other:

    python -m bench.client --url http://127.0.0.1:8080 --duration 30 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import itertools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiortc.rtcrtpsender
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.base import Encoder
from aiortc.codecs.vpx import MAX_BITRATE
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from bench.frames import Scene, moved_i420, read_code, stamp_code_i420, stream_scenes, to_i420
from bench.stats import percentile
from server.rtc import tuning as rtc_tuning

VIDEO_CLOCK = 90000
SCENE_SECONDS = 5.0
SCENES = 5
"""5 photos of 5 s: the stream repeats every 25 s, so in a 30-s window the last 5 s show exactly what the
first 5 s showed, and their latencies compare like with like (the issue's growth target): the photos'
content alone moves latency by tens of percent (more faces, more bits)."""
_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
CAMERA_BITRATE = MAX_BITRATE
"""What each client's camera sends: aiortc's top VP8 rate, 1.5 Mbit/s, the rate the returned video reaches."""


class SteadyRateVp8Encoder(rtc_tuning.DenoiserFreeVp8Encoder):
    """The server's VP8 encoder at a fixed rate, `CAMERA_BITRATE`, whatever the server's estimates say.

    aiortc's encoder opens itself again, and so starts with a keyframe (25-90 KB against 1-5 KB), every time
    the receiver's bandwidth estimate moves by more than 10 %. The server's estimate of a camera's stream
    follows its own CPU load (a delay-based estimator), so on the shared 2 cores each client sent about 13
    keyframes in a 30-s window, and a busy moment fed itself: more keyframes, more decoding, lower
    estimates, more keyframes. A browser's encoder changes its rate in place, without a keyframe; a steady
    top rate keeps that, and sends at least as many bits as a browser that follows the estimate down.
    """

    @property
    def target_bitrate(self) -> int:
        return CAMERA_BITRATE

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        """The server's estimate is not followed (see the class docstring)."""


def get_camera_encoder(codec: RTCRtpCodecParameters) -> Encoder:
    """`SteadyRateVp8Encoder` for VP8, the server's tuned choice for anything else."""
    if codec.mimeType.lower() == "video/vp8":
        return SteadyRateVp8Encoder()
    return rtc_tuning.get_encoder(codec)


class SceneVideoTrack(MediaStreamTrack):
    """A camera at a fixed frame rate showing each scene for a few seconds, moving gently."""

    kind = "video"

    def __init__(self, scenes: list[Scene], fps: float, scene_seconds: float) -> None:
        super().__init__()
        self._scenes = [to_i420(scene.image) for scene in scenes]
        self._fps = fps
        self._scene_seconds = scene_seconds
        self._index = 0
        self._start: float | None = None
        self.sent_at: dict[int, float] = {}

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._index / self._fps
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 1.0:
            # Fell far behind (the machine was starved): skip ahead instead of bursting.
            self._start = now - self._index / self._fps
        t = self._index / self._fps
        scene = self._scenes[int(t / self._scene_seconds) % len(self._scenes)]
        image = moved_i420(scene, t)
        stamp_code_i420(image, self._index)
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = round(t * VIDEO_CLOCK)
        frame.time_base = _TIME_BASE
        self.sent_at[self._index % 65536] = time.monotonic()
        self._index += 1
        return frame


@dataclass
class Observations:
    """Raw timestamps (monotonic seconds) of what the client saw."""

    frames: list[tuple[float, int | None]] = field(default_factory=list)
    """(arrival time, latency ms or None when the code was unreadable) per returned frame."""
    messages: list[float] = field(default_factory=list)
    inference_ms: list[float] = field(default_factory=list)
    faces_per_message: list[int] = field(default_factory=list)
    bytes: list[tuple[float, int, int]] = field(default_factory=list)
    """(time, video bytes sent, bytes received so far), once a second from the peer's stats."""


@dataclass
class ClientResult:
    duration_s: float
    window_start_unix: float
    window_end_unix: float
    frames_sent: int
    frames_received: int
    fps_received: float
    code_readable: float
    detections_per_s: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_first5s_ms: float | None
    latency_last5s_ms: float | None
    latency_growth: float | None
    server_inference_ms_p50: float | None
    faces_per_message: float | None
    latency_by_second_ms: list[float | None] = field(default_factory=list)
    """Median latency of each second of the window: shows whether latency drifts or only jitters."""
    sent_kbps_by_second: list[float] = field(default_factory=list)
    received_kbps_by_second: list[float] = field(default_factory=list)
    """Video bitrates each second of the window (the encoders follow the receivers' bandwidth estimates)."""
    client_cpu_percent: float | None = None
    """This client process's CPU over the window (100 = one core): it shares the machine with the server."""
    error: str | None = None


def summarise(
    observations: Observations, sent: list[float], start: float, end: float, unix_offset: float
) -> ClientResult:
    """Figures over the window [start, end) (monotonic seconds)."""
    duration = end - start
    in_window = [(t, lat) for t, lat in observations.frames if start <= t < end]
    latencies = [float(lat) for _, lat in in_window if lat is not None]
    first = [float(lat) for t, lat in in_window if lat is not None and t < start + 5.0]
    last = [float(lat) for t, lat in in_window if lat is not None and t >= end - 5.0]
    first_median, last_median = percentile(first, 50), percentile(last, 50)
    messages = [t for t in observations.messages if start <= t < end]
    by_second: list[list[float]] = [[] for _ in range(max(1, int(duration)))]
    for t, lat in in_window:
        if lat is not None:
            by_second[min(int(t - start), len(by_second) - 1)].append(float(lat))
    counters = [c for c in observations.bytes if start - 1.0 <= c[0] <= end + 1.0]
    sent_kbps = [round((b[1] - a[1]) * 8 / (b[0] - a[0]) / 1000, 1) for a, b in itertools.pairwise(counters)]
    received_kbps = [
        round((b[2] - a[2]) * 8 / (b[0] - a[0]) / 1000, 1) for a, b in itertools.pairwise(counters)
    ]
    return ClientResult(
        duration_s=round(duration, 2),
        window_start_unix=start + unix_offset,
        window_end_unix=end + unix_offset,
        frames_sent=sum(start <= t < end for t in sent),
        frames_received=len(in_window),
        fps_received=len(in_window) / duration,
        code_readable=len(latencies) / len(in_window) if in_window else 0.0,
        detections_per_s=len(messages) / duration,
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        latency_first5s_ms=first_median,
        latency_last5s_ms=last_median,
        latency_growth=last_median / first_median if first_median and last_median else None,
        latency_by_second_ms=[percentile(values, 50) for values in by_second],
        sent_kbps_by_second=sent_kbps,
        received_kbps_by_second=received_kbps,
        server_inference_ms_p50=percentile(observations.inference_ms, 50),
        faces_per_message=float(np.mean(observations.faces_per_message))
        if observations.faces_per_message
        else None,
    )


async def read_returned_video(
    track: MediaStreamTrack, sender: SceneVideoTrack, record: Callable[[float, float | None], None]
) -> None:
    """Read the annotated video until it ends; per frame `record(arrival time, latency ms or None)`, the
    latency from the frame code that `sender` stamped (None when the code is unreadable)."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        arrived = time.monotonic()
        assert isinstance(frame, av.VideoFrame)
        index = read_code(frame.to_ndarray(format="gray"))
        sent = sender.sent_at.get(index) if index is not None else None
        record(arrived, (arrived - sent) * 1000.0 if sent is not None and arrived >= sent else None)


async def _count_bytes(pc: RTCPeerConnection, observations: Observations) -> None:
    while True:
        sent = received = 0
        for stats in (await pc.getStats()).values():
            if stats.type == "outbound-rtp" and getattr(stats, "kind", None) == "video":
                sent += getattr(stats, "bytesSent", 0) or 0
            elif stats.type == "transport":
                # aiortc's inbound-rtp stats have no byte count; the transport's is video plus a little
                # RTCP and data channel.
                received += getattr(stats, "bytesReceived", 0) or 0
        observations.bytes.append((time.monotonic(), sent, received))
        await asyncio.sleep(1.0)


async def run_client(
    url: str, duration: float, warmup: float, scenes: list[Scene], fps: float = 30.0, linger: float = 2.0
) -> ClientResult:
    """Connect, stream for warmup + duration seconds, hang up, and summarise the measured window."""
    pc = RTCPeerConnection()
    sender = SceneVideoTrack(scenes, fps, scene_seconds=SCENE_SECONDS)
    observations = Observations()
    transceiver = pc.addTransceiver(sender, direction="sendrecv")
    capabilities = RTCRtpSender.getCapabilities("video")
    transceiver.setCodecPreferences([c for c in capabilities.codecs if c.mimeType == "video/VP8"])
    channel = pc.createDataChannel("detections")
    readers: list[asyncio.Task[None]] = []

    @channel.on("message")
    def on_message(message: Any) -> None:
        if not isinstance(message, str):
            return
        payload = json.loads(message)
        if payload.get("type", "detections") != "detections":
            return
        observations.messages.append(time.monotonic())
        if isinstance(payload.get("inference_ms"), int | float):
            observations.inference_ms.append(float(payload["inference_ms"]))
        observations.faces_per_message.append(len(payload.get("faces", [])))

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video":

            def record(arrived: float, latency: float | None) -> None:
                observations.frames.append((arrived, None if latency is None else round(latency)))

            readers.append(asyncio.ensure_future(read_returned_video(track, sender, record)))

    try:
        await pc.setLocalDescription(await pc.createOffer())
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{url}/offer", json={"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
            ) as response,
        ):
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"/offer answered {response.status}: {body}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        deadline = time.monotonic() + 20.0
        while not observations.frames:
            if time.monotonic() > deadline:
                raise RuntimeError("no video came back within 20 s")
            await asyncio.sleep(0.05)
        readers.append(asyncio.ensure_future(_count_bytes(pc, observations)))
        await asyncio.sleep(warmup)
        start, cpu_start = time.monotonic(), time.process_time()
        await asyncio.sleep(duration)
        end, cpu_end = time.monotonic(), time.process_time()
        # Keep streaming a little: clients that started together end their windows a little apart, and
        # one hanging up (the server closing its session) must not fall inside another's window.
        await asyncio.sleep(linger)
    finally:
        await pc.close()
        for reader in readers:
            reader.cancel()
    sent = list(sender.sent_at.values())
    result = summarise(observations, sent, start, end, time.time() - time.monotonic())
    result.client_cpu_percent = (cpu_end - cpu_start) / (end - start) * 100.0
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One benchmark WebRTC camera client.")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds after the first frame, not measured"
    )
    parser.add_argument(
        "--scenes",
        type=int,
        default=SCENES,
        help="number of scene photos to cycle through, 5 s each (default: 5, a 25-s cycle)",
    )
    parser.add_argument("--json", type=Path, help="write the result here (default: stdout)")
    args = parser.parse_args(argv)
    # The server's aiortc tuning, for the same reasons: the frames are noise-free photos (the denoiser only
    # costs CPU that the server on these shared cores needs), and a browser's jitter buffer, which this
    # client stands in for, does not hold each frame back until the next one arrives.
    rtc_tuning.install()
    sender_module: Any = aiortc.rtcrtpsender
    sender_module.get_encoder = get_camera_encoder
    try:
        result = asyncio.run(run_client(args.url, args.duration, args.warmup, stream_scenes(args.scenes)))
        text = json.dumps(asdict(result), indent=2)
        code = 0
    except Exception as exc:  # reported in the JSON so the benchmark can show which client failed
        text = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        code = 1
    if args.json:
        args.json.write_text(text)
    else:
        print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
