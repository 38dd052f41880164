"""Several real WebRTC cameras against the real server: video rate, detection rate, latency, CPU, memory.

For each client count the server is started fresh (``python run_server.py``, a subprocess), the clients
(``python -m bench.client``, one process each) stream at the same time, and the server (its process and
its analysis process together) is sampled with psutil: CPU % over the measured window (100 % = one core)
and peak RSS. On a small machine the clients share the CPU with the server, which the results state.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from scripts.resources import tree_usage

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class StreamRun:
    clients: int
    per_client: list[dict[str, Any]]
    server_cpu_percent: float | None
    server_peak_rss_mb: float
    machine_cpu_percent: float | None
    server_args: list[str] = field(default_factory=list)
    error: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the server was not healthy within {timeout:.0f} s")


class ProcessSampler:
    """Samples a process's CPU times and RSS, its children's included (the server's analysis process),
    and the machine's CPU, in a thread, twice a second."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self.samples: list[tuple[float, float, float, float]] = []
        """(unix time, process CPU seconds, RSS bytes, machine busy CPU seconds)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss, cpu_seconds = tree_usage(self._process)
            except psutil.Error:
                return
            machine = psutil.cpu_times()
            busy = machine.user + machine.system + machine.nice + getattr(machine, "irq", 0.0)
            busy += getattr(machine, "softirq", 0.0)
            self.samples.append((time.time(), cpu_seconds, float(rss), busy))
            self._stop.wait(self._interval)

    def cpu_percent(self, start: float, end: float) -> tuple[float | None, float | None]:
        """Process and machine CPU % (100 = one core) between two unix times."""
        window = [s for s in self.samples if start <= s[0] <= end]
        if len(window) < 2:
            return None, None
        elapsed = window[-1][0] - window[0][0]
        process = (window[-1][1] - window[0][1]) / elapsed * 100.0
        machine = (window[-1][3] - window[0][3]) / elapsed * 100.0
        return process, machine

    def peak_rss_mb(self) -> float:
        return max((s[2] for s in self.samples), default=0.0) / 2**20


def run_streams(
    clients: int, duration: float, warmup: float, server_args: Sequence[str], log_dir: Path
) -> StreamRun:
    """One fresh server, `clients` client processes at once; the figures of the measured window."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        str(PROJECT_ROOT / "run_server.py"),
        "--port",
        str(port),
        "--max-sessions",
        str(max(clients, 4)),
        "--offers-per-minute",
        "0",
        "--log-level",
        "WARNING",
        *server_args,
    ]
    log_path = log_dir / f"server-{clients}-clients.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url, server)
        with ProcessSampler(server.pid) as sampler:
            outputs = [log_dir / f"client-{clients}-{i}.json" for i in range(clients)]
            processes = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.client",
                        "--url",
                        url,
                        "--duration",
                        str(duration),
                        "--warmup",
                        str(warmup),
                        "--json",
                        str(output),
                    ],
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
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


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
