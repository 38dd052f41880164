"""The server's aiortc tuning: frames leave the jitter buffer at their marker packet, VP8 without denoiser,
larger UDP receive buffers, and all are what aiortc really uses once installed (an aiortc upgrade that moves
the hooks fails here)."""

from __future__ import annotations

import asyncio
import fractions
import socket
from pathlib import Path

import av
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.codecs import get_decoder
from aiortc.codecs.vpx import Vp8Decoder, vp8_depayload
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from server.rtc import tuning as rtc_tuning
from server.rtc.tuning import DenoiserFreeVp8Encoder, MarkerJitterBuffer
from tests.media_helpers import CameraClient, FakeCameraTrack, blank_frame

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


def packet(sequence_number: int, timestamp: int, payload: bytes, marker: bool = False) -> RtpPacket:
    rtp = RtpPacket(payload_type=96, sequence_number=sequence_number, timestamp=timestamp, marker=int(marker))
    rtp._data = payload  # type: ignore[attr-defined]
    return rtp


def feed(buffer: JitterBuffer, packets: list[RtpPacket]) -> list[JitterFrame | None]:
    return [buffer.add(p)[1] for p in packets]


def test_frame_leaves_at_its_marker_packet_not_one_frame_later() -> None:
    frame_1 = [packet(10, 3000, b"a"), packet(11, 3000, b"b"), packet(12, 3000, b"c", marker=True)]
    frame_2 = [packet(13, 6000, b"d", marker=True)]

    stock = feed(JitterBuffer(capacity=128, is_video=True), frame_1 + frame_2)
    assert stock[:3] == [None, None, None]
    assert stock[3] is not None and stock[3].data == b"abc"

    tuned = feed(MarkerJitterBuffer(capacity=128, is_video=True), frame_1 + frame_2)
    assert tuned[:2] == [None, None]
    assert tuned[2] is not None and (tuned[2].data, tuned[2].timestamp) == (b"abc", 3000)
    assert tuned[3] is not None and (tuned[3].data, tuned[3].timestamp) == (b"d", 6000)


def test_frame_waits_for_a_missing_packet_and_takes_reordered_ones() -> None:
    buffer = MarkerJitterBuffer(capacity=128, is_video=True)
    assert feed(buffer, [packet(1, 90, b"x", marker=True)])[0] is not None
    # Packet 3 arrives before 2: nothing is complete until 2 comes.
    assert feed(buffer, [packet(3, 180, b"c", marker=True)]) == [None]
    complete = feed(buffer, [packet(2, 180, b"b")])[0]
    assert complete is not None and complete.data == b"bc"
    # A frame with a lost packet is never passed on half; a late retransmission completes it.
    assert feed(buffer, [packet(4, 270, b"d"), packet(6, 270, b"f", marker=True)]) == [None, None]
    late = feed(buffer, [packet(5, 270, b"e")])[0]
    assert late is not None and late.data == b"def"


def test_lost_marker_falls_back_to_the_next_frame() -> None:
    buffer = MarkerJitterBuffer(capacity=128, is_video=True)
    assert feed(buffer, [packet(1, 90, b"a"), packet(2, 90, b"b")]) == [None, None]
    released = feed(buffer, [packet(3, 180, b"c")])[0]
    assert released is not None and (released.data, released.timestamp) == (b"ab", 90)


def test_audio_buffers_keep_aiortc_behaviour() -> None:
    packets = [packet(n, n * 960, bytes([n]), marker=True) for n in range(1, 8)]
    stock = [None if f is None else f.data for f in feed(JitterBuffer(capacity=16, prefetch=4), packets)]
    tuned = [
        None if f is None else f.data for f in feed(MarkerJitterBuffer(capacity=16, prefetch=4), packets)
    ]
    assert tuned == stock
    assert stock.count(None) == 4  # aiortc's audio prefetch: 4 frames held back


def camera_frames(count: int) -> list[av.VideoFrame]:
    rng = np.random.default_rng(7)
    frames = []
    for index in range(count):
        data = rng.integers(0, 256, (720, 640), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(data, format="yuv420p")
        frame.pts = index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        frames.append(frame)
    return frames


def test_vp8_encoder_has_no_denoiser_and_decodes() -> None:
    encoder = DenoiserFreeVp8Encoder()
    unopened = encoder._open(640, 480)
    assert unopened.options["noise-sensitivity"] == rtc_tuning.VP8_DENOISER == "0"
    assert unopened.options["cpu-used"] == "-6" and unopened.options["deadline"] == "realtime"

    decoder = Vp8Decoder()
    decoded: list[av.VideoFrame] = []
    for index, frame in enumerate(camera_frames(5)):
        payloads, timestamp = encoder.encode(frame)
        assert payloads and abs(timestamp - index * 3000) <= 1
        data = b"".join(vp8_depayload(p) for p in payloads)
        decoded += [
            f
            for f in decoder.decode(JitterFrame(data=data, timestamp=timestamp))
            if isinstance(f, av.VideoFrame)
        ]
    assert [(f.width, f.height) for f in decoded] == [(640, 480)] * 5
    # Once open, PyAV keeps only the options the codec did not take: libvpx took the denoiser setting.
    assert encoder.codec is not None and "noise-sensitivity" not in encoder.codec.options

    encoder.target_bitrate = 2 * encoder.target_bitrate
    previous = encoder.codec
    encoder.encode(camera_frames(1)[0])
    assert encoder.codec is not previous and encoder.codec.bit_rate == encoder.target_bitrate


async def test_installed_tuning_is_what_peer_connections_use() -> None:
    rtc_tuning.install()
    assert isinstance(get_decoder(VP8), Vp8Decoder)
    sender_pc = CameraClient(FakeCameraTrack([blank_frame()], fps=30.0))
    receiver_pc = RTCPeerConnection()
    received: list[av.VideoFrame] = []
    readers: list[asyncio.Future[None]] = []

    @receiver_pc.on("track")
    def on_track(track: object) -> None:
        async def read() -> None:
            while len(received) < 10:
                received.append(await track.recv())  # type: ignore[attr-defined]

        readers.append(asyncio.ensure_future(read()))

    try:
        await sender_pc.pc.setLocalDescription(await sender_pc.pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.pc.setRemoteDescription(receiver_pc.localDescription)
        await sender_pc.wait_for(lambda: len(received) >= 10, 20.0, "10 frames over loopback")
        sender = sender_pc.pc.getSenders()[0]
        receiver = receiver_pc.getReceivers()[0]
        assert isinstance(sender._RTCRtpSender__encoder, DenoiserFreeVp8Encoder)  # type: ignore[attr-defined]
        assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, MarkerJitterBuffer)  # type: ignore[attr-defined]
        # Linux grants twice what is asked, up to net.core.rmem_max.
        granted = 2 * min(
            rtc_tuning.UDP_RECEIVE_BUFFER_BYTES, int(Path("/proc/sys/net/core/rmem_max").read_text())
        )
        connection = receiver.transport.transport._connection
        sockets = [protocol.transport.get_extra_info("socket") for protocol in connection._protocols]
        assert sockets and all(s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == granted for s in sockets)
    finally:
        await sender_pc.close()
        await receiver_pc.close()
        for reader in readers:
            reader.cancel()
