"""The server's capacity in cameras, measured with cameras that cost little (`bench.cheap_cameras`).

For each overlay mode and camera count a fresh server is started (`bench.resources.BenchServer`) and one
load-generator process connects every camera at once; the server (its process and its analysis process)
is sampled over the generator's measured window. The generator's own CPU is reported beside the server's,
so a reader sees what the clients took from the same cores. Modes and counts are interleaved, and the
whole matrix is repeated, so that the variants see the same machine (the load of other work) side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.resources import PROJECT_ROOT, BenchServer, ProcessSampler, module_command


@dataclass
class CapacityRun:
    overlay: str
    cameras: int
    fps: float
    repeat: int
    server_cpu_percent: float | None
    """The server and its analysis process, over the window (100 = one core)."""
    analysis_cpu_percent: float | None
    """The analysis process alone."""
    server_cpu_per_camera: float | None
    """Core-seconds of the server (analysis included) per camera-second."""
    server_peak_rss_mb: float
    machine_cpu_percent: float | None
    generator_cpu_percent: float | None
    load_average: list[float] = field(default_factory=list)
    """The machine's 1/5/15-min load averages at the end of the run (other work included)."""
    per_camera: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def run_capacity(
    overlay: str,
    cameras: int,
    fps: float,
    duration: float,
    warmup: float,
    repeat: int,
    server_args: Sequence[str],
    log_dir: Path,
    clip: Path,
    model_flags: Sequence[str] = (),
) -> CapacityRun:
    """A fresh server, `cameras` cheap cameras in one generator process: the measured window's figures.

    ``model_flags`` are the server's model flags: the generator's reference (what the models say of each
    frame alone, for the label agreement) is made with the same models."""
    name = f"{overlay}-{cameras}-{repeat}"
    output = log_dir / f"cameras-{name}.json"
    with (
        BenchServer(max(cameras, 4), server_args, log_dir / f"server-{name}.log") as server,
        ProcessSampler(server.process.pid if server.process else 0) as sampler,
    ):
        generator = subprocess.run(
            module_command(
                "bench.cheap_cameras",
                url=server.url,
                cameras=cameras,
                overlay=overlay,
                fps=fps,
                duration=duration,
                warmup=warmup,
                clip=clip,
                json=output,
            )
            + list(model_flags),
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(log_dir / f"cameras-{name}.log").open("wb"),
            timeout=duration + warmup + 180,
            check=False,
        )
    try:
        result = json.loads(output.read_text())
    except (OSError, ValueError) as exc:
        result = {"error": f"no result from the generator (exit {generator.returncode}): {exc}"}
    if "error" in result or "window_start_unix" not in result:
        return CapacityRun(
            overlay, cameras, fps, repeat, None, None, None, sampler.peak_rss_mb(), None, None,
            list(os.getloadavg()), error=str(result.get("error")),
        )  # fmt: skip
    start, end = result["window_start_unix"], result["window_end_unix"]
    server_cpu, machine_cpu = sampler.cpu_percent(start, end)
    per_camera = result["per_camera"]
    errors = [c["error"] for c in per_camera if c.get("error")]
    return CapacityRun(
        overlay=overlay,
        cameras=cameras,
        fps=fps,
        repeat=repeat,
        server_cpu_percent=server_cpu,
        analysis_cpu_percent=sampler.children_cpu_percent(start, end),
        server_cpu_per_camera=server_cpu / 100.0 / cameras if server_cpu is not None else None,
        server_peak_rss_mb=sampler.peak_rss_mb(),
        machine_cpu_percent=machine_cpu,
        generator_cpu_percent=result["generator_cpu_percent"],
        load_average=list(os.getloadavg()),
        per_camera=per_camera,
        error="; ".join(errors) or None,
    )


