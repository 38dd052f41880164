"""The predict command: images, folders and videos in; annotated copies and JSON lines out."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from av.video.stream import VideoStream

from predict import main
from tests.vision_helpers import FACES_DIR, grey_frame, write_colour_classifier
from vision.image_files import read_image

FACE_PHOTO = FACES_DIR / "without_mask" / "cd7_0_0_jiayuanyuan_0015_9c16b3ca.jpg"


@pytest.fixture(scope="module")
def colour_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colour_classifier(tmp_path_factory.mktemp("model"))


def frame_with_face() -> np.ndarray:
    """640x480 grey frame with a real bare face (300 px high) in the middle."""
    if not FACE_PHOTO.is_file():
        pytest.skip(f"needs the real data of ../shared/data ({FACE_PHOTO} not found)")
    face = read_image(FACE_PHOTO)
    tile = cv2.resize(face, (round(face.shape[1] * 300 / face.shape[0]), 300))
    frame = grey_frame(640, 480)
    x0 = (640 - tile.shape[1]) // 2
    frame[90:390, x0 : x0 + tile.shape[1]] = tile
    return frame


def write_video(
    path: Path, frames: list[np.ndarray], codec: str = "libx264", rate: int = 10, rotation: int = 0
) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode())


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_images_folders_and_bad_inputs(
    tmp_path: Path, colour_classifier: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    cv2.imwrite(str(inputs / "plain.jpg"), grey_frame(320, 240))
    cv2.imwrite(str(inputs / "sub" / "odd.png"), grey_frame(3, 1001))
    (inputs / "sub" / "notes.txt").write_text("not media, skipped inside a folder")
    good = cv2.imencode(".jpg", grey_frame(200, 100))[1].tobytes()
    (inputs / "truncated.jpg").write_bytes(good[: len(good) // 2])
    named_text = tmp_path / "readme.txt"
    named_text.write_text("named directly: an error")
    out = tmp_path / "out"

    args = [str(inputs), str(named_text), str(tmp_path / "missing.jpg"), "--out", str(out)]
    assert main([*args, "--classifier", str(colour_classifier)]) == 1

    errors = capsys.readouterr().err
    assert "truncated.jpg" in errors and "readme.txt" in errors and "missing.jpg" in errors
    assert "notes.txt" not in errors
    assert read_image(out / "in" / "plain.jpg").shape == (240, 320, 3)
    assert read_image(out / "in" / "sub" / "odd.png").shape == (1001, 3, 3)
    records = read_jsonl(out / "detections.jsonl")
    assert [(Path(r["file"]).name, r["frame"], r["width"], r["height"], r["faces"]) for r in records] == [
        ("plain.jpg", 0, 320, 240, []),
        ("odd.png", 0, 3, 1001, []),
    ]


def test_real_face_is_annotated_and_reported(tmp_path: Path, colour_classifier: Path) -> None:
    frame = frame_with_face()
    source = tmp_path / "face.png"
    cv2.imwrite(str(source), frame)
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out), "--classifier", str(colour_classifier)]) == 0
    (record,) = read_jsonl(out / "detections.jsonl")
    (face,) = record["faces"]
    x0, y0, x1, y1 = face["box"]
    assert 0 <= x0 < 320 < x1 <= 640 and 0 <= y0 < 240 < y1 <= 480
    assert face["label"] in ("with_mask", "without_mask", "mask_worn_incorrectly")
    assert 0.0 < face["score"] <= 1.0 and face["face_confidence"] > 0.9
    annotated = read_image(out / "face.png")
    assert (annotated[y0 - 1 : y0 + 2, x0:x1] != frame[y0 - 1 : y0 + 2, x0:x1]).any()
    assert (annotated[:, :20] == frame[:, :20]).all()


def test_video_in_mp4_out_with_a_line_per_frame(tmp_path: Path, colour_classifier: Path) -> None:
    frames = [grey_frame(320, 240, value=60 + 10 * i) for i in range(6)]
    write_video(tmp_path / "clip.mkv", frames)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 500)
    out = tmp_path / "out"
    args = [str(tmp_path / "clip.mkv"), str(tmp_path / "broken.mp4"), "--out", str(out)]
    assert main([*args, "--classifier", str(colour_classifier)]) == 1
    records = read_jsonl(out / "detections.jsonl")
    assert [r["frame"] for r in records] == list(range(6))
    assert {(r["width"], r["height"]) for r in records} == {(320, 240)}
    with av.open(str(out / "clip.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = [frame.to_ndarray(format="bgr24") for frame in container.decode(stream)]
    assert len(decoded) == 6
    assert decoded[0].shape == (240, 320, 3)
    # Frames keep their order: brightness rises by 10 a frame in the input.
    means = [float(frame.mean()) for frame in decoded]
    assert all(later - earlier > 5 for earlier, later in itertools.pairwise(means))


def test_odd_sized_video_is_written_with_even_sides(tmp_path: Path, colour_classifier: Path) -> None:
    # MPEG-4 part 2 takes odd sides; H.264 in 4:2:0 does not, so the output drops the last column and row.
    frames = [grey_frame(321, 241) for _ in range(3)]
    write_video(tmp_path / "clip.mp4", frames, codec="mpeg4")
    out = tmp_path / "out"
    assert main([str(tmp_path / "clip.mp4"), "--out", str(out), "--classifier", str(colour_classifier)]) == 0
    with av.open(str(out / "clip.mp4")) as container:
        assert (container.streams.video[0].codec_context.width, container.streams.video[0].height) == (
            320,
            240,
        )
        assert sum(1 for _ in container.decode(video=0)) == 3


@pytest.mark.parametrize(("rotation", "bright_side"), [(90, "bottom"), (-90, "top"), (180, "right")])
def test_phone_video_with_a_display_rotation_is_analysed_and_written_upright(
    tmp_path: Path, colour_classifier: Path, rotation: int, bright_side: str
) -> None:
    # Stored as 96x48 landscape frames with a white band on the left; players show them turned by the
    # display rotation, and so must the annotated copy and the frame sizes in the JSON lines.
    image = grey_frame(96, 48, value=40)
    image[:, :24] = 250
    write_video(tmp_path / "phone.mp4", [image] * 3, rotation=rotation)
    out = tmp_path / "out"
    assert main([str(tmp_path / "phone.mp4"), "--out", str(out), "--classifier", str(colour_classifier)]) == 0
    width, height = (48, 96) if rotation in (90, -90) else (96, 48)
    assert {(r["width"], r["height"]) for r in read_jsonl(out / "detections.jsonl")} == {(width, height)}
    with av.open(str(out / "phone.mp4")) as container:
        luma = next(container.decode(video=0)).to_ndarray(format="gray").astype(float)
    assert luma.shape == (height, width)
    sides = {
        "top": luma[: height // 5].mean(),
        "bottom": luma[-height // 5 :].mean(),
        "left": luma[:, : width // 5].mean(),
        "right": luma[:, -width // 5 :].mean(),
    }
    assert max(sides, key=lambda side: sides[side]) == bright_side, sides


def test_missing_model_stops_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cv2.imwrite(str(tmp_path / "a.jpg"), grey_frame(64, 64))
    out = tmp_path / "out"
    assert (
        main([str(tmp_path / "a.jpg"), "--out", str(out), "--classifier", str(tmp_path / "nope.onnx")]) == 2
    )
    assert "nope.onnx" in capsys.readouterr().err
    assert not (out / "a.jpg").exists()
