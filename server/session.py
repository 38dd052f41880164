"""One WebRTC peer per camera, and the registry that caps how many run at once.

A session ends on hang-up, on a failed or closed connection (ICE consent failure included), or when no
video frame arrived for `idle_timeout` seconds (a client that vanished without a word). Ending it stops
its track, its worker mailbox, its recorder and the peer connection, and removes it from the registry,
so nothing of it stays behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.rtcrtpsender import RTCRtpSender

from server.config import IceServer
from server.logs import session_logger
from server.metrics import ServerMetrics
from server.passage_feed import SessionPassages
from server.sdp import add_video_bitrate_floor
from server.track import AnnotatedVideoTrack
from server.worker import AnalysisResult, AnalysisWorker, FrameAnalyser
from vision.draw import draw_detections
from vision.labels import LABELS

DATA_CHANNEL_LABEL = "detections"
# Messages are skipped while this much is still unsent on the channel (a page that stopped reading).
MAX_CHANNEL_BACKLOG_BYTES = 256 * 1024
NEGOTIATION_TIMEOUT_S = 15.0


class Recorder(Protocol):
    def add(self, frame_bgr: Any, message: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


RecorderFactory = Callable[[str], Recorder]
AnalyserFactory = Callable[[], FrameAnalyser]


class CapacityError(RuntimeError):
    """The server already runs its maximum number of sessions."""


class OfferError(ValueError):
    """The offer cannot be answered (unparseable SDP, no video, no common codec...)."""


def new_session_id() -> str:
    return secrets.token_urlsafe(6)


def rtc_configuration(ice_servers: tuple[IceServer, ...]) -> RTCConfiguration:
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=server.url, username=server.username, credential=server.credential)
            for server in ice_servers
        ]
    )


def detection_message(session_id: str, result: AnalysisResult) -> dict[str, Any]:
    """The data-channel message for one analysed frame (see docs/API.md)."""
    counts = dict.fromkeys(LABELS, 0)
    for detection in result.detections:
        counts[detection.label] = counts.get(detection.label, 0) + 1
    now_wall = time.time()
    age_s = time.monotonic() - result.received_at
    return {
        "type": "detections",
        "session": session_id,
        "frame": result.number,
        "width": result.width,
        "height": result.height,
        "faces": [detection.to_json() for detection in result.detections],
        "counts": counts,
        "inference_ms": round(result.inference_ms, 1),
        "queue_ms": round(result.queue_ms, 1),
        "received_at": round((now_wall - age_s) * 1000.0, 1),
        "sent_at": round(now_wall * 1000.0, 1),
        "analysed": result.analysed,
        "dropped": result.dropped,
    }


def _preferred_video_codecs() -> list[Any]:
    """VP8 first (half the CPU of H264 here, and what Chromium picks), the rest as fallbacks."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    return sorted(codecs, key=lambda codec: codec.mimeType.lower() != "video/vp8")


