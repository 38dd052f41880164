"""Several real WebRTC cameras against the real server: video rate, detection rate, latency, CPU, memory.

For each client count the server is started fresh (`bench.resources.BenchServer`), the clients
(``python -m bench.client``, one process each) stream at the same time, and the server (its process and
its analysis process together) is sampled with psutil (`bench.resources.ProcessSampler`): CPU % over the
measured window (100 % = one core) and peak RSS. On a small machine the clients share the CPU with the
server, which the results state.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.resources import PROJECT_ROOT, BenchServer, ProcessSampler, module_command


@dataclass
class StreamRun:
    clients: int
    per_client: list[dict[str, Any]]
    server_cpu_percent: float | None
    server_peak_rss_mb: float
    machine_cpu_percent: float | None
    server_args: list[str] = field(default_factory=list)
    error: str | None = None


def run_streams(
    clients: int, duration: float, warmup: float, server_args: Sequence[str], log_dir: Path
) -> StreamRun:
    """One fresh server, `clients` client processes at once; the figures of the measured window."""
    outputs = [log_dir / f"client-{clients}-{i}.json" for i in range(clients)]
    with (
        BenchServer(max(clients, 4), server_args, log_dir / f"server-{clients}-clients.log") as server,
        ProcessSampler(server.process.pid if server.process else 0) as sampler,
    ):
        processes = [
            subprocess.Popen(
                module_command("bench.client", url=server.url, duration=duration, warmup=warmup, json=output),
                cwd=PROJECT_ROOT,
                stdout=subprocess.DEVNULL,
                stderr=(log_dir / f"client-{clients}-{i}.log").open("wb"),
            )
            for i, output in enumerate(outputs)
        ]
        try:
            for process in processes:
                process.wait(timeout=duration + warmup + 120)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    per_client = [_read_json(output) for output in outputs]
    windows = [c for c in per_client if "window_start_unix" in c]
    start = max((c["window_start_unix"] for c in windows), default=0.0)
    end = min((c["window_end_unix"] for c in windows), default=0.0)
    server_cpu, machine_cpu = sampler.cpu_percent(start, end)
    errors = [c["error"] for c in per_client if c.get("error")]
    return StreamRun(
        clients=clients,
        per_client=per_client,
        server_cpu_percent=server_cpu,
        server_peak_rss_mb=sampler.peak_rss_mb(),
        machine_cpu_percent=machine_cpu,
        server_args=list(server_args),
        error="; ".join(errors) or None,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {"error": f"no result from {path.name}: {exc}"}
    return data if isinstance(data, dict) else {"error": f"{path.name}: not a JSON object"}


def run_all(
    client_counts: Sequence[int], duration: float, warmup: float, server_args: Sequence[str]
) -> list[StreamRun]:
    log_dir = Path(tempfile.mkdtemp(prefix="maskcam-bench-"))
    print(f"stream benchmark logs: {log_dir}", file=sys.stderr)
    return [run_streams(n, duration, warmup, server_args, log_dir) for n in client_counts]


def _number(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def streams_table(runs: Sequence[StreamRun]) -> str:
    """One row per client of each run, with the server's CPU and memory on every row of its run."""
    lines = [
        "| clients | client | fps received | detections/s | latency p50 ms | latency p95 ms "
        "| first 5 s ms | last 5 s ms | growth | client CPU % | server CPU % | server peak RSS MB "
        "| machine CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for i, client in enumerate(run.per_client):
            if client.get("error"):
                lines.append(f"| {run.clients} | {i} | error: {client['error']} |" + " |" * 10)
                continue
            lines.append(
                f"| {run.clients} | {i} | {_number(client['fps_received'])} "
                f"| {_number(client['detections_per_s'])} | {_number(client['latency_p50_ms'], 0)} "
                f"| {_number(client['latency_p95_ms'], 0)} | {_number(client['latency_first5s_ms'], 0)} "
                f"| {_number(client['latency_last5s_ms'], 0)} | {_number(client['latency_growth'], 2)} "
                f"| {_number(client.get('client_cpu_percent'), 0)} "
                f"| {_number(run.server_cpu_percent, 0)} | {_number(run.server_peak_rss_mb, 0)} "
                f"| {_number(run.machine_cpu_percent, 0)} |"
            )
    return "\n".join(lines)
