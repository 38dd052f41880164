"""The shared analysis worker: one-slot mailboxes, round-robin between sessions, clean stop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import numpy as np

from server.analysis.analyser import AnalysisResult
from server.analysis.worker import AnalysisWorker
from server.metrics import ServerMetrics
from tests.media_helpers import SlowAnalyser, blank_frame
from vision.pipeline import Detection


class GatedAnalyser:
    """Blocks in analyse() until released, so that tests can submit frames while it is busy."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.seen: list[int] = []

    def open_stream(self) -> GatedAnalyser:
        return self

    def analyse(self, image: np.ndarray) -> list[Detection]:
        self.started.set()
        self.release.wait(5.0)
        self.seen.append(int(image[0, 0, 0]))
        return []


def numbered(value: int) -> np.ndarray:
    image = blank_frame(64, 48)
    image[0, 0, 0] = value
    return image


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_newer_frame_replaces_the_pending_one() -> None:
    analyser = GatedAnalyser()
    metrics = ServerMetrics()
    worker = AnalysisWorker(analyser, metrics)
    results: list[AnalysisResult] = []
    worker.open("a", asyncio.get_running_loop(), results.append)
    worker.start()
    try:
        assert worker.submit("a", 0, numbered(0)) is False
        await asyncio.to_thread(analyser.started.wait, 5.0)
        # Frame 0 is being analysed; 1, 2 and 3 arrive meanwhile: only 3 is kept.
        assert worker.submit("a", 1, numbered(1)) is False
        assert worker.submit("a", 2, numbered(2)) is True
        assert worker.submit("a", 3, numbered(3)) is True
        analyser.release.set()
        await wait_until(lambda: len(results) == 2)
    finally:
        worker.stop()
    assert analyser.seen == [0, 3]
    assert [r.number for r in results] == [0, 3]
    assert results[-1].dropped == 2 and results[-1].analysed == 2
    assert (results[-1].width, results[-1].height) == (64, 48)
    assert metrics.frames_dropped.labels(stage="analysis")._value.get() == 2
    assert metrics.frames_analysed._value.get() == 2


async def test_sessions_are_served_round_robin() -> None:
    analyser = SlowAnalyser(0.01)
    worker = AnalysisWorker(analyser)
    order: list[str] = []
    loop = asyncio.get_running_loop()

    def record(session_id: str) -> Callable[[AnalysisResult], None]:
        return lambda _: order.append(session_id)

    for session_id in ("a", "b", "c"):
        worker.open(session_id, loop, record(session_id))
    worker.start()
    try:
        for round_number in range(20):
            for session_id in ("a", "b", "c"):
                worker.submit(session_id, round_number, blank_frame(32, 32))
            await asyncio.sleep(0.005)
        await wait_until(lambda: len(order) >= 12)
    finally:
        worker.stop()
    counts = {session_id: order.count(session_id) for session_id in "abc"}
    assert max(counts.values()) - min(counts.values()) <= 2, counts


async def test_closed_session_gets_no_more_results_and_stop_joins() -> None:
    analyser = GatedAnalyser()
    worker = AnalysisWorker(analyser)
    results: list[AnalysisResult] = []
    worker.open("a", asyncio.get_running_loop(), results.append)
    worker.start()
    worker.submit("a", 0, numbered(0))
    await asyncio.to_thread(analyser.started.wait, 5.0)
    worker.close("a")
    assert worker.sessions == []
    assert worker.submit("a", 1, numbered(1)) is False
    analyser.release.set()
    await asyncio.sleep(0.2)
    assert results == []
    worker.stop()
    assert not worker.running


async def test_a_failing_analysis_does_not_kill_the_worker() -> None:
    class Flaky:
        calls = 0

        def open_stream(self) -> Flaky:
            return self

        def analyse(self, image: np.ndarray) -> list[Detection]:
            self.calls += 1
            if self.calls == 1:
                raise ValueError("bad frame")
            return []

    worker = AnalysisWorker(Flaky())
    results: list[AnalysisResult] = []
    worker.open("a", asyncio.get_running_loop(), results.append)
    worker.start()
    try:
        worker.submit("a", 0, blank_frame(2, 2))
        await asyncio.sleep(0.1)
        worker.submit("a", 1, blank_frame())
        await wait_until(lambda: len(results) == 1)
    finally:
        worker.stop()
    assert results[0].number == 1


async def test_lanes_share_the_sessions_and_one_busy_lane_does_not_hold_up_another() -> None:
    """Two sources (two analysis processes in the server): sessions go to the lane with the fewest, stay
    there (their state lives in that lane's process), and a lane stuck on a frame leaves the other serving."""
    busy, free = GatedAnalyser(), SlowAnalyser(0.0)
    opened: list[str] = []

    class Source:
        def __init__(self, name: str, analyser: GatedAnalyser | SlowAnalyser) -> None:
            self.name, self.analyser = name, analyser

        def open_stream(self) -> GatedAnalyser | SlowAnalyser:
            opened.append(self.name)
            return self.analyser

    worker = AnalysisWorker([Source("busy", busy), Source("free", free)])
    loop = asyncio.get_running_loop()
    results: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    def record(session_id: str) -> Callable[[AnalysisResult], None]:
        return lambda result: results[session_id].append(result.number)

    for session_id in ("a", "b", "c"):
        worker.open(session_id, loop, record(session_id))
    assert opened == ["busy", "free", "busy"]
    assert worker.lanes == [["a", "c"], ["b"]]
    worker.start()
    try:
        assert worker.running
        worker.submit("a", 0, numbered(0))
        await asyncio.to_thread(busy.started.wait, 5.0)
        # Lane 0 is held by session a's frame; session b, in lane 1, is analysed meanwhile.
        for number in range(5):
            worker.submit("b", number, numbered(number))
            await wait_until(lambda: results["b"][-1:] == [number])  # noqa: B023 (awaited here)
        worker.submit("c", 7, numbered(7))
        await asyncio.sleep(0.1)
        assert results["a"] == [] and results["c"] == []
        busy.release.set()
        await wait_until(lambda: results["a"] == [0] and results["c"] == [7])
        worker.close("a")
        assert worker.lanes == [["c"], ["b"]]
        # The next session goes to the lane with fewer sessions (ties: the first).
        worker.open("d", loop, lambda _: None)
        assert worker.lanes == [["c", "d"], ["b"]]
    finally:
        worker.stop()
    assert not worker.running
