"""The benchmark cameras send VP8 at a steady rate: a new bandwidth estimate never re-opens their encoder
(which would start with a keyframe, as aiortc's does), and the main entry point installs that encoder."""

from __future__ import annotations

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from bench import client
from bench.client import CAMERA_BITRATE, SteadyRateVp8Encoder, get_camera_encoder
from bench.frames import SCENES_DIR
from bench.media_steps import camera_frames
from server.rtc import tuning as rtc_tuning

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)


def test_a_new_estimate_does_not_reopen_the_camera_encoder() -> None:
    if not SCENES_DIR.is_dir():
        pytest.skip(f"needs the scene photos of ../shared/data ({SCENES_DIR} not found)")
    frames = camera_frames(6)
    steady, tuned = SteadyRateVp8Encoder(), rtc_tuning.DenoiserFreeVp8Encoder()
    for encoder in (steady, tuned):
        encoder.encode(frames[0])
    opened_steady, opened_tuned = steady.codec, tuned.codec
    assert opened_steady is not None and opened_steady.bit_rate == CAMERA_BITRATE
    sizes = []
    for index, estimate in enumerate((300_000, 900_000, 400_000), start=1):
        steady.target_bitrate = tuned.target_bitrate = estimate
        payloads, _ = steady.encode(frames[index])
        sizes.append(sum(len(p) for p in payloads))
        tuned.encode(frames[index])
    # The steady camera kept its codec and its rate; the server's encoder followed the estimates, and each
    # re-open started again with a keyframe.
    assert steady.codec is opened_steady and steady.target_bitrate == CAMERA_BITRATE
    assert tuned.codec is not opened_tuned and tuned.codec is not None and tuned.codec.bit_rate == 400_000
    keyframe_size = len(b"".join(SteadyRateVp8Encoder().encode(frames[0])[0]))
    assert max(sizes) < keyframe_size / 4


def test_the_client_entry_point_installs_the_steady_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", aiortc.rtcrtpsender.get_encoder)
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "JitterBuffer", aiortc.rtcrtpreceiver.JitterBuffer)

    def fail_fast(*args: object, **kwargs: object) -> client.ClientResult:
        raise ConnectionRefusedError("no server in this test")

    monkeypatch.setattr(client, "run_client", fail_fast)
    assert client.main(["--url", "http://127.0.0.1:9"]) == 1
    assert aiortc.rtcrtpsender.get_encoder is get_camera_encoder
    assert isinstance(get_camera_encoder(VP8), SteadyRateVp8Encoder)
    assert not isinstance(get_camera_encoder(H264), SteadyRateVp8Encoder)
