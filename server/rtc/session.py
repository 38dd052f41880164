"""One WebRTC peer per camera: its annotated video track, its analysis slot and its data channel.

When the camera's track arrives the session opens the camera's analysis slot (`AnalysisWorker.open`) and
wraps the track (`AnnotatedVideoTrack`); each analysed frame comes back to `_publish`, which shows it on
the video, sends it to the page and hands it to the passages and the recorder.

With the page-drawn overlay (`overlay="page"`) the page draws the boxes over its own camera preview: the
session's video transceiver is `recvonly`, so its answer sends no video, and the track is only read for
the analysis: nothing pulls frames from it to draw on or to encode.

A session ends on hang-up, on a failed or closed connection (ICE consent failure included), or when no
video frame arrived for `idle_timeout` seconds (a client that vanished without a word). Ending it stops
its track, closes its analysis slot, its recorder and the peer connection, and removes it from the
registry (`server.rtc.registry`), so nothing of it stays behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.rtcrtpsender import RTCRtpSender

from server.analysis.analyser import AnalysisResult
from server.analysis.worker import AnalysisWorker
from server.history.feed import SessionPassages
from server.logs import session_logger
from server.metrics import ServerMetrics
from server.rtc.messages import DATA_CHANNEL_LABEL, detection_message, pong_message
from server.rtc.sdp import add_video_bitrate_floor
from server.rtc.track import AnnotatedVideoTrack
from server.settings import IceServer
from vision.draw import draw_detections

# Messages are skipped while this much is still unsent on the channel (a page that stopped reading).
MAX_CHANNEL_BACKLOG_BYTES = 256 * 1024
NEGOTIATION_TIMEOUT_S = 15.0


class Recorder(Protocol):
    def add(self, frame_bgr: Any, message: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


RecorderFactory = Callable[[str], Recorder]


class OfferError(ValueError):
    """The offer cannot be answered (unparseable SDP, no video, no common codec...)."""


def rtc_configuration(ice_servers: tuple[IceServer, ...]) -> RTCConfiguration:
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=server.url, username=server.username, credential=server.credential)
            for server in ice_servers
        ]
    )


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
        passages: SessionPassages | None = None,
        label_text: bool = True,
        overlay: str = "server",
    ) -> None:
        self.id = session_id
        self.label_text = label_text
        self.passages = passages
        self.overlay = overlay
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self.video: AnnotatedVideoTrack | None = None
        self.channel: RTCDataChannel | None = None
        self.closed = False
        self._worker = worker
        self._metrics = metrics
        self._idle_timeout = idle_timeout
        self._on_closed = on_closed
        self._recorder_factory = recorder_factory
        self._recorder: Recorder | None = None
        self._blackhole = MediaBlackhole()
        self._log = session_logger(__name__, session_id)
        self._created_at = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        direction = "recvonly" if overlay == "page" else "sendrecv"
        self._video_transceiver = self.pc.addTransceiver("video", direction=direction)
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
            raise OfferError(
                "the offer sends no video to the server (use a sendrecv or sendonly video transceiver)"
            )
        self._watchdog = asyncio.get_running_loop().create_task(
            self._watch_idle(), name=f"watchdog-{self.id}"
        )
        local = self.pc.localDescription
        return add_video_bitrate_floor(local.sdp)

    async def _negotiate(self, offer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())

    def _on_track(self, track: MediaStreamTrack) -> None:
        if self.closed:
            # A track that arrives after the session closed (e.g. during shutdown's negotiation): the
            # peer connection is closing, and a slot opened now would never be closed.
            return
        if track.kind == "video" and self.video is None:
            transceiver = next((t for t in self.pc.getTransceivers() if t.receiver.track is track), None)
            if transceiver is not None:
                self._recorder = self._start_recorder()
                analysis = self._worker.open(self.id, asyncio.get_running_loop(), self._publish)
                self.video = AnnotatedVideoTrack(track, analysis, self._metrics, self.label_text)
                if self.overlay != "page":
                    transceiver.sender.replaceTrack(self.video)
                self._log.info("camera track received", extra={"overlay": self.overlay})
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
            self._send(pong_message(request))

    def _publish(self, result: AnalysisResult) -> None:
        """On the event loop, for each analysed frame: boxes on the video, message to the page, faces to
        the passages, frame to the recorder."""
        if self.video is not None:
            self.video.show(result)
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
        self._log.info("session closing", extra={"cause": cause})
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        try:
            # The analysis slot first, before any await: a close cancelled at shutdown must not leave
            # the camera's mailbox and analyser behind (frames submitted after this are ignored).
            self._worker.close(self.id)
            if self.video is not None:
                self.video.stop()
                await self.video.wait_closed()
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
