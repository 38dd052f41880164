"""CPU priority of the analysis: the video of every camera (decoding, drawing, encoding) comes first, the
analysis takes the CPU that is left. Under load the detection rate falls; the video rate and latency hold
(bench/RESULTS.md has the measurements with several cameras on busy cores).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

import cv2

logger = logging.getLogger(__name__)

ANALYSIS_NICENESS = 10
"""Niceness of the analysis where SCHED_IDLE is refused, and of an analysis thread that runs the models
in the server process (Linux)."""


def lower_analysis_priority() -> None:
    """Give the calling thread, and OpenCV's work in it, a lower CPU priority than the video threads.

    OpenCV runs single-threaded here: its own pool threads would not inherit this thread's niceness,
    and with every core busy with video a second detector thread only adds contention.
    """
    cv2.setNumThreads(1)
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ANALYSIS_NICENESS)
        except OSError as exc:
            logger.warning("cannot lower the analysis thread's priority: %s", exc)


def run_only_on_idle_cpu() -> None:
    """Put every thread of this process under Linux's SCHED_IDLE policy (threads started later inherit it;
    importing numpy has already started OpenBLAS's): the kernel then runs them only when no normal task
    wants the core, and a waking video task preempts them at once. At nice 10 the analysis still took its
    share of a busy core and the video waited for the end of its time slice (bench/RESULTS.md compares
    the two). Falls back to nice 10 where the policy is refused."""
    if not sys.platform.startswith("linux"):
        return
    try:
        for thread in os.listdir("/proc/self/task"):
            os.sched_setscheduler(int(thread), os.SCHED_IDLE, os.sched_param(0))
    except OSError as exc:
        logger.warning("SCHED_IDLE refused (%s); the analysis runs at nice %d", exc, ANALYSIS_NICENESS)
        os.nice(ANALYSIS_NICENESS)
