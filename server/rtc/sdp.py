"""Answer SDP munging: make Chrome send 640x480 at 30 fps to aiortc from the first second.

Against aiortc, Chrome's sender starts at a low bitrate and scales the camera down to 480x360
("bandwidth" limitation). Raising the floor in the answer's video fmtp lines fixes it; other
browsers ignore the x-google parameters.
"""

from __future__ import annotations

import re

# Codecs that carry no picture of their own: retransmission, redundancy and error correction.
_AUXILIARY_CODECS = {"rtx", "red", "ulpfec", "flexfec-03"}
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/")
_FMTP = re.compile(r"^a=fmtp:(\d+) ?(.*)$")


def add_video_bitrate_floor(sdp: str, min_kbps: int = 1000, start_kbps: int = 1000) -> str:
    """Add x-google-min/start-bitrate to every video codec of the SDP (fmtp line added where absent).

    Audio and data sections, auxiliary codecs (rtx, red, fec) and codecs that already carry the
    parameters are left alone. Line endings are kept.
    """
    newline = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(newline)
    params = f"x-google-min-bitrate={min_kbps};x-google-start-bitrate={start_kbps}"
    output: list[str] = []
    for section in _media_sections(lines):
        if not section or not section[0].startswith("m=video"):
            output.extend(section)
            continue
        output.extend(_munge_video_section(section, params))
    return newline.join(output)


def _media_sections(lines: list[str]) -> list[list[str]]:
    """The session part, then one list of lines per m= section."""
    sections: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return sections


def _munge_video_section(section: list[str], params: str) -> list[str]:
    codec_names: dict[str, str] = {}
    for line in section:
        match = _RTPMAP.match(line)
        if match:
            codec_names[match.group(1)] = match.group(2).lower()
    picture_payloads = [pt for pt, name in codec_names.items() if name not in _AUXILIARY_CODECS]
    with_fmtp: set[str] = set()
    munged: list[str] = []
    for line in section:
        match = _FMTP.match(line)
        if match and match.group(1) in picture_payloads:
            with_fmtp.add(match.group(1))
            existing = match.group(2).strip()
            if "x-google-min-bitrate" not in existing:
                line = (
                    f"a=fmtp:{match.group(1)} {existing};{params}"
                    if existing
                    else f"a=fmtp:{match.group(1)} {params}"
                )
        munged.append(line)
    missing = [pt for pt in picture_payloads if pt not in with_fmtp]
    if not missing:
        return munged
    result: list[str] = []
    for line in munged:
        result.append(line)
        match = _RTPMAP.match(line)
        if match and match.group(1) in missing:
            result.append(f"a=fmtp:{match.group(1)} {params}")
    return result