class PeerSession:
    """The peer connection of one camera, its annotated track and its data channel."""

    def __init__(
        self,
        session_id: str,
        ice_servers: tuple[IceServer, ...],
        worker: AnalysisWorker,
        metrics: ServerMetrics,
        idle_timeout: float,
        on_closed: Callable[[PeerSession], None],
        recorder_factory: RecorderFactory | None = None,
        analyser_factory: AnalyserFactory | None = None,
        passages: SessionPassages | None = None,
    ) -> None:
        self.id = session_id
        self.passages = passages
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self.video: AnnotatedVideoTrack | None = None
        self.channel: RTCDataChannel | None = None
        self.closed = False
        self.close_cause: str | None = None
        self._worker = worker
        self._metrics = metrics
        self._idle_timeout = idle_timeout
        self._on_closed = on_closed
        self._recorder_factory = recorder_factory
        self._analyser_factory = analyser_factory
        self._recorder: Recorder | None = None
        self._blackhole = MediaBlackhole()
        self._log = session_logger(__name__, session_id)
        self._created_at = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._video_transceiver = self.pc.addTransceiver("video", direction="sendrecv")
        self._video_transceiver.setCodecPreferences(_preferred_video_codecs())
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_connection_state)

    async def answer(self, offer_sdp: str) -> str:
        """Apply the offer and return the answer SDP (munged for Chrome's bitrate); OfferError if unusable."""
        if "m=video" not in offer_sdp:
            raise OfferError("the offer has no video")
        try:
            await asyncio.wait_for(self._negotiate(offer_sdp), NEGOTIATION_TIMEOUT_S)
        except TimeoutError as exc:
            raise OfferError("negotiation timed out") from exc
        except OfferError:
            raise
        except Exception as exc:
            # aiortc's SDP parser and negotiation raise many types (ValueError, KeyError, OperationError...).
            raise OfferError(f"cannot use this SDP: {type(exc).__name__}: {exc}") from exc
        if self.video is None:
            raise OfferError("the offer sends no video to the server (use a sendrecv video transceiver)")
        self._watchdog = asyncio.get_running_loop().create_task(
            self._watch_idle(), name=f"watchdog-{self.id}"
        )
        local = self.pc.localDescription
        return add_video_bitrate_floor(local.sdp)

    async def _negotiate(self, offer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and self.video is None:
            transceiver = next((t for t in self.pc.getTransceivers() if t.receiver.track is track), None)
            if transceiver is not None:
                self._recorder = self._start_recorder()
                analyser = self._analyser_factory() if self._analyser_factory is not None else None
                self.video = AnnotatedVideoTrack(
                    track, self._worker, self.id, self._metrics, self._publish, analyser
                )
                transceiver.sender.replaceTrack(self.video)
                self._log.info("camera track received")
                return
        # Audio or a second camera: nobody reads it, but aiortc would queue its decoded frames forever.
        self._blackhole.addTrack(track)
        self._spawn(self._blackhole.start())
        self._log.info("extra track discarded", extra={"kind": track.kind})

    def _start_recorder(self) -> Recorder | None:
        """The recorder with `--record`; one that cannot start (e.g. disk full) never stops the video."""
        if self._recorder_factory is None:
            return None
        try:
            return self._recorder_factory(self.id)
        except Exception as exc:
            self._log.error("recording could not start", extra={"error": f"{type(exc).__name__}: {exc}"})
            return None

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != DATA_CHANNEL_LABEL or self.channel is not None:
            return
        self.channel = channel
        channel.on("message", self._on_message)

    def _on_message(self, message: object) -> None:
        if not isinstance(message, str) or len(message) > 4096:
            return
        try:
            request = json.loads(message)
        except ValueError:
            return
        if isinstance(request, dict) and request.get("type") == "ping":
            self._send(
                {
                    "type": "pong",
                    "id": request.get("id"),
                    "t": request.get("t"),
                    "server_time": round(time.time() * 1000.0, 1),
                }
            )

    def _publish(self, result: AnalysisResult) -> None:
        """On the event loop, for each analysed frame: message to the page, frame to the recorder."""
        message = detection_message(self.id, result)
        self._send(message)
        if self.passages is not None:
            self.passages.observe(result.received_at, result.detections)
        if self._recorder is not None:
            self._recorder.add(draw_detections(result.image, result.detections), message)

    def _send(self, message: dict[str, Any]) -> None:
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return
        if channel.bufferedAmount > MAX_CHANNEL_BACKLOG_BYTES:
            return
        try:
            channel.send(json.dumps(message, separators=(",", ":")))
        except Exception as exc:  # a channel closing under us raises several aiortc/SCTP errors
            self._log.debug("data channel send failed", extra={"error": type(exc).__name__})

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        self._log.info("connection state", extra={"state": state})
        if state in ("failed", "closed"):
            self.schedule_close("failed" if state == "failed" else "hangup")

    async def _watch_idle(self) -> None:
        interval = min(1.0, self._idle_timeout / 4)
        while not self.closed:
            await asyncio.sleep(interval)
            last_frame = self.video.last_frame_at if self.video is not None else self._created_at
            if time.monotonic() - last_frame > self._idle_timeout:
                self.schedule_close("idle")
                return

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def schedule_close(self, cause: str) -> None:
        """Close from a callback (event handler, watchdog); safe to call any number of times."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(
                self._close(cause), name=f"close-{self.id}"
            )

    async def close(self, cause: str) -> None:
        """End the session and wait until everything of it is released."""
        self.schedule_close(cause)
        assert self._closing is not None
        await asyncio.shield(self._closing)

    async def _close(self, cause: str) -> None:
        self.closed = True
        self.close_cause = cause
        self._log.info("session closing", extra={"cause": cause})
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        try:
            if self.video is not None:
                self.video.stop()
                await self.video.wait_closed()
            self._worker.close(self.id)
            await self._blackhole.stop()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks))
            if self._recorder is not None:
                await asyncio.to_thread(self._recorder.close)
            await self._close_peer_connection()
            if self._watchdog is not None and self._watchdog is not asyncio.current_task():
                await asyncio.wait([self._watchdog])
        finally:
            # Whatever failed above, the passages still open are handed to the history, and the session
            # must leave the registry, or its place is lost for good.
            self._finish_passages()
            self.channel = None
            self._metrics.sessions_closed.labels(cause=cause).inc()
            self._on_closed(self)
        self._log.info(
            "session closed",
            extra={
                "cause": cause,
                "frames_received": self.video.frames_received if self.video else 0,
                "frames_sent": self.video.frames_sent if self.video else 0,
            },
        )

    def _finish_passages(self) -> None:
        if self.passages is None:
            return
        try:
            self.passages.finish()
        except Exception as exc:
            self._log.error("open passages were lost", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def _close_peer_connection(self) -> None:
        """Close the peer; aiortc raises when a negotiation failed half-way (an m-line without a=mid)."""
        try:
            await self.pc.close()
        except Exception as exc:
            self._log.warning(
                "peer connection did not close cleanly", extra={"error": f"{type(exc).__name__}: {exc}"}
            )
            for transceiver in self.pc.getTransceivers():
                dtls = transceiver.receiver.transport
                if dtls is not None:
                    with contextlib.suppress(Exception):
                        await dtls.stop()
                        await dtls.transport.stop()


class SessionRegistry:
    """The open sessions; refuses a new one beyond `max_sessions`."""

    def __init__(self, max_sessions: int, metrics: ServerMetrics) -> None:
        self.max_sessions = max_sessions
        self._metrics = metrics
        self._sessions: dict[str, PeerSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def get(self, session_id: str) -> PeerSession | None:
        return self._sessions.get(session_id)

    def sessions(self) -> list[PeerSession]:
        return list(self._sessions.values())

    def create(
        self,
        ice_servers: tuple[IceServer, ...],
        worker: AnalysisWorker,
        idle_timeout: float,
        recorder_factory: RecorderFactory | None = None,
        analyser_factory: AnalyserFactory | None = None,
        passages: SessionPassages | None = None,
    ) -> PeerSession:
        """Reserve a place at once (before any await), so that concurrent offers cannot overbook."""
        if len(self._sessions) >= self.max_sessions:
            raise CapacityError(f"the server is at capacity ({self.max_sessions} sessions)")
        session_id = new_session_id()
        while session_id in self._sessions:
            session_id = new_session_id()
        session = PeerSession(
            session_id,
            ice_servers,
            worker,
            self._metrics,
            idle_timeout,
            self._remove,
            recorder_factory,
            analyser_factory,
            passages,
        )
        self._sessions[session_id] = session
        self._metrics.active_sessions.set(len(self._sessions))
        return session

    def _remove(self, session: PeerSession) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        self._metrics.active_sessions.set(len(self._sessions))

    async def close_all(self, cause: str = "shutdown") -> None:
        sessions = list(self._sessions.values())
        if sessions:
            await asyncio.gather(*(session.close(cause) for session in sessions), return_exceptions=True)
