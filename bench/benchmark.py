"""The speed benchmark, in one command and one process tree: pipeline cost per frame, live streams, and
the server's capacity in cameras in both overlay modes.

    python -m bench.benchmark [--quick] [--duration 30] [--repeats 3] [--json bench/results.json]

The streams are real encoding clients at 30 fps with the annotated video back (issues 4 and 10); the
capacity runs (`bench.capacity`) use cameras that cost little (`bench.cheap_cameras`), 1/4/8/16 of them,
with the page-drawn and the server-drawn overlay, so that the server is measured rather than its clients.
Prints a table for each part, the machine it ran on (and its load: other work on it skews every figure),
and whether each target of issues 4 and 22 was met.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.capacity import CapacityRun, capacity_table, capacity_targets, run_matrix
from bench.detector_bench import DetectorTiming, detector_table, run_detector_bench
from bench.pipeline_bench import PipelineSettings, VariantResult, results_table, run_pipelines
from bench.stream_bench import StreamRun, run_all, streams_table
from vision.model_options import add_model_arguments, model_settings
from vision.settings_fields import as_flags

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def machine_description() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_start": list(os.getloadavg()),
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def check_targets(pipeline: Sequence[VariantResult], streams: Sequence[StreamRun]) -> list[dict[str, Any]]:
    """Issue 4's targets, each with the measured value and whether it was met."""
    checks: list[dict[str, Any]] = []

    def check(name: str, value: float | None, ok: bool) -> None:
        checks.append({"target": name, "value": value, "met": bool(ok) and value is not None})

    by_variant = {r.variant: r for r in pipeline}
    baseline, per_frame, stream = (by_variant.get(v) for v in ("baseline", "per_frame", "stream"))
    if baseline and stream:
        ratio = stream.fps / baseline.fps
        check("pipeline fps >= 3x baseline", ratio, ratio >= 3.0)
    if per_frame and stream:
        for metric in ("recall", "recall_40px", "accuracy_binary", "accuracy_3class"):
            a, b = getattr(stream, metric), getattr(per_frame, metric)
            if a is not None and b is not None:
                check(f"stream {metric} within 0.02 of per-frame", a - b, a >= b - 0.02)
    runs = {run.clients: run for run in streams}

    def clients_of(count: int) -> list[dict[str, Any]]:
        run = runs.get(count)
        return [c for c in run.per_client if not c.get("error")] if run else []

    def worst(clients: list[dict[str, Any]], key: str, lowest: bool) -> float | None:
        values = [c[key] for c in clients if c.get(key) is not None]
        if not values:
            return None
        return float(min(values) if lowest else max(values))

    if 1 in runs:
        one = clients_of(1)
        fps, det = worst(one, "fps_received", True), worst(one, "detections_per_s", True)
        p95 = worst(one, "latency_p95_ms", False)
        check("1 client: fps received >= 29", fps, fps is not None and fps >= 29)
        check("1 client: analysed frames/s >= 20", det, det is not None and det >= 20)
        check("1 client: latency p95 <= 150 ms", p95, p95 is not None and p95 <= 150)
    if 4 in runs:
        four = clients_of(4)
        complete = len(four) == 4
        fps, det = worst(four, "fps_received", True), worst(four, "detections_per_s", True)
        p95, growth = worst(four, "latency_p95_ms", False), worst(four, "latency_growth", False)
        check("4 clients: each fps received >= 25", fps, complete and fps is not None and fps >= 25)
        check("4 clients: each analysed frames/s >= 6", det, complete and det is not None and det >= 6)
        check("4 clients: latency p95 <= 250 ms", p95, complete and p95 is not None and p95 <= 250)
        check("4 clients: last-5 s latency <= 1.2x first", growth, growth is not None and growth <= 1.2)
        rss = runs[4].server_peak_rss_mb
        check("4 clients: server peak RSS <= 1200 MB", rss, rss <= 1200)
    return checks


