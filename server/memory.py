"""glibc allocator setting that keeps the server's memory flat over many sessions.

Frame-sized buffers (0.5-1 MB) come and go with every session. glibc raises its mmap threshold as large
blocks are freed, after which such buffers come from the heap and stay resident: RSS rose about 50 MB over
100 sessions (docs/DEPLOY.md, scripts/cycle_test.py). A fixed threshold of 128 KiB makes them mmapped and
returned to the system when freed (+9 MB over 100 sessions). The deployments set MALLOC_MMAP_THRESHOLD_;
`run_server.py` applies the same value itself, so that a plain `python run_server.py` gets it too.
"""

from __future__ import annotations

import ctypes
import os

MMAP_THRESHOLD_BYTES = 128 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter numbers
_M_TRIM_THRESHOLD = -1

ANALYSIS_MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
"""glibc's largest mmap threshold: every buffer of the detector and the classifier comes from the heap."""
ANALYSIS_TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def use_fixed_mmap_threshold(environ: dict[str, str] | None = None) -> bool:
    """Set glibc's mmap threshold unless the operator already chose one; True when set here."""
    environment = os.environ if environ is None else environ
    if "MALLOC_MMAP_THRESHOLD_" in environment:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS): nothing to do
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def use_heap_for_analysis() -> bool:
    """In the analysis process: keep the models' per-frame buffers on the heap, whatever the environment
    says; True when set.

    The detector allocates and frees megabytes of buffers on every frame. Above the 128 KiB threshold that
    the server process uses (and that deployments put in the environment, which the child inherits) each
    of them was a fresh mmap, page-faulted in and unmapped again: a frame of full detection took 1.6x as
    long (bench/RESULTS.md, issue 22). Its buffers have the same sizes frame after frame, so on the heap
    they are reused and its memory stays flat; a high trim threshold keeps the heap's top from being
    returned and faulted in again on every frame.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, ANALYSIS_MMAP_THRESHOLD_BYTES)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, ANALYSIS_TRIM_THRESHOLD_BYTES)
    )
