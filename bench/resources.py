"""What the benchmarks and the soak scripts measure of a running server: its CPU time and memory with its
children's (the analysis process), sampled over a window; and the server itself, started fresh for a run.

The measuring lives here, in `bench`, and `scripts` import it (never the other way round).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def tree_usage(process: psutil.Process) -> tuple[int, float]:
    """RSS (bytes) and CPU seconds of a process and its children (the server's analysis process) together."""
    rss, cpu = 0, 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
            rss += member.memory_info().rss
            cpu += times.user + times.system
        except psutil.Error:
            continue
    return rss, cpu


@dataclass(frozen=True)
class UsageSample:
    unix_time: float
    cpu_seconds: float
    """The process and its children."""
    children_cpu_seconds: float
    """The children alone (the analysis process): the rest is the web side, RTP and video."""
    rss_bytes: float
    machine_busy_seconds: float


class ProcessSampler:
    """Samples a process's CPU times and RSS, its children's included (the server's analysis process),
    and the machine's CPU, in a thread, twice a second."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self.samples: list[UsageSample] = []
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
                own = self._process.cpu_times()
            except psutil.Error:
                return
            machine = psutil.cpu_times()
            busy = machine.user + machine.system + machine.nice + getattr(machine, "irq", 0.0)
            busy += getattr(machine, "softirq", 0.0)
            children = cpu_seconds - own.user - own.system
            self.samples.append(UsageSample(time.time(), cpu_seconds, children, float(rss), busy))
            self._stop.wait(self._interval)

    def window(self, start: float, end: float) -> tuple[UsageSample, UsageSample] | None:
        inside = [s for s in self.samples if start <= s.unix_time <= end]
        return (inside[0], inside[-1]) if len(inside) >= 2 else None

    def cpu_percent(self, start: float, end: float) -> tuple[float | None, float | None]:
        """Process (with children) and machine CPU % (100 = one core) between two unix times."""
        window = self.window(start, end)
        if window is None:
            return None, None
        first, last = window
        elapsed = last.unix_time - first.unix_time
        process = (last.cpu_seconds - first.cpu_seconds) / elapsed * 100.0
        machine = (last.machine_busy_seconds - first.machine_busy_seconds) / elapsed * 100.0
        return process, machine

    def children_cpu_percent(self, start: float, end: float) -> float | None:
        """The children's CPU % (the analysis process) between two unix times."""
        window = self.window(start, end)
        if window is None:
            return None
        first, last = window
        return (
            (last.children_cpu_seconds - first.children_cpu_seconds)
            / (last.unix_time - first.unix_time)
            * 100
        )

    def peak_rss_mb(self) -> float:
        return max((s.rss_bytes for s in self.samples), default=0.0) / 2**20


def module_command(module: str, **options: object) -> list[str]:
    """`python -m module --option value ...` with this interpreter; option names with `_` become `-`."""
    command = [sys.executable, "-m", module]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    return command


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


class BenchServer:
    """`python run_server.py` on a free port for one benchmark run, with no offer rate limit; stopped
    (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, max_sessions: int, server_args: Sequence[str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._command = [
            sys.executable,
            str(PROJECT_ROOT / "run_server.py"),
            "--port",
            str(self.port),
            "--max-sessions",
            str(max_sessions),
            "--offers-per-minute",
            "0",
            "--log-level",
            "WARNING",
            *server_args,
        ]
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BenchServer:
        with self._log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self._command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)
            )
        try:
            wait_healthy(self.url, self.process)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
