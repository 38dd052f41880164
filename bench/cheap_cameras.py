"""A camera load generator that costs the machine little: aiortc peers replaying VP8 packets encoded once.

The server's capacity on a small machine cannot be measured with cameras that encode their video on the
same cores (a stock aiortc client spends 7-12 % of a core per camera encoding). Here the frames are made
once from real scene photos (``bench.frames``) and encoded once with PyAV; every camera then replays those
packets: aiortc's `RTCRtpSender` sends an `av.Packet` from a track as it is (`Vp8Encoder.pack`), so a
camera costs only RTP packetisation and SRTP. All cameras run in one process, which measures its own CPU.

The clip is made so that faces *enter* while other faces are followed: each scene is shown first with
only its first face (the others painted over with their surroundings' colour, no cut in the picture),
then with all of them. A new face is therefore found only by a full detection, never by following or by
a cut, which is what `time_to_find` measures; `label_agreement` compares each message with the faces the
frame showed (the photos' annotations, moved with the frame).

The latency of a camera is from the moment a frame was handed to aiortc to the moment its detections
message arrived (the message's ``frame`` is the server's count of frames received from that camera, which
is this camera's frame index while no frame is lost; ``transit_min_ms`` checks that numbering: it would be
negative if frames were lost).

    python -m bench.cheap_cameras --url http://127.0.0.1:8080 --cameras 16 --overlay page --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.frames import HEIGHT, SCENES_DIR, WIDTH, Scene, load_scene, motion, moved_i420, to_i420
from bench.stats import percentile
from training.voc import load_scene_annotations
from vision.boxes import iou
from vision.model_options import ModelSettings, add_model_arguments, model_settings
from vision.settings_fields import as_flags

Overlay = Literal["server", "page"]
VIDEO_CLOCK = 90000
_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
DEFAULT_FPS = 15.0
SEGMENT_SECONDS = 2.5
"""Each segment (first face only, then all faces) lasts one motion period (`bench.frames.MOTION_PERIOD_S`),
so a segment starts where the previous one ended and the clip loops without a jump."""
CLIP_SCENES = 4
CLIP_BITRATE = 1_000_000
"""About what Chrome sends a 640x480 camera at 15 fps on a LAN."""
MATCH_IOU = 0.3
GROWTH_WINDOW_S = 5.0

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ShownFace:
    """A face a frame shows: its annotated label and box (frame pixels), and which appearance it is."""

    label: str
    box: Box
    appearance: int
    """Counts the face's entries in the clip: the same while the face stays in view."""


@dataclass(frozen=True)
class CameraClip:
    """The encoded frames of one loop of the clip, each with the faces it shows."""

    packets: tuple[bytes, ...]
    keyframes: tuple[bool, ...]
    faces: tuple[tuple[ShownFace, ...], ...]
    fps: float
    segment_frames: int
    reference: tuple[tuple[tuple[str, Box], ...], ...] = ()
    """Per frame, what the server's models say of that frame alone (a full detection and classification
    of the decoded frame): the best any message about it can say, the annotations' agreement aside."""
    models: tuple[str, ...] = ()
    """The model flags (`vision.settings_fields.as_flags`) the reference was made with: those of the server
    under test, so that a run with another classifier is compared with that classifier's own answers."""

    @property
    def segments(self) -> int:
        return len(self.packets) // self.segment_frames


def clip_scenes(count: int = CLIP_SCENES, min_side: float = 48.0) -> list[Scene]:
    """Photos with 2-3 faces, each at least ``min_side`` px at 640x480 (jolignier test split, name order)."""
    chosen = []
    for path, annotation in load_scene_annotations(SCENES_DIR / "jolignier", "test"):
        if not 2 <= len(annotation.faces) <= 3:
            continue
        scene = load_scene(path, annotation)
        if min(min(b[2] - b[0], b[3] - b[1]) for _, b in scene.faces) >= min_side:
            chosen.append(scene)
        if len(chosen) == count:
            break
    if len(chosen) < count:
        raise FileNotFoundError(f"only {len(chosen)} suitable scene photos under {SCENES_DIR}")
    return chosen