def targets_table(checks: Sequence[dict[str, Any]]) -> str:
    lines = ["| target | measured | met |", "|---|---|---|"]
    for item in checks:
        value = "-" if item["value"] is None else f"{item['value']:.2f}"
        lines.append(f"| {item['target']} | {value} | {'yes' if item['met'] else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: few frames, 8 s streams")
    parser.add_argument("--duration", type=float, help="measured seconds per stream run (default 30)")
    parser.add_argument(
        "--warmup",
        type=float,
        help="unmeasured seconds after the first returned frame (default 20, quick 3: aiortc's encoders take "
        "about 15 s to ramp their bitrate from 0.5 to 1.5 Mbit/s; the window measures the steady state)",
    )
    parser.add_argument("--clients", default="1,2,4", help="client counts, comma-separated")
    parser.add_argument("--images", type=int, help="test photos per scene dataset (default 20, quick 4)")
    parser.add_argument("--frames-per-image", type=int, help="clip length per photo (default 10, quick 5)")
    parser.add_argument(
        "--server-arg", action="append", default=[], help="extra run_server.py argument (repeatable)"
    )
    parser.add_argument(
        "--cameras", default="1,4,8,16", help="cheap-camera counts of the capacity runs (bench.capacity)"
    )
    parser.add_argument("--overlays", default="page,server", help="overlay modes of the capacity runs")
    parser.add_argument("--camera-fps", type=float, default=15.0, help="frame rate of the cheap cameras")
    parser.add_argument(
        "--repeats", type=int, default=1, help="capacity runs of every mode and count, interleaved"
    )
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-streams", action="store_true")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--json", type=Path, help="write all results here")
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    models = model_settings(args)
    if not models.classifier.is_file():
        parser.error(f"classifier {models.classifier} not found: train it first or pass --classifier")
    duration = args.duration or (8.0 if args.quick else 30.0)
    warmup = args.warmup if args.warmup is not None else (3.0 if args.quick else 20.0)
    images = args.images or (4 if args.quick else 20)
    frames_per_image = args.frames_per_image or (5 if args.quick else 10)
    # The streams' server runs the same models as the pipeline rows (every model flag given here).
    server_args = [*as_flags(models), *args.server_arg]

    machine = machine_description()
    print(f"machine: {machine['cpus']} CPUs, {machine['cpu_model']}, load {machine['load_average_start']}")
    pipeline: list[VariantResult] = []
    detectors: list[DetectorTiming] = []
    if not args.skip_pipeline:
        settings = PipelineSettings(models.classifier, images, frames_per_image, detector=models.detector)
        pipeline = run_pipelines(settings)
        print("\nPipeline (ms per 640x480 frame, mean over all frames; fps = 1000 / total):")
        print(results_table(pipeline))
        detectors = run_detector_bench(images)
        print("\nFace detectors alone (ms per call on the same frames, one thread, interleaved):")
        print(detector_table(detectors))
    streams: list[StreamRun] = []
    if not args.skip_streams:
        counts = [int(n) for n in args.clients.split(",") if n.strip()]
        streams = run_all(counts, duration, warmup, server_args)
        print(f"\nStreams ({duration:.0f} s measured per run; clients and server share this machine's CPUs):")
        print(streams_table(streams))
    capacity: list[CapacityRun] = []
    if not args.skip_capacity:
        camera_counts = [int(n) for n in args.cameras.split(",") if n.strip()]
        modes = [mode.strip() for mode in args.overlays.split(",") if mode.strip()]
        capacity = run_matrix(
            modes,
            camera_counts,
            args.repeats,
            args.camera_fps,
            duration,
            min(warmup, 5.0),
            server_args,
            model_flags=as_flags(models),
        )
        print(
            f"\nCapacity (cheap cameras at {args.camera_fps:g} fps, {duration:.0f} s measured per run; "
            f"ranges over {args.repeats} run(s); the generator's own CPU beside the server's):"
        )
        print(capacity_table(capacity))
    machine["load_average_end"] = list(os.getloadavg())
    checks = check_targets(pipeline, streams) + capacity_targets(capacity)
    print("\nTargets:")
    print(targets_table(checks))
    print(f"\nload average at start {machine['load_average_start']}, at end {machine['load_average_end']}")
    if args.json:
        report = {
            "machine": machine,
            "settings": {
                "quick": args.quick,
                "duration_s": duration,
                "warmup_s": warmup,
                "images_per_dataset": images,
                "frames_per_image": frames_per_image,
                "classifier": str(models.classifier),
                "server_args": server_args,
            },
            "pipeline": [asdict(r) for r in pipeline],
            "detectors": [asdict(r) for r in detectors],
            "streams": [asdict(run) for run in streams],
            "capacity": [asdict(run) for run in capacity],
            "targets": checks,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
