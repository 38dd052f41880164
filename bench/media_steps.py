"""CPU per frame of the server's media steps, each alone: VP8 encoding (aiortc's settings, and without the
denoiser as the server encodes) and the overlay stamp (working it out once per analysis, stamping each frame
into a new frame or into one of the track's reused output frames).

    python -m bench.media_steps [--frames 150]

The frames are the stream clients' (bench/frames.py: a moving scene photo at 640x480), so the encoder sees
what it sees in the stream benchmark. Prints a table; CPU time of this process, one thread.
"""

from __future__ import annotations

import argparse
import fractions
import itertools
import time
from collections.abc import Callable

import av
import cv2
import numpy as np
from aiortc.codecs.vpx import Vp8Encoder

from bench.frames import moved_i420, stream_scenes, to_i420
from server.analysis.analyser import AnalysisResult
from server.memory import use_fixed_mmap_threshold
from server.rtc.overlay import OutputFrames, OverlayStamp
from server.rtc.tuning import DenoiserFreeVp8Encoder
from vision.pipeline import Detection

BITRATE = 1_500_000
"""aiortc's maximum VP8 bitrate, which its encoders reach on loopback."""


def camera_frames(count: int) -> list[av.VideoFrame]:
    scene = to_i420(stream_scenes(1)[0].image)
    frames = []
    for index in range(count):
        frame = av.VideoFrame.from_ndarray(moved_i420(scene, index / 30.0), format="yuv420p")
        frame.pts = index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        frames.append(frame)
    return frames


def cpu_ms(step: Callable[[], object], repeats: int) -> float:
    started = time.process_time()
    for _ in range(repeats):
        step()
    return (time.process_time() - started) / repeats * 1000.0


def encoding_ms(encoder: Vp8Encoder, frames: list[av.VideoFrame]) -> tuple[float, float]:
    """CPU ms per frame and kbit/s produced, after 30 frames of warm-up."""
    encoder.target_bitrate = BITRATE
    for frame in frames[:30]:
        encoder.encode(frame)
    size = 0
    started = time.process_time()
    for frame in frames[30:]:
        payloads, _ = encoder.encode(frame)
        size += sum(len(p) for p in payloads)
    measured = len(frames) - 30
    return (time.process_time() - started) / measured * 1000.0, size * 8 / (measured / 30.0) / 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args(argv)
    # The server's allocator setting: frame-sized blocks go back to the system when freed, so a new frame
    # costs page faults, as it does in the server.
    use_fixed_mmap_threshold()
    cv2.setNumThreads(1)
    frames = camera_frames(max(args.frames, 60))

    rows = []
    for name, encoder in (
        ("VP8 encode, aiortc's settings (denoiser on)", Vp8Encoder()),
        ("VP8 encode, server (denoiser off)", DenoiserFreeVp8Encoder()),
    ):
        ms, kbps = encoding_ms(encoder, frames)
        rows.append((name, ms, f"{kbps:.0f} kbit/s"))

    detections = (
        Detection(box=(100, 100, 220, 240), label="with_mask", score=0.98, face_confidence=0.9),
        Detection(box=(350, 120, 450, 250), label="without_mask", score=0.91, face_confidence=0.9),
    )
    result = AnalysisResult(
        number=0,
        width=640,
        height=480,
        detections=detections,
        image=np.zeros((480, 640, 3), np.uint8),
        received_at=0.0,
        queue_ms=0.0,
        inference_ms=0.0,
        analysed=1,
        dropped=0,
    )
    stamp = OverlayStamp.make(result, (640, 480))
    rows.append(
        (
            "overlay: work out the stamp (per analysis)",
            cpu_ms(lambda: OverlayStamp.make(result, (640, 480)), 300),
            "2 faces",
        )
    )
    # A different camera frame each time, as in the server.
    sources, output = itertools.cycle(frames), OutputFrames()
    rows.append(
        (
            "overlay: stamp a frame into a new frame (per frame)",
            cpu_ms(lambda: stamp.apply(next(sources)), 300),
            f"{stamp.count} values",
        )
    )
    rows.append(
        (
            "overlay: stamp a frame into a reused output frame (per frame, as the server does)",
            cpu_ms(lambda: stamp.apply(next(sources), output.take(640, 480)), 300),
            f"{stamp.count} values",
        )
    )

    print("| step | CPU ms per call | note |")
    print("|---|---|---|")
    for name, ms, note in rows:
        print(f"| {name} | {ms:.2f} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
