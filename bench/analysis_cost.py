"""What one analysed frame costs the analysis process, without the video around it.

The cheap cameras' clip (`bench.cheap_cameras`: faces entering while others are followed, the picture
moving) is decoded once; then ``--cameras`` face-following analysers (`vision.stream.StreamAnalyser`, the
server's models and settings) each take ``--rate`` frames per second of clip time, the cameras in turn, on
a clock of the benchmark's own, so that the schedule of full detections is the server's at that rate
whatever this machine's speed. It prints the CPU milliseconds per analysed frame, the cores that
``cameras * rate`` frames a second would take, and how the frames were analysed (full detections, faces
moved by the optical flow, classifications).

``--allocator server`` runs it with the server process's glibc setting (`server.memory`, a fixed 128 KiB
mmap threshold, which deployments also put in the environment); ``heap`` with the analysis process's
(`server.memory.use_heap_for_analysis`). glibc reads the setting once per process, so each variant runs
in a process of its own:

    python -m bench.analysis_cost --cameras 16 --rate 1.6 --allocator server
    python -m bench.analysis_cost --cameras 16 --rate 1.6 --allocator heap

The model flags (``--classifier``, ``--detector``...) compare two models the same way (issue 19: 128
against 160 px).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import asdict, dataclass

import av
import cv2
import numpy as np

from bench.cheap_cameras import DEFAULT_FPS, clip_for
from server.analysis.models import load_models
from server.memory import use_fixed_mmap_threshold, use_heap_for_analysis
from server.settings import ServerConfig
from vision.model_options import ModelSettings, add_model_arguments, model_settings
from vision.stream import StreamAnalyser


@dataclass(frozen=True)
class AnalysisCost:
    cameras: int
    rate: float
    allocator: str
    frames: int
    cpu_ms_per_frame: float
    wall_ms_per_frame: float
    cores_needed: float
    """CPU seconds per second for ``cameras * rate`` analysed frames a second."""
    full_detections: int
    flow_follows: int
    classifications: int


@functools.cache
def decoded_clip(fps: float = DEFAULT_FPS) -> list[np.ndarray]:
    """The cheap cameras' clip as BGR frames, decoded as the server decodes it."""
    clip = clip_for(None, fps)
    decoder = av.CodecContext.create("vp8", "r")
    return [
        frame.to_ndarray(format="bgr24")
        for packet in clip.packets
        for frame in decoder.decode(av.Packet(packet))
    ]


def measure(
    cameras: int,
    rate: float,
    seconds: float,
    allocator: str,
    clip_fps: float = DEFAULT_FPS,
    models: ModelSettings = ModelSettings(),
) -> AnalysisCost:
    """Analyse ``seconds`` of clip time for every camera (see the module doc); one thread, as the child."""
    if allocator == "heap":
        use_heap_for_analysis()
    else:
        use_fixed_mmap_threshold()
    cv2.setNumThreads(1)
    frames = decoded_clip(clip_fps)
    loaded = load_models(ServerConfig.with_models(models))
    now = [0.0]
    analysers = [
        StreamAnalyser(
            loaded.detector, loaded.classifier, loaded.settings, loaded.region_detector, lambda: now[0]
        )
        for _ in range(cameras)
    ]
    steps = max(int(seconds * rate), 1)
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for step in range(steps):
        for camera, analyser in enumerate(analysers):
            now[0] = step / rate + camera / (rate * cameras)
            # Cameras start at different points of the clip, as the load generator's do.
            analyser.analyse(frames[(int(now[0] * clip_fps) + 37 * camera) % len(frames)])
    cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    total = steps * cameras
    return AnalysisCost(
        cameras=cameras,
        rate=rate,
        allocator=allocator,
        frames=total,
        cpu_ms_per_frame=1000.0 * cpu / total,
        wall_ms_per_frame=1000.0 * wall / total,
        cores_needed=cameras * rate * cpu / total,
        full_detections=sum(a.full_detections for a in analysers),
        flow_follows=sum(a.flow_follows for a in analysers),
        classifications=sum(a.classifications for a in analysers),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--rate", type=float, default=5.0, help="analysed frames/s per camera")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip seconds analysed per camera")
    parser.add_argument("--allocator", choices=("server", "heap"), default="heap")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    cost = measure(args.cameras, args.rate, args.seconds, args.allocator, models=model_settings(args))
    if args.json:
        print(json.dumps(asdict(cost)))
    else:
        print(
            f"{cost.cameras} cameras at {cost.rate:g} analysed/s, allocator {cost.allocator}: "
            f"{cost.cpu_ms_per_frame:.1f} ms CPU per analysed frame ({cost.wall_ms_per_frame:.1f} ms wall), "
            f"{cost.cores_needed:.2f} cores; {cost.frames} frames: {cost.full_detections} full detections, "
            f"{cost.flow_follows} faces moved by the flow, {cost.classifications} faces classified"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
