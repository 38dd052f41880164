"""What a leak would show in this process: asyncio tasks, threads, open file descriptors, resident memory
(with its child processes': the server's analysis process)."""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass

import psutil

from bench.resources import tree_usage

EXECUTOR_THREAD_PREFIX = "asyncio_"
"""run_in_executor/to_thread threads: a pool that grows to a fixed size, then is reused."""


@dataclass(frozen=True)
class ResourceSnapshot:
    tasks: int
    threads: int
    executor_threads: int
    open_files: int
    rss_mb: float

    def __str__(self) -> str:
        return (
            f"tasks={self.tasks} threads={self.threads} (+{self.executor_threads} pool) "
            f"open_files={self.open_files} rss={self.rss_mb:.1f} MB"
        )


def snapshot() -> ResourceSnapshot:
    """Resources of the current process; call from inside its running event loop."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    threads = threading.enumerate()
    pool = [thread for thread in threads if thread.name.startswith(EXECUTOR_THREAD_PREFIX)]
    return ResourceSnapshot(
        tasks=len(tasks),
        threads=len(threads) - len(pool),
        executor_threads=len(pool),
        open_files=len(os.listdir("/proc/self/fd")),
        rss_mb=tree_usage(psutil.Process())[0] / 2**20,
    )


def task_names() -> list[str]:
    """Names of the live tasks (besides the caller), to say what leaked."""
    current = asyncio.current_task()
    return sorted(task.get_name() for task in asyncio.all_tasks() if task is not current and not task.done())
