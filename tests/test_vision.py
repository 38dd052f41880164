"""The vision core on frames the tests make and on real photos from ../shared/data."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.vision_helpers import (
    COMMITTED_ONNX,
    COMMITTED_TORCH,
    FACES_DIR,
    SCENES_DIR,
    grey_frame,
    require_dir,
)
from training.matching import greedy_match
from training.voc import parse_voc
from vision.boxes import iou
from vision.crops import crop_face, square_crop_box
from vision.detector import FaceBox, FaceDetector
from vision.detector_factory import DETECTOR_NAMES, DetectorSpec, build_detector
from vision.draw import draw_detections
from vision.image_files import read_image
from vision.labels import LABEL_COLOURS_BGR, LABELS
from vision.pipeline import Detection
from vision.res10 import inside_fraction

# A bare face (faces/ test split) that the detector finds at confidence > 0.99 at every frame size below.
FACE_PHOTO = FACES_DIR / "without_mask" / "cd7_0_0_jiayuanyuan_0015_9c16b3ca.jpg"
# Scene test photos whose annotated faces are all >= 40 px and whose every face is annotated (in
# maksssksksss244.jpg, used before, YuNet also finds a blurred background face that has no box).
SCENE_PHOTOS = (
    ("jolignier", "4a5479fabf998dbdcef65d0d2cd9ea79.jpg"),
    ("andrewmvd", "maksssksksss397.jpg"),
)


@pytest.fixture(scope="module", params=DETECTOR_NAMES)
def detector(request: pytest.FixtureRequest) -> FaceDetector:
    """Every detector of `vision.detector_factory`, at its defaults: each test holds for all of them."""
    return build_detector(DetectorSpec(request.param))


def face_photo() -> np.ndarray:
    if not FACE_PHOTO.is_file():
        pytest.skip(f"needs the real data of ../shared/data ({FACE_PHOTO} not found)")
    return read_image(FACE_PHOTO)


def frame_with_face(width: int, height: int, face_height: int, centre_x: int | None = None) -> np.ndarray:
    """A grey frame with the face photo pasted at ``face_height`` px, centred unless ``centre_x``."""
    face = face_photo()
    scale = face_height / face.shape[0]
    tile = cv2.resize(face, (round(face.shape[1] * scale), face_height), interpolation=cv2.INTER_AREA)
    frame = grey_frame(width, height)
    x0 = (width - tile.shape[1]) // 2 if centre_x is None else centre_x - tile.shape[1] // 2
    y0 = (height - face_height) // 2
    left, right = max(x0, 0), min(x0 + tile.shape[1], width)
    frame[y0 : y0 + face_height, left:right] = tile[:, left - x0 : right - x0]
    return frame


def assert_inside(boxes: list[tuple[int, int, int, int]], width: int, height: int) -> None:
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (x0, y0, x1, y1, width, height)


@pytest.mark.parametrize("size", [(640, 480), (1, 1), (2, 2), (4000, 3000), (480, 640)])
def test_blank_frame_has_no_faces(detector: FaceDetector, size: tuple[int, int]) -> None:
    assert detector.detect(grey_frame(*size)) == []
    assert detector.detect(np.zeros((size[1], size[0], 3), dtype=np.uint8)) == []


@pytest.mark.parametrize(
    ("width", "height", "face_height"),
    [(640, 480, 300), (480, 640, 300), (4000, 3000, 1500), (320, 240, 160)],
    ids=["landscape", "portrait", "4000x3000", "small"],
)
def test_face_found_inside_frame_of_any_size(
    detector: FaceDetector, width: int, height: int, face_height: int
) -> None:
    faces = detector.detect(frame_with_face(width, height, face_height))
    assert len(faces) == 1
    assert_inside([face.box for face in faces], width, height)
    x0, y0, x1, y1 = faces[0].box
    # The box is around the pasted face, in frame pixels (not network-input pixels).
    assert abs((x0 + x1) / 2 - width / 2) < 0.1 * width
    assert 0.5 * face_height < y1 - y0 < 1.3 * face_height


@pytest.mark.parametrize("conversion", ["grayscale", "gray_with_channel", "bgra"])
def test_grayscale_and_rgba_frames(detector: FaceDetector, conversion: str) -> None:
    frame = frame_with_face(640, 480, 300)
    if conversion == "grayscale":
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    elif conversion == "gray_with_channel":
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[:, :, None]
    else:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
    faces = detector.detect(frame)
    assert len(faces) == 1
    assert_inside([face.box for face in faces], 640, 480)


@pytest.mark.parametrize("face_height", [400, 440])
def test_close_up_face_gives_one_box_without_a_phantom(detector: FaceDetector, face_height: int) -> None:
    # A face filling most of the frame, as at a kiosk: res10 adds a confident phantom box below and to
    # the right, mostly outside the frame, which the detector must drop.
    faces = detector.detect(frame_with_face(640, 480, face_height))
    assert len(faces) == 1, faces
    x0, _, x1, _ = faces[0].box
    assert x0 < 320 < x1


def test_inside_fraction_of_boxes() -> None:
    boxes = np.array([[0.2, 0.2, 0.6, 0.6], [0.8, 0.5, 1.2, 1.5], [1.1, 0.0, 1.5, 0.5]], dtype=np.float32)
    assert inside_fraction(boxes) == pytest.approx([1.0, 0.25, 0.0])


def test_face_cut_by_the_frame_edge_gets_a_clipped_box(detector: FaceDetector) -> None:
    frame = frame_with_face(640, 480, 360, centre_x=20)
    faces = detector.detect(frame)
    assert faces, "a face half outside the frame should still be found"
    assert_inside([face.box for face in faces], 640, 480)
    # At the edge: res10 boxes the whole face and is clipped to 0; YuNet boxes the visible part.
    assert faces[0].box[0] <= 8


@pytest.mark.parametrize(("dataset", "name"), SCENE_PHOTOS)
def test_real_scene_faces_are_found_near_the_annotated_ones(
    detector: FaceDetector, dataset: str, name: str
) -> None:
    folder = require_dir(SCENES_DIR / dataset)
    annotation = parse_voc(folder / "annotations" / (Path(name).stem + ".xml"))
    image = read_image(folder / "images" / name)
    faces = detector.detect(image)
    truths = [face.box for face in annotation.faces]
    pairs = greedy_match(truths, [face.box for face in faces], 0.4)
    assert len(pairs) == len(truths), [(t, [round(iou(t, f.box), 2) for f in faces]) for t in truths]
    assert len(faces) == len(truths)
    assert_inside([face.box for face in faces], image.shape[1], image.shape[0])


def test_square_crop_box_is_square_with_margin_around_the_long_side() -> None:
    x0, y0, x1, y1 = square_crop_box((100.0, 50.0, 140.0, 130.0), margin=0.15)
    assert x1 - x0 == pytest.approx(80.0 * 1.3)
    assert y1 - y0 == pytest.approx(80.0 * 1.3)
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((120.0, 90.0))


def test_crop_includes_the_margin_around_the_box() -> None:
    image = grey_frame(400, 400, value=0)
    image[150:250, 150:250] = (255, 255, 255)  # the "face": exactly the box
    crop = crop_face(image, (150, 150, 250, 250), size=130, margin=0.15)
    assert crop.shape == (130, 130, 3)
    white_rows = np.flatnonzero(crop[:, 65, 0] > 128)
    # The box fills 1 / 1.3 of the crop: 100 of 130 px, with 15 px of margin on each side.
    assert white_rows[0] == pytest.approx(15, abs=1)
    assert white_rows[-1] == pytest.approx(114, abs=1)
    assert crop[:10, :, 0].max() == 0 and crop[-10:, :, 0].max() == 0


def test_crop_at_the_frame_edge_replicates_the_border() -> None:
    image = grey_frame(200, 200)
    image[:, :2] = (0, 0, 255)  # a red left border column
    image[:2, :] = (255, 0, 0)  # a blue top border row
    crop = crop_face(image, (0, 0, 60, 60), size=78, margin=0.15)
    assert crop.shape == (78, 78, 3)
    # The margin lies outside the image on the left and top: filled with the border, never black.
    assert crop[40, :5].tolist() == [[0, 0, 255]] * 5
    assert crop[:5, 40].tolist() == [[255, 0, 0]] * 5
    assert (crop.reshape(-1, 3).max(axis=1) > 0).all()


@pytest.mark.parametrize("label", LABELS)
def test_draw_detections_outlines_the_box_in_the_label_colour(label: str) -> None:
    frame = grey_frame(640, 480)
    box = (200, 150, 360, 330)
    draw_detections(frame, [Detection(box=box, label=label, score=0.93, face_confidence=0.99)])
    colour = list(LABEL_COLOURS_BGR[label])
    x0, y0, x1, y1 = box
    for x, y in [(x0, (y0 + y1) // 2), (x1, (y0 + y1) // 2), ((x0 + x1) // 2, y1), (x0 + 5, y1)]:
        assert frame[y, x].tolist() == colour, (x, y)
    # Inside the box (away from the label) nothing changed.
    assert (frame[y0 + 40 : y1 - 40, x0 + 40 : x1 - 40] == 128).all()
    # The label with its score sits above the box.
    assert (frame[y0 - 15 : y0 - 2, x0 : x0 + 40] != 128).any()


def backend_parity_crops(count: int) -> list[np.ndarray]:
    """Real face crops: faces/ test images and annotated scene faces, cut as the classifier cuts them."""
    from training.data import face_image_box
    from training.voc import load_scene_annotations
    from vision.classifier import MaskClassifier

    require_dir(FACES_DIR)
    classifier = MaskClassifier(COMMITTED_ONNX)
    with (FACES_DIR / "splits.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    crops = []
    for row in rows[:: max(1, len(rows) // count)][:count]:
        image = read_image(FACES_DIR / row["path"])
        crops.append(classifier.crop(image, face_image_box(image, classifier.info.margin)))
    for image_path, annotation in load_scene_annotations(require_dir(SCENES_DIR / "jolignier"), "test")[:4]:
        image = read_image(image_path)
        crops.extend(classifier.crop(image, face.box) for face in annotation.faces)
    return crops


@pytest.mark.slow
def test_onnx_and_torch_backends_give_the_same_probabilities() -> None:
    if not (COMMITTED_ONNX.is_file() and COMMITTED_TORCH.is_file()):
        pytest.skip(f"needs the trained models {COMMITTED_ONNX.name} and {COMMITTED_TORCH.name} in models/")
    from vision.classifier import MaskClassifier

    onnx_model, torch_model = MaskClassifier(COMMITTED_ONNX), MaskClassifier(COMMITTED_TORCH)
    assert onnx_model.backend == "onnx" and torch_model.backend == "torch"
    assert onnx_model.labels == torch_model.labels == LABELS
    crops = backend_parity_crops(24)
    assert len(crops) >= 24
    onnx_probs = onnx_model.predict_crops(crops)
    torch_probs = torch_model.predict_crops(crops)
    assert onnx_probs.shape == (len(crops), len(LABELS))
    assert np.abs(onnx_probs - torch_probs).max() < 1e-4
    # A trained model on real faces is confident somewhere: this is no comparison of two near-uniform outputs.
    assert onnx_probs.max(axis=1).mean() > 0.6
    # Batch of one and batch of many agree too (the ONNX batch axis is dynamic).
    single = np.concatenate([onnx_model.predict_crops([crop]) for crop in crops[:4]])
    assert np.abs(single - onnx_probs[:4]).max() < 1e-4


def test_every_detector_honours_the_protocol(detector: FaceDetector) -> None:
    # vision.detector.FaceDetector: frame-pixel int boxes, clipped, >= 2 px, confidence in [threshold, 1],
    # most confident first; on a real crowd photo (many faces of every size) and on its BGRA and
    # portrait-cropped versions.
    folder = require_dir(SCENES_DIR / "andrewmvd")
    image = read_image(folder / "images" / "maksssksksss244.jpg")
    portrait = np.ascontiguousarray(image[:, : image.shape[0] * 3 // 4])
    for frame in (image, cv2.cvtColor(image, cv2.COLOR_BGR2BGRA), portrait):
        faces = detector.detect(frame)
        assert faces, "a crowd photo has faces"
        height, width = frame.shape[:2]
        for face in faces:
            assert isinstance(face, FaceBox) and all(isinstance(v, int) for v in face.box)
            x0, y0, x1, y1 = face.box
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            assert x1 - x0 >= 2 and y1 - y0 >= 2
            assert detector.confidence <= face.confidence <= 1.0
        confidences = [face.confidence for face in faces]
        assert confidences == sorted(confidences, reverse=True)
    assert isinstance(detector.name, str) and detector.name in DETECTOR_NAMES
    # The threshold only filters: a stricter detector reports exactly the surer faces.
    strict = build_detector(DetectorSpec(detector.name, confidence=0.9))
    assert strict.detect(image) == [face for face in detector.detect(image) if face.confidence >= 0.9]