def run_matrix(
    modes: Sequence[str],
    counts: Sequence[int],
    repeats: int,
    fps: float,
    duration: float,
    warmup: float,
    server_args: Sequence[str],
    model_flags: Sequence[str] = (),
) -> list[CapacityRun]:
    """Every (mode, count) once per repeat, modes interleaved within each count."""
    log_dir = Path(tempfile.mkdtemp(prefix="maskcam-capacity-"))
    print(f"capacity benchmark logs: {log_dir}", file=sys.stderr)
    clip = log_dir / "clip.npz"
    runs = []
    for repeat in range(1, repeats + 1):
        for cameras in counts:
            for overlay in modes:
                run = run_capacity(
                    overlay, cameras, fps, duration, warmup, repeat, server_args, log_dir, clip, model_flags
                )
                print(summary_line(run), file=sys.stderr, flush=True)
                runs.append(run)
    return runs


def _worst(run: CapacityRun, key: str, lowest: bool) -> float | None:
    values = [c[key] for c in run.per_camera if c.get(key) is not None]
    if not values:
        return None
    return float(min(values) if lowest else max(values))


def _mean(run: CapacityRun, key: str) -> float | None:
    values = [c[key] for c in run.per_camera if c.get(key) is not None]
    return sum(values) / len(values) if values else None


def run_figures(run: CapacityRun) -> dict[str, float | None]:
    """The figures of one run that the tables and targets use: worst camera where it matters."""
    return {
        "server_cpu_per_camera": run.server_cpu_per_camera,
        "media_cpu_per_camera": (run.server_cpu_percent - run.analysis_cpu_percent) / 100.0 / run.cameras
        if run.server_cpu_percent is not None and run.analysis_cpu_percent is not None
        else None,
        "server_cpu_percent": run.server_cpu_percent,
        "analysis_cpu_percent": run.analysis_cpu_percent,
        "generator_cpu_percent": run.generator_cpu_percent,
        "analysed_per_s_min": _worst(run, "analysed_per_s", True),
        "analysed_per_s_mean": _mean(run, "analysed_per_s"),
        "latency_p50_ms": _mean(run, "latency_p50_ms"),
        "latency_p95_ms_max": _worst(run, "latency_p95_ms", False),
        "latency_growth_max": _worst(run, "latency_growth", False),
        "messages_lost": float(sum(c.get("messages_lost", 0) for c in run.per_camera)),
        "time_to_find_max_s": _worst(run, "time_to_find_max_s", False),
        "faces_not_found": float(sum(c["faces_entered"] - c["faces_found"] for c in run.per_camera)),
        "label_agreement_min": _worst(run, "label_agreement", True),
        "label_agreement_mean": _mean(run, "label_agreement"),
        "label_agreement_truth_min": _worst(run, "label_agreement_truth", True),
        "server_peak_rss_mb": run.server_peak_rss_mb,
        "sessions_dropped": float(sum(1 for c in run.per_camera if not c.get("connected_at_end", True))),
        "cameras_silent_at_end": float(sum(1 for c in run.per_camera if c.get("silent_at_end", False))),
        "load_1min": run.load_average[0] if run.load_average else None,
    }


def summary_line(run: CapacityRun) -> str:
    if run.error and not run.per_camera:
        return f"{run.overlay} x{run.cameras} (run {run.repeat}): error {run.error}"
    f = run_figures(run)
    return (
        f"{run.overlay} x{run.cameras} (run {run.repeat}): "
        f"server {_n(f['server_cpu_per_camera'], 3)} core/camera, "
        f"analysed/s min {_n(f['analysed_per_s_min'])}, p95 {_n(f['latency_p95_ms_max'], 0)} ms, "
        f"find max {_n(f['time_to_find_max_s'], 2)} s, agreement min {_n(f['label_agreement_min'], 2)}, "
        f"generator {_n(run.generator_cpu_percent, 0)} %, load {_n(f['load_1min'], 2)}"
    )


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _range(values: Sequence[float | None], digits: int) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    low, high = min(known), max(known)
    return (
        _n(low, digits)
        if f"{low:.{digits}f}" == f"{high:.{digits}f}"
        else f"{_n(low, digits)}-{_n(high, digits)}"
    )


