"""Three changes to aiortc's media path for a server that receives live video and sends it straight back.

aiortc's defaults suit a client; measured on this server's 2 cores (bench/RESULTS.md) they cost the
product latency and CPU that it needs for analysis, or packets:

- **Frame assembly.** aiortc's video jitter buffer hands a frame to the decoder only when the first packet of
  the *next* frame arrives, so every received frame waits one frame interval although its
  last packet, marked by the RTP marker bit (RFC 7741 section 4.1 for VP8), is already there.
  `MarkerJitterBuffer` releases a frame as soon as its packets up to the marked one are all present; the
  old rule still applies when a marker packet is lost.
- **VP8 encoding.** aiortc's VP8 encoder runs libvpx's temporal denoiser (noise-sensitivity 4). The server
  encodes frames that it has just decoded from the camera's VP8, whose noise that encoder has already
  quantised away: with the denoiser an encode costs several times as much (bench/RESULTS.md, "VP8 without
  the denoiser"), on every frame of every camera. `DenoiserFreeVp8Encoder` is aiortc's encoder with the
  denoiser off and otherwise the same settings.
- **UDP receive buffers.** aioice asks the kernel for 256 KiB per socket, about 100 full-size RTP packets
  at the kernel's accounting: one second of a camera's video. With 16 cameras on the 2 shared cores the
  event loop was held off longer than that and the kernel dropped datagrams (`RcvbufErrors` in
  /proc/net/snmp), each loss a broken frame and a keyframe request; with `UDP_RECEIVE_BUFFER_BYTES`
  (capped by the kernel at `net.core.rmem_max`) none was dropped in the same run (bench/RESULTS.md,
  "Issue 22", "Packets").

`install()` puts these in place of aiortc's own, for every peer connection made afterwards in this
process. aiortc offers no option for either; the tests in tests/test_rtc_tuning.py check that the
replacements are really used and behave, so an aiortc upgrade that moves these hooks fails them.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import aioice.turn
import aiortc.codecs
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import av
from aiortc.codecs.base import Encoder
from aiortc.codecs.vpx import Vp8Encoder, number_of_threads
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from av.frame import Frame

UDP_RECEIVE_BUFFER_BYTES = 4 * 2**20
"""SO_RCVBUF of every ICE socket (aioice's own: 256 KiB); Linux caps it at net.core.rmem_max."""
VP8_DENOISER = "0"
"""libvpx noise-sensitivity for the server's VP8 encoder (aiortc's default: 4)."""


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, but a video frame is released at its marker packet, not one frame later."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        frame = super()._remove_frame(sequence_number)
        if frame is not None or not self._is_video or self._origin is None:
            return frame
        packets: list[RtpPacket] = []
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                return None
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return JitterFrame(
                    data=b"".join(p._data for p in packets),  # type: ignore[attr-defined]
                    timestamp=packet.timestamp,
                )
        return None


class DenoiserFreeVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder with libvpx's temporal denoiser off (see the module docstring)."""

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, av.VideoFrame)
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        codec = self.codec
        if (
            codec is None
            or frame.width != codec.width
            or frame.height != codec.height
            or not codec.bit_rate
            or abs(self.target_bitrate - codec.bit_rate) / codec.bit_rate > 0.1
        ):
            self.codec = self._open(frame.width, frame.height)
        return super().encode(frame, force_keyframe)

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        """The codec context that aiortc's Vp8Encoder opens (same rate control), denoiser off."""
        bitrate = self.target_bitrate
        codec = av.CodecContext.create("libvpx", "w")
        assert isinstance(codec, av.VideoCodecContext)
        codec.width = width
        codec.height = height
        codec.bit_rate = bitrate
        codec.pix_fmt = "yuv420p"
        codec.gop_size = 3000
        codec.qmin = 2
        codec.qmax = 56
        codec.options = {
            "bufsize": str(bitrate),
            "cpu-used": "-6",
            "deadline": "realtime",
            "lag-in-frames": "0",
            "minrate": str(bitrate),
            "maxrate": str(bitrate),
            "noise-sensitivity": VP8_DENOISER,
            "overshoot-pct": "15",
            "partitions": "0",
            "static-thresh": "1",
            "undershoot-pct": "100",
        }
        codec.thread_count = number_of_threads(width * height, multiprocessing.cpu_count())
        return codec


_aiortc_get_encoder = aiortc.codecs.get_encoder


def get_encoder(codec: RTCRtpCodecParameters) -> Encoder:
    """aiortc's encoder for `codec`, except VP8, which gets `DenoiserFreeVp8Encoder`."""
    if codec.mimeType.lower() == "video/vp8":
        return DenoiserFreeVp8Encoder()
    return _aiortc_get_encoder(codec)


def install() -> None:
    """Use `MarkerJitterBuffer`, `DenoiserFreeVp8Encoder` and `UDP_RECEIVE_BUFFER_BYTES` in every peer
    connection made from now on."""
    receiver_module: Any = aiortc.rtcrtpreceiver
    sender_module: Any = aiortc.rtcrtpsender
    turn_module: Any = aioice.turn
    turn_module.UDP_SOCKET_BUFFER_SIZE = UDP_RECEIVE_BUFFER_BYTES
    receiver_module.JitterBuffer = MarkerJitterBuffer
    sender_module.get_encoder = get_encoder
