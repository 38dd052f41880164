"""The answer's bitrate floor: every video codec gets it, nothing else changes."""

from __future__ import annotations

from server.rtc.sdp import add_video_bitrate_floor

ANSWER = "\r\n".join(
    [
        "v=0",
        "o=- 4004707225 4004707225 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1 2",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "m=video 36607 UDP/TLS/RTP/SAVPF 97 98 99 100",
        "a=sendrecv",
        "a=rtpmap:97 VP8/90000",
        "a=rtcp-fb:97 nack",
        "a=rtpmap:98 rtx/90000",
        "a=fmtp:98 apt=97",
        "a=rtpmap:99 H264/90000",
        "a=rtcp-fb:99 nack pli",
        "a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        "a=rtpmap:100 rtx/90000",
        "a=fmtp:100 apt=99",
        "m=application 35413 UDP/DTLS/SCTP webrtc-datachannel",
        "a=sctp-port:5000",
        "",
    ]
)
FLOOR = "x-google-min-bitrate=1000;x-google-start-bitrate=1000"


def test_vp8_without_fmtp_gets_one_after_its_rtpmap() -> None:
    lines = add_video_bitrate_floor(ANSWER).split("\r\n")
    index = lines.index("a=rtpmap:97 VP8/90000")
    assert lines[index + 1] == f"a=fmtp:97 {FLOOR}"


def test_existing_fmtp_is_extended_and_rtx_untouched() -> None:
    munged = add_video_bitrate_floor(ANSWER)
    assert (
        f"a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f;{FLOOR}\r\n"
        in munged
    )
    assert "a=fmtp:98 apt=97\r\n" in munged
    assert "a=fmtp:100 apt=99\r\n" in munged
    assert munged.count("x-google-min-bitrate") == 2


def test_audio_and_data_sections_and_line_endings_are_kept() -> None:
    munged = add_video_bitrate_floor(ANSWER)
    assert "a=fmtp:111 minptime=10;useinbandfec=1\r\n" in munged
    assert munged.endswith("a=sctp-port:5000\r\n")
    assert "\n" not in munged.replace("\r\n", "")
    assert len(munged.split("\r\n")) == len(ANSWER.split("\r\n")) + 1


def test_munging_twice_changes_nothing_more() -> None:
    once = add_video_bitrate_floor(ANSWER)
    assert add_video_bitrate_floor(once) == once


def test_custom_rates_and_plain_newlines() -> None:
    sdp = "v=0\nm=video 9 UDP/TLS/RTP/SAVPF 96\na=rtpmap:96 VP8/90000\n"
    assert add_video_bitrate_floor(sdp, min_kbps=800, start_kbps=1500) == (
        "v=0\nm=video 9 UDP/TLS/RTP/SAVPF 96\na=rtpmap:96 VP8/90000\n"
        "a=fmtp:96 x-google-min-bitrate=800;x-google-start-bitrate=1500\n"
    )


def test_sdp_without_video_is_unchanged() -> None:
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"
    assert add_video_bitrate_floor(sdp) == sdp