TABLE_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("server core / camera", "server_cpu_per_camera", 3),
    ("of it without the analysis", "media_cpu_per_camera", 3),
    ("analysis process %", "analysis_cpu_percent", 0),
    ("analysed/s (worst camera)", "analysed_per_s_min", 1),
    ("latency p50 ms", "latency_p50_ms", 0),
    ("latency p95 ms (worst)", "latency_p95_ms_max", 0),
    ("growth (worst)", "latency_growth_max", 2),
    ("time to find, max s", "time_to_find_max_s", 2),
    ("faces not found", "faces_not_found", 0),
    ("label agreement (worst)", "label_agreement_min", 2),
    ("agreement with annotations (worst)", "label_agreement_truth_min", 2),
    ("messages lost", "messages_lost", 0),
    ("peak RSS MB", "server_peak_rss_mb", 0),
    ("generator CPU %", "generator_cpu_percent", 0),
    ("load avg 1 min", "load_1min", 1),
)


def capacity_table(runs: Sequence[CapacityRun]) -> str:
    """One row per (mode, cameras): the range over the repeats of each figure."""
    header = "| mode | cameras | runs | " + " | ".join(title for title, _, _ in TABLE_COLUMNS) + " |"
    lines = [header, "|" + "---|" * (3 + len(TABLE_COLUMNS))]
    keys = sorted({(run.overlay, run.cameras) for run in runs}, key=lambda k: (k[0] != "page", k[1]))
    for overlay, cameras in keys:
        group = [run for run in runs if run.overlay == overlay and run.cameras == cameras]
        ok = [run for run in group if run.per_camera]
        figures = [run_figures(run) for run in ok]
        cells = [_range([f[key] for f in figures], digits) for _, key, digits in TABLE_COLUMNS]
        failed = len(group) - len(ok)
        runs_cell = f"{len(ok)}" + (f" (+{failed} failed)" if failed else "")
        lines.append(f"| {overlay} | {cameras} | {runs_cell} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


PAGE_16_TARGETS: tuple[tuple[str, str, bool, float], ...] = (
    ("each camera >= 5 analysed/s", "analysed_per_s_min", True, 5.0),
    ("latency p95 <= 250 ms", "latency_p95_ms_max", False, 250.0),
    ("latency growth <= 1.2", "latency_growth_max", False, 1.2),
    ("server <= 0.10 core per camera", "server_cpu_per_camera", False, 0.10),
    ("peak RSS <= 1536 MB", "server_peak_rss_mb", False, 1536.0),
    ("no session dropped", "sessions_dropped", False, 0.0),
    ("label agreement >= 0.9", "label_agreement_min", True, 0.9),
)
"""Issue 22's targets for 16 page-mode cameras: (name, figure, whether the lowest value is the worst,
threshold)."""


def capacity_targets(runs: Sequence[CapacityRun]) -> list[dict[str, Any]]:
    """Issue 22's targets, each with its worst value over the repeats and whether every run met it."""
    checks: list[dict[str, Any]] = []

    def check(
        name: str, figures: list[dict[str, float | None]], key: str, lowest: bool, limit: float
    ) -> None:
        values = [f[key] for f in figures]
        known = [v for v in values if v is not None]
        worst = (min(known) if lowest else max(known)) if known else None
        met = bool(known) and len(known) == len(values)
        met = met and all(v >= limit if lowest else v <= limit for v in known)
        checks.append({"target": name, "value": worst, "met": met})

    def figures(overlay: str, cameras: int) -> list[dict[str, float | None]]:
        return [run_figures(r) for r in runs if r.overlay == overlay and r.cameras == cameras]

    page16, page4 = figures("page", 16), figures("page", 4)
    if page16:
        for name, key, lowest, limit in PAGE_16_TARGETS:
            check(f"page 16: {name}", page16, key, lowest, limit)
    if page4:
        check("page 4: each camera >= 12 analysed/s", page4, "analysed_per_s_min", True, 12.0)
    every = [run_figures(r) for r in runs if r.per_camera]
    if every:
        check("every load: a face that enters is found within 1 s", every, "time_to_find_max_s", False, 1.0)
        check("every load: no face that entered went unfound", every, "faces_not_found", False, 0.0)
    return checks
