"""Optional recording of a session to disk (`--record DIR`): the only way anything of a camera reaches disk.

Per session, under DIR:
- `<start>-<session>-<n>.mp4`: the annotated analysed frames, as the page saw them (a new numbered
  segment when the frame size changes or every `segment_seconds`); fragmented MP4, so a segment stays
  playable even if the process dies mid-write;
- `<start>-<session>.jsonl`: one line per recorded frame with the data-channel message.

`add()` never blocks the event loop: frames go into a bounded queue that a writer thread encodes; when
the queue is full the frame is dropped and counted. Call `close()` (blocking: flushes and joins) from a
thread, e.g. `await asyncio.to_thread(recorder.close)`.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
from av.video.stream import VideoStream

_log = logging.getLogger(__name__)
_TIME_BASE = Fraction(1, 1000)
_CODEC_PREFERENCE = ("libx264", "h264", "mpeg4")


def pick_video_codec() -> str:
    """The first codec of `_CODEC_PREFERENCE` that this PyAV build can encode."""
    for name in _CODEC_PREFERENCE:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # PyAV raises different errors for unknown and for decoder-only codecs
            continue
        return name
    raise RuntimeError(f"PyAV here encodes none of {', '.join(_CODEC_PREFERENCE)}")


def safe_file_stem(text: str) -> str:
    """Keep a client-influenced id from naming a path outside the recording folder."""
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", text)[:64]
    return stem or "session"


@dataclass
class _Item:
    frame: np.ndarray
    message: dict[str, Any]
    monotonic: float
    wall: float


class _Segment:
    """One open MP4 file of a fixed frame size."""

    def __init__(self, path: Path, codec: str, width: int, height: int, started: float) -> None:
        self.path = path
        self.width = width
        self.height = height
        self.started = started
        self.frames = 0
        self._last_pts = -1
        self._container = av.open(str(path), "w", options={"movflags": "frag_keyframe+empty_moov"})
        stream = self._container.add_stream(codec, rate=30)
        if not isinstance(stream, VideoStream):
            raise TypeError(f"{codec} is not a video codec")
        self._stream = stream
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = _TIME_BASE
        self._stream.codec_context.thread_count = 1
        if codec == "libx264":
            self._stream.options = {"preset": "ultrafast", "tune": "zerolatency"}

    def encode(self, frame_bgr: np.ndarray, monotonic: float) -> None:
        video_frame = av.VideoFrame.from_ndarray(frame_bgr, format="bgr24")
        pts = max(round((monotonic - self.started) * 1000), self._last_pts + 1)
        video_frame.pts = pts
        video_frame.time_base = _TIME_BASE
        self._last_pts = pts
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()


class SessionRecorder:
    """Records one session's annotated frames and detection messages without blocking the caller."""

    def __init__(
        self,
        directory: Path,
        session_id: str,
        *,
        max_queue: int = 32,
        segment_seconds: float = 600.0,
        codec: str | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.directory = directory
        self.stem = f"{started}-{safe_file_stem(session_id)}"
        self.jsonl_path = directory / f"{self.stem}.jsonl"
        self.segments: list[Path] = []
        self.frames_written = 0
        self.frames_dropped = 0
        self.error: str | None = None
        self._codec = codec or pick_video_codec()
        self._segment_seconds = segment_seconds
        self._segment: _Segment | None = None
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_queue)
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"recorder-{self.stem}", daemon=True)
        self._thread.start()

    def add(self, frame_bgr: np.ndarray, message: dict[str, Any]) -> None:
        """Queue a copy of the frame and its message; drop (and count) it when the writer is behind."""
        if self._closed or self.error is not None or frame_bgr.size == 0:
            self.frames_dropped += 1
            return
        item = _Item(
            np.array(frame_bgr, dtype=np.uint8, copy=True), dict(message), time.monotonic(), time.time()
        )
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.frames_dropped += 1

    def close(self) -> None:
        """Write what is queued, finish the files and stop the writer thread. Idempotent; blocks."""
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        jsonl: IO[str] | None = None
        try:
            jsonl = self.jsonl_path.open("a", encoding="utf-8")
            while (item := self._queue.get()) is not None:
                if self.error is None:
                    self._write(item, jsonl)
        except Exception as exc:
            self._fail(exc)
            # Keep consuming so that close() never blocks on a full queue.
            while self._queue.get() is not None:
                pass
        finally:
            self._finish(jsonl)

    def _write(self, item: _Item, jsonl: IO[str]) -> None:
        try:
            frame = _even_sized_bgr(item.frame)
            segment = self._segment_for(frame, item.monotonic)
            segment.encode(frame, item.monotonic)
            record = {
                "time": round(item.wall, 3),
                "segment": segment.path.name,
                "segment_frame": segment.frames - 1,
                "message": item.message,
            }
            jsonl.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.frames_written += 1
        except Exception as exc:
            self._fail(exc)

    def _segment_for(self, frame: np.ndarray, monotonic: float) -> _Segment:
        height, width = frame.shape[:2]
        segment = self._segment
        if (
            segment is not None
            and (segment.width, segment.height) == (width, height)
            and monotonic - segment.started < self._segment_seconds
        ):
            return segment
        if segment is not None:
            self._segment = None
            segment.close()
        path = self.directory / f"{self.stem}-{len(self.segments):04d}.mp4"
        self._segment = _Segment(path, self._codec, width, height, monotonic)
        self.segments.append(path)
        return self._segment

    def _fail(self, exc: Exception) -> None:
        """Stop recording (the session itself goes on) and keep draining the queue until close()."""
        if self.error is None:
            self.error = f"{type(exc).__name__}: {exc}"
            _log.error("recording stopped", extra={"recording": self.stem, "error": self.error})

    def _finish(self, jsonl: IO[str] | None) -> None:
        try:
            if self._segment is not None:
                self._segment.close()
                self._segment = None
        except Exception as exc:
            self._fail(exc)
        finally:
            if jsonl is not None:
                jsonl.close()


def _even_sized_bgr(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: pad odd frames with one black row/column; grey and BGRA become BGR."""
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    elif frame.shape[2] == 4:
        frame = frame[:, :, :3]
    height, width = frame.shape[:2]
    pad_bottom, pad_right = height % 2, width % 2
    if pad_bottom or pad_right:
        frame = np.pad(frame, ((0, pad_bottom), (0, pad_right), (0, 0)))
    return np.ascontiguousarray(frame)