def hide_faces(image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """The photo with each box (grown by a fifth) painted in the median colour of the ring around it."""
    hidden = image.copy()
    height, width = image.shape[:2]
    for x0, y0, x1, y1 in boxes:
        grow_x, grow_y = (x1 - x0) * 0.2, (y1 - y0) * 0.2
        a0, b0 = max(int(x0 - grow_x), 0), max(int(y0 - grow_y), 0)
        a1, b1 = min(int(x1 + grow_x), width), min(int(y1 + grow_y), height)
        c0, d0 = max(a0 - 8, 0), max(b0 - 8, 0)
        c1, d1 = min(a1 + 8, width), min(b1 + 8, height)
        ring = np.concatenate(
            [
                image[d0:b0, c0:c1].reshape(-1, 3),
                image[b1:d1, c0:c1].reshape(-1, 3),
                image[b0:b1, c0:a0].reshape(-1, 3),
                image[b0:b1, a1:c1].reshape(-1, 3),
            ]
        )
        colour = np.median(ring, axis=0) if len(ring) else np.zeros(3)
        hidden[b0:b1, a0:a1] = colour.astype(np.uint8)
    return hidden


def _encoder(fps: float, bitrate: int) -> av.VideoCodecContext:
    codec = av.CodecContext.create("libvpx", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width, codec.height = WIDTH, HEIGHT
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = bitrate
    codec.framerate = fractions.Fraction(round(fps * 1000), 1000)
    codec.time_base = fractions.Fraction(1000, round(fps * 1000))
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "auto-alt-ref": "0"}
    return codec


def build_clip(
    scenes: Sequence[Scene], fps: float = DEFAULT_FPS, segment_seconds: float = SEGMENT_SECONDS
) -> CameraClip:
    """Encode the clip once: per scene a segment with its first face only, then one with all its faces;
    a keyframe at the start of every segment, so a camera may start at any segment."""
    segment_frames = round(segment_seconds * fps)
    codec = _encoder(fps, CLIP_BITRATE)
    packets: list[bytes] = []
    keyframes: list[bool] = []
    faces: list[tuple[ShownFace, ...]] = []
    appearance = 0
    index = 0
    for scene in scenes:
        boxes = [box for _, box in scene.faces]
        # First segment: the first face alone (it enters here); second: all (the others enter).
        first = appearance
        entered = {0: first}
        appearance += 1
        for hidden_from in (1, len(boxes)):
            if hidden_from > 1:
                for face in range(1, len(boxes)):
                    entered[face] = appearance
                    appearance += 1
            image = to_i420(hide_faces(scene.image, boxes[hidden_from:]))
            for frame_in_segment in range(segment_frames):
                t = index / fps
                frame = av.VideoFrame.from_ndarray(moved_i420(image, t), format="yuv420p")
                frame.pts = index
                if frame_in_segment == 0:
                    frame.pict_type = av.video.frame.PictureType.I
                encoded = codec.encode(frame)
                if len(encoded) != 1:
                    raise RuntimeError(f"the VP8 encoder returned {len(encoded)} packets for one frame")
                packets.append(bytes(encoded[0]))
                keyframes.append(bool(encoded[0].is_keyframe))
                dx, dy = (2 * round(value / 2) for value in motion(t))
                faces.append(
                    tuple(
                        ShownFace(label, (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy), entered[f])
                        for f, (label, b) in enumerate(scene.faces[:hidden_from])
                    )
                )
                index += 1
    return CameraClip(tuple(packets), tuple(keyframes), tuple(faces), fps, segment_frames)


def save_clip(clip: CameraClip, path: Path) -> None:
    """Write the clip to one ``.npz`` file, so that several generator runs encode it only once."""
    faces = [[[face.label, list(face.box), face.appearance] for face in shown] for shown in clip.faces]
    np.savez(
        path,
        data=np.frombuffer(b"".join(clip.packets), np.uint8),
        sizes=np.array([len(packet) for packet in clip.packets], np.int64),
        keyframes=np.array(clip.keyframes, bool),
        faces=np.array(json.dumps(faces)),
        reference=np.array(
            json.dumps([[[label, list(box)] for label, box in frame] for frame in clip.reference])
        ),
        timing=np.array([clip.fps, clip.segment_frames], np.float64),
        models=np.array(json.dumps(list(clip.models))),
    )


def load_clip(path: Path) -> CameraClip:
    """A clip written by `save_clip`."""
    with np.load(path) as saved:
        data, sizes = saved["data"].tobytes(), saved["sizes"]
        ends = np.cumsum(sizes)
        packets = tuple(data[end - size : end] for end, size in zip(ends, sizes, strict=True))
        faces = tuple(
            tuple(
                ShownFace(label, (box[0], box[1], box[2], box[3]), appearance)
                for label, box, appearance in shown
            )
            for shown in json.loads(str(saved["faces"]))
        )
        reference = tuple(
            tuple((label, (box[0], box[1], box[2], box[3])) for label, box in frame)
            for frame in json.loads(str(saved["reference"]))
        )
        fps, segment_frames = (float(value) for value in saved["timing"])
        keyframes = tuple(bool(k) for k in saved["keyframes"])
        models = tuple(json.loads(str(saved["models"]))) if "models" in saved else ()
        return CameraClip(packets, keyframes, faces, fps, round(segment_frames), reference, models)


def with_reference(clip: CameraClip, models: ModelSettings = ModelSettings()) -> CameraClip:
    """The clip with `CameraClip.reference`: every frame decoded and analysed alone by the server's models
    (``models``: the server's model settings, by default the command line's defaults)."""
    from server.analysis.models import load_models
    from server.settings import ServerConfig

    analyser = load_models(ServerConfig.with_models(models, detect_every=1)).open_stream()
    decoder = av.CodecContext.create("libvpx", "r")
    reference = []
    for packet in clip.packets:
        for frame in decoder.decode(av.Packet(packet)):
            assert isinstance(frame, av.VideoFrame)
            detections = analyser.analyse(frame.to_ndarray(format="bgr24"))
            reference.append(tuple((d.label, tuple(map(float, d.box))) for d in detections))
    if len(reference) != len(clip.packets):
        raise RuntimeError(f"{len(clip.packets)} packets decoded into {len(reference)} frames")
    return replace(clip, reference=tuple(reference), models=tuple(as_flags(models)))  # type: ignore[arg-type]


@dataclass
class SentFrame:
    index: int
    """The camera's frame count since it started (what the server numbers its messages with)."""
    clip_index: int
    monotonic: float
    wall: float


class ReplayTrack(MediaStreamTrack):
    """A camera that sends the clip's packets at its frame rate, starting at segment ``start_segment`` after
    ``start_delay`` seconds (cameras started together would otherwise send their keyframes, each several
    times a delta frame, at the same moments). Like a real camera it answers a keyframe request (the
    receiver lost a packet it needs: RTCP PLI or FIR) by sending a keyframe soon: it skips ahead to the next
    segment, which starts with one."""

    kind = "video"

    def __init__(self, clip: CameraClip, start_segment: int = 0, start_delay: float = 0.0) -> None:
        super().__init__()
        self.clip = clip
        self._offset = (start_segment % clip.segments) * clip.segment_frames
        self._start_delay = start_delay
        self._index = 0
        self._start: float | None = None
        self._keyframe_wanted = False
        self.keyframes_requested = 0
        self.sent: list[SentFrame] = []

    def request_keyframe(self) -> None:
        """Called by the sender on the receiver's PLI or FIR."""
        self._keyframe_wanted = True
        self.keyframes_requested += 1

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            await asyncio.sleep(self._start_delay)
            self._start = time.monotonic()
        now = time.monotonic()
        due = self._start + self._index / self.clip.fps
        if due > now:
            await asyncio.sleep(due - now)
        clip_index = (self._offset + self._index) % len(self.clip.packets)
        if self._keyframe_wanted and not self.clip.keyframes[clip_index]:
            skip = self.clip.segment_frames - clip_index % self.clip.segment_frames
            self._offset += skip
            clip_index = (self._offset + self._index) % len(self.clip.packets)
        self._keyframe_wanted = False
        packet = av.Packet(self.clip.packets[clip_index])
        packet.pts = round(self._index * VIDEO_CLOCK / self.clip.fps)
        packet.time_base = _TIME_BASE
        self.sent.append(SentFrame(self._index, clip_index, time.monotonic(), time.time()))
        self._index += 1
        return packet


@dataclass(frozen=True)
class Message:
    """A detections message as this camera received it."""

    arrived: float
    frame: int
    analysed: int
    received_at_wall_ms: float
    faces: tuple[tuple[str, Box], ...]


@dataclass
class CameraResult:
    camera: int
    frames_sent: int
    messages: int
    analysed_per_s: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_first5s_ms: float | None
    latency_last5s_ms: float | None
    latency_growth: float | None
    messages_lost: int
    """Analysed frames the server counted (its ``analysed``) whose message never arrived."""
    transit_min_ms: float | None
    """Least (server's receipt - this camera's send) of a frame, wall clock: about 0 while the numbering
    holds, about -1000 / fps per frame lost on the way."""
    label_agreement: float | None
    """Against what the server's models say of each frame alone (`CameraClip.reference`): what waiting for
    a full detection (following an old face, a face not found yet) costs."""
    label_agreement_truth: float | None
    """Against the photos' annotations: the models' own errors included (about 0.75 at best on this clip)."""
    faces_entered: int
    faces_found: int
    time_to_find_p50_s: float | None
    time_to_find_max_s: float | None
    keyframes_requested: int = 0
    """The server's keyframe requests (it lost a packet that it needed): a loaded server's lost packets."""
    connected_at_end: bool = True
    """The peer connection was still connected at the window's end: the session was not dropped."""
    silent_at_end: bool = False
    """No message in the window's last 2 s (a starved analysis, or a dropped session)."""
    error: str | None = None


@dataclass
class LoadResult:
    cameras: int
    overlay: str
    fps: float
    duration_s: float
    window_start_unix: float
    window_end_unix: float
    generator_cpu_percent: float
    """This process's CPU over the window (100 = one core): what all the cameras together cost."""
    per_camera: list[CameraResult] = field(default_factory=list)


def _matches(box: Box, faces: Sequence[tuple[str, Box]]) -> tuple[str, Box] | None:
    best, best_overlap = None, MATCH_IOU
    for face in faces:
        overlap = iou(box, face[1])
        if overlap >= best_overlap:
            best, best_overlap = face, overlap
    return best


def label_agreement(
    expected: Sequence[Sequence[tuple[str, Box]]], sent: dict[int, SentFrame], messages: Sequence[Message]
) -> float | None:
    """Correct labels / (faces expected + boxes on no expected face), over the messages, where `expected`
    gives each clip frame's faces: a face not yet found, a box left on a face that is gone and a wrong label
    all count against it."""
    correct = total = 0
    for message in messages:
        frame = sent.get(message.frame)
        if frame is None or frame.clip_index >= len(expected):
            continue
        used: set[int] = set()
        for label, box in expected[frame.clip_index]:
            total += 1
            match = _matches(box, message.faces)
            if match is not None and match[0] == label:
                correct += 1
            if match is not None:
                used.add(message.faces.index(match))
        total += len(message.faces) - len(used)
    return correct / total if total else None


def times_to_find(
    clip: CameraClip, sent: Sequence[SentFrame], messages: Sequence[Message], start: float, end: float
) -> tuple[int, list[float]]:
    """Faces that entered within [start, end] and the seconds from the first frame showing each to the
    first message with a box on it (any label); a face not found while it was shown has no time."""
    by_index = {frame.index: frame for frame in sent}
    entries: dict[tuple[int, int], tuple[float, ShownFace, int]] = {}
    previous: set[int] = set()
    loop = len(clip.packets)
    for frame in sent:
        shown = clip.faces[frame.clip_index]
        current = {face.appearance for face in shown}
        for face in shown:
            if face.appearance not in previous and start <= frame.monotonic <= end:
                entries[(frame.index // loop, face.appearance)] = (frame.monotonic, face, frame.index)
        previous = current
    found: list[float] = []
    for entered_at, face, first_index in entries.values():
        for message in messages:
            if message.frame < first_index or message.arrived < entered_at:
                continue
            message_frame = by_index.get(message.frame)
            if message_frame is None:
                continue
            still_shown = [f for f in clip.faces[message_frame.clip_index] if f.appearance == face.appearance]
            if not still_shown:
                break
            if _matches(still_shown[0].box, message.faces) is not None:
                found.append(message.arrived - entered_at)
                break
    return len(entries), found


def summarise_camera(
    camera: int,
    clip: CameraClip,
    track: ReplayTrack,
    messages: Sequence[Message],
    start: float,
    end: float,
    connected: bool = True,
) -> CameraResult:
    sent = {frame.index: frame for frame in track.sent}
    window = [m for m in messages if start <= m.arrived <= end]
    latencies: list[tuple[float, float]] = []
    transits: list[float] = []
    for message in window:
        frame = sent.get(message.frame)
        if frame is not None:
            latencies.append((message.arrived, (message.arrived - frame.monotonic) * 1000.0))
            transits.append(message.received_at_wall_ms - frame.wall * 1000.0)
    values = [latency for _, latency in latencies]
    first = [latency for at, latency in latencies if at < start + GROWTH_WINDOW_S]
    last = [latency for at, latency in latencies if at > end - GROWTH_WINDOW_S]
    first_median, last_median = percentile(first, 50), percentile(last, 50)
    lost = 0
    if len(window) >= 2:
        counted = window[-1].analysed - window[0].analysed + 1
        lost = max(counted - len(window), 0)
    entered, found = times_to_find(clip, track.sent, messages, start, end - 1.5)
    return CameraResult(
        camera=camera,
        frames_sent=len(track.sent),
        messages=len(window),
        analysed_per_s=len(window) / (end - start),
        latency_p50_ms=percentile(values, 50),
        latency_p95_ms=percentile(values, 95),
        latency_first5s_ms=first_median,
        latency_last5s_ms=last_median,
        latency_growth=last_median / first_median if first_median and last_median else None,
        messages_lost=lost,
        transit_min_ms=min(transits) if transits else None,
        label_agreement=label_agreement(clip.reference, sent, window),
        label_agreement_truth=label_agreement(
            [[(face.label, face.box) for face in shown] for shown in clip.faces], sent, window
        ),
        faces_entered=entered,
        faces_found=len(found),
        time_to_find_p50_s=percentile(found, 50),
        time_to_find_max_s=max(found) if found else None,
        keyframes_requested=track.keyframes_requested,
        connected_at_end=connected,
        silent_at_end=not window or window[-1].arrived < end - 2.0,
    )


class Camera:
    """One peer: the replayed clip up, detections messages back; in ``server`` overlay mode the annotated
    video that comes back is read and thrown away (aiortc decodes it regardless)."""

    def __init__(self, number: int, clip: CameraClip, overlay: Overlay, start_delay: float = 0.0) -> None:
        self.number = number
        self.clip = clip
        self.overlay = overlay
        self.track = ReplayTrack(clip, start_segment=number, start_delay=start_delay)
        self.messages: list[Message] = []
        self.pc = RTCPeerConnection()
        self._drains: list[asyncio.Task[None]] = []

    def _on_message(self, text: Any) -> None:
        if not isinstance(text, str):
            return
        payload = json.loads(text)
        if payload.get("type") != "detections":
            return
        self.messages.append(
            Message(
                arrived=time.monotonic(),
                frame=int(payload["frame"]),
                analysed=int(payload["analysed"]),
                received_at_wall_ms=float(payload["received_at"]),
                faces=tuple((face["label"], tuple(face["box"])) for face in payload["faces"]),
            )
        )

    async def connect(self, http: aiohttp.ClientSession, url: str) -> None:
        direction = "sendonly" if self.overlay == "page" else "sendrecv"
        transceiver = self.pc.addTransceiver(self.track, direction=direction)
        # aiortc's sender would ask an encoder for a keyframe; these packets were encoded before.
        transceiver.sender._send_keyframe = self.track.request_keyframe  # type: ignore[method-assign]
        codecs = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences([c for c in codecs if c.mimeType == "video/VP8"])
        channel = self.pc.createDataChannel("detections")
        channel.on("message", self._on_message)
        self.pc.on("track", self._drain)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"sdp": self.pc.localDescription.sdp, "type": "offer", "overlay": self.overlay}
        async with http.post(f"{url}/offer", json=offer) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"/offer answered {response.status}: {body}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))

    def _drain(self, track: MediaStreamTrack) -> None:
        async def drain() -> None:
            while True:
                try:
                    await track.recv()
                except MediaStreamError:
                    return

        self._drains.append(asyncio.ensure_future(drain()))

    async def close(self) -> None:
        await self.pc.close()
        for task in self._drains:
            task.cancel()


async def run_cameras(
    url: str,
    cameras: int,
    duration: float,
    warmup: float,
    overlay: Overlay = "page",
    clip: CameraClip | None = None,
    linger: float = 2.0,
) -> LoadResult:
    """Connect ``cameras`` peers, stream for warmup + duration s, and summarise the measured window."""
    clip = clip or clip_for(None, DEFAULT_FPS)
    segment_s = clip.segment_frames / clip.fps
    peers = [
        Camera(number, clip, overlay, start_delay=number * segment_s / cameras) for number in range(cameras)
    ]
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(*(peer.connect(http, url) for peer in peers))
        deadline = time.monotonic() + 30.0
        while not all(peer.messages for peer in peers):
            if time.monotonic() > deadline:
                silent = [peer.number for peer in peers if not peer.messages]
                raise RuntimeError(f"no detections message within 30 s from cameras {silent}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(warmup)
        start, cpu_start, wall_start = time.monotonic(), time.process_time(), time.time()
        await asyncio.sleep(duration)
        end, cpu_end, wall_end = time.monotonic(), time.process_time(), time.time()
        connected = [peer.pc.connectionState == "connected" for peer in peers]
        await asyncio.sleep(linger)
    finally:
        await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
    result = LoadResult(
        cameras=cameras,
        overlay=overlay,
        fps=clip.fps,
        duration_s=end - start,
        window_start_unix=wall_start,
        window_end_unix=wall_end,
        generator_cpu_percent=(cpu_end - cpu_start) / (end - start) * 100.0,
    )
    result.per_camera = [
        summarise_camera(peer.number, clip, peer.track, peer.messages, start, end, connected[peer.number])
        for peer in peers
    ]
    return result


def clip_for(path: Path | None, fps: float, models: ModelSettings = ModelSettings()) -> CameraClip:
    """The clip at ``fps`` with the reference of ``models``: read from ``path`` when it holds that one, else
    encoded (and saved)."""
    if path is not None and path.is_file():
        clip = load_clip(path)
        if clip.fps == fps and clip.models == tuple(as_flags(models)):
            return clip
    clip = with_reference(build_clip(clip_scenes(), fps=fps), models)
    if path is not None:
        save_clip(clip, path)
    return clip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--overlay", choices=("server", "page"), default="page")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS)
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds after every camera's first message"
    )
    parser.add_argument("--json", type=Path, help="write the result here (default: stdout)")
    parser.add_argument(
        "--clip",
        type=Path,
        help="the encoded clip (.npz): read when it exists, else encoded and written there",
    )
    add_model_arguments(parser)
    args = parser.parse_args(argv)
    if args.cameras < 1 or args.fps <= 0 or args.duration <= 0:
        parser.error("--cameras, --fps and --duration must be positive")
    try:
        clip = clip_for(args.clip, args.fps, model_settings(args))
        result = asyncio.run(
            run_cameras(args.url, args.cameras, args.duration, args.warmup, args.overlay, clip)
        )
        text, code = json.dumps(asdict(result), indent=2), 0
    except Exception as exc:  # reported in the JSON so the benchmark can say what failed
        text, code = json.dumps({"error": f"{type(exc).__name__}: {exc}"}), 1
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
