"""Connect/disconnect cycles of real aiortc cameras against the real app: does anything stay behind?

The app runs in this process, so that its asyncio tasks, threads, open files and memory can be read;
the cameras run in a child process (`scripts.camera_client`), so that what is measured is the server's
own. Every cycle is a full WebRTC session: offer, video and detections flowing, hang-up, and the
server's cleanup. Resources are read after one warm-up session and again after the last cycle.

    python -m scripts.cycle_test --cycles 100              # real detector + classifier
    python -m scripts.cycle_test --cycles 100 --stand-in   # a 5 ms stand-in analyser: media path only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from scripts.resources import ResourceSnapshot, snapshot, task_names
from server.analysis.analyser import AnalyserSource
from server.analysis.process import AnalysisProcess
from server.app import create_app
from server.memory import use_fixed_mmap_threshold
from server.settings import ServerConfig
from tests.media_helpers import SlowAnalyser, serve_app

ROOT = Path(__file__).resolve().parents[1]
# Bounds after N cycles, relative to the snapshot after the warm-up cycle.
MAX_EXTRA_TASKS = 2
MAX_EXTRA_THREADS = 1
MAX_EXECUTOR_THREADS = 32  # asyncio's default pool: min(32, cores + 4) threads at most
MAX_EXTRA_OPEN_FILES = 4
MAX_EXTRA_RSS_MB = 50.0


@dataclass(frozen=True)
class CycleReport:
    cycles: int
    before: ResourceSnapshot
    after: ResourceSnapshot
    cleanup_max_s: float
    cleanup_median_s: float
    seconds: float
    leftover_tasks: list[str]

    def problems(self) -> list[str]:
        """Every bound the run broke, in words; empty when none."""
        found = []
        if self.after.tasks > self.before.tasks + MAX_EXTRA_TASKS:
            found.append(f"tasks {self.before.tasks} -> {self.after.tasks}: {self.leftover_tasks}")
        if self.after.threads > self.before.threads + MAX_EXTRA_THREADS:
            found.append(f"threads {self.before.threads} -> {self.after.threads}")
        if self.after.executor_threads > MAX_EXECUTOR_THREADS:
            found.append(f"executor threads {self.after.executor_threads}")
        if self.after.open_files > self.before.open_files + MAX_EXTRA_OPEN_FILES:
            found.append(f"open files {self.before.open_files} -> {self.after.open_files}")
        if self.after.rss_mb > self.before.rss_mb + MAX_EXTRA_RSS_MB:
            found.append(f"RSS {self.before.rss_mb:.1f} -> {self.after.rss_mb:.1f} MB")
        return found

    def summary(self) -> str:
        return "\n".join(
            [
                f"cycles:  {self.cycles} in {self.seconds:.1f} s",
                f"before:  {self.before}",
                f"after:   {self.after}",
                f"change:  tasks {self.after.tasks - self.before.tasks:+d}, "
                f"threads {self.after.threads - self.before.threads:+d}, "
                f"open files {self.after.open_files - self.before.open_files:+d}, "
                f"RSS {self.after.rss_mb - self.before.rss_mb:+.1f} MB",
                f"cleanup after hang-up: median {self.cleanup_median_s:.2f} s, "
                f"max {self.cleanup_max_s:.2f} s",
            ]
        )


async def wait_healthy(http: aiohttp.ClientSession, base_url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with http.get(f"{base_url}/healthz") as response:
                if response.status == 200:
                    return
        if time.monotonic() > deadline:
            raise TimeoutError(f"/healthz not 200 within {timeout} s")
        await asyncio.sleep(0.1)


async def run_camera_process(
    base_url: str, cycles: int, on_session: Callable[[dict[str, Any]], None] | None = None
) -> list[dict[str, Any]]:
    """Run `cycles` sessions from a child camera process; returns its per-session JSON lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scripts.camera_client",
        "--url",
        base_url,
        "--cycles",
        str(cycles),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    sessions = []
    while line := await process.stdout.readline():
        session = json.loads(line)
        sessions.append(session)
        if on_session is not None:
            on_session(session)
    stderr = await process.stderr.read()
    if await process.wait() != 0:
        raise RuntimeError(f"camera process failed:\n{stderr.decode(errors='replace')[-3000:]}")
    return sessions


async def settled_snapshot(before: ResourceSnapshot, timeout: float = 5.0) -> ResourceSnapshot:
    """A snapshot once background cleanup had a moment (closing tasks end a little after hang-up)."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        now = snapshot()
        settled = now.tasks <= before.tasks and now.threads <= before.threads
        if settled or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.1)


async def run_cycles(
    app: web.Application,
    cycles: int,
    progress: Callable[[int, ResourceSnapshot], None] | None = None,
) -> CycleReport:
    """Serve `app` and run `cycles` sessions one after the other (after one warm-up session)."""
    async with serve_app(app) as base_url, aiohttp.ClientSession() as http:
        await wait_healthy(http, base_url)
        await run_camera_process(base_url, 1)
        await asyncio.sleep(0.5)
        gc.collect()
        before = snapshot()
        started = time.monotonic()

        def on_session(session: dict[str, Any]) -> None:
            if progress is not None:
                progress(int(session["cycle"]), snapshot())

        sessions = await run_camera_process(base_url, cycles, on_session)
        seconds = time.monotonic() - started
        after = await settled_snapshot(before)
        leftover = task_names()
    cleanup = [float(session["released_s"]) for session in sessions]
    return CycleReport(
        cycles=len(sessions),
        before=before,
        after=after,
        cleanup_max_s=max(cleanup, default=0.0),
        cleanup_median_s=statistics.median(cleanup) if cleanup else 0.0,
        seconds=seconds,
        leftover_tasks=leftover,
    )


def stand_in_analyser(_: ServerConfig) -> AnalyserSource:
    return SlowAnalyser(0.005)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--stand-in", action="store_true", help="a 5 ms stand-in instead of the real models")
    parser.add_argument("--classifier", type=Path, default=ServerConfig().classifier)
    parser.add_argument("--every", type=int, default=10, help="print resources every N cycles")
    parser.add_argument(
        "--glibc-default-malloc",
        action="store_true",
        help="keep glibc's dynamic mmap threshold, not run_server.py's (server/memory.py)",
    )
    args = parser.parse_args(argv)
    if not args.glibc_default_malloc and use_fixed_mmap_threshold():
        print("malloc: fixed mmap threshold, as run_server.py sets it (server/memory.py)")

    config = replace(ServerConfig(), classifier=args.classifier, offers_per_minute=0)
    factory = stand_in_analyser if args.stand_in else AnalysisProcess

    def progress(done: int, now: ResourceSnapshot) -> None:
        if done % args.every == 0:
            print(f"  after {done:4d} cycles: {now}", flush=True)

    async def run() -> CycleReport:
        return await run_cycles(create_app(config, source_factory=factory), args.cycles, progress)

    report = asyncio.run(run())
    print(report.summary())
    problems = report.problems()
    print("RESULT:", "PASS" if not problems else "FAIL: " + "; ".join(problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
