"""The evaluation contract: matching and metrics on hand-written answers, and the command's modes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.vision_helpers import grey_frame, write_colour_classifier
from training.evaluate import SceneAnnotation, evaluate_scenes, main
from training.matching import classification_metrics, greedy_match
from training.voc import load_scene_annotations, parse_voc
from vision.boxes import iou

# Four annotated faces in a 320x100 photo: two large (short side >= 40 px), one 30 px, one 15 px.
# The third uses jolignier's name for the third class.
VOC_XML = """<annotation>
  <filename>{name}</filename>
  <size><width>320</width><height>100</height><depth>3</depth></size>
  <object><name>with_mask</name>
    <bndbox><xmin>10</xmin><ymin>10</ymin><xmax>60</xmax><ymax>70</ymax></bndbox></object>
  <object><name>without_mask</name>
    <bndbox><xmin>100</xmin><ymin>10</ymin><xmax>130</xmax><ymax>40</ymax></bndbox></object>
  <object><name>with_incorrect_mask</name>
    <bndbox><xmin>140</xmin><ymin>20</ymin><xmax>190</xmax><ymax>80</ymax></bndbox></object>
  <object><name>without_mask</name>
    <bndbox><xmin>5</xmin><ymin>80</ymin><xmax>20</xmax><ymax>95</ymax></bndbox></object>
</annotation>
"""

# What a fake detector + classifier reports for that photo.
PREDICTIONS = [
    ("with_mask", (12.0, 12.0, 60.0, 72.0), 0.9),  # face 0, IoU 0.90, right label
    ("with_mask", (102.0, 12.0, 130.0, 40.0), 0.8),  # face 1, IoU 0.87, wrong: without -> with
    ("without_mask", (140.0, 30.0, 190.0, 90.0), 0.7),  # face 2, IoU 0.71, wrong: incorrect -> without
    ("without_mask", (250.0, 10.0, 300.0, 60.0), 0.6),  # nothing there: a false positive
    ("with_mask", (10.0, 85.0, 30.0, 100.0), 0.6),  # near face 3 but IoU 0.24 < 0.4: false positive
]


def write_scene_dataset(root: Path, names: dict[str, str]) -> Path:
    """A dataset folder ``root/toyset`` with generated photos, the VOC above, and splits.csv beside it."""
    folder = root / "toyset"
    (folder / "images").mkdir(parents=True)
    (folder / "annotations").mkdir()
    for name in names:
        cv2.imwrite(str(folder / "images" / name), grey_frame(320, 100))
        (folder / "annotations" / (Path(name).stem + ".xml")).write_text(VOC_XML.format(name=name))
    lines = ["dataset,image,split", *(f"toyset,{name},{split}" for name, split in names.items())]
    (root / "splits.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def colour_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colour_classifier(tmp_path_factory.mktemp("model"))


def test_iou_of_known_boxes() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 0, 10), (0, 0, 0, 10)) == 0.0


def test_greedy_matching_takes_the_best_pairs_first() -> None:
    truths = [(0, 0, 10, 10), (5, 0, 15, 10)]
    # Prediction 0 overlaps truth 0 (0.67) and truth 1 (0.54); prediction 1 overlaps truth 0 best (0.9).
    # Taking predictions in order would give prediction 0 truth 0 and leave truth 1 unmatched.
    predictions = [(2, 0, 12, 10), (0, 0, 10, 9)]
    assert greedy_match(truths, predictions, 0.4) == [(0, 1), (1, 0)]
    assert greedy_match(truths, predictions, 0.6) == [(0, 1)]
    assert greedy_match(truths, [], 0.4) == []


def test_hand_written_voc_gives_the_known_answer(tmp_path: Path) -> None:
    folder = write_scene_dataset(tmp_path, {"photo.jpg": "test"})
    pairs = load_scene_annotations(folder)
    assert [face.label for face in pairs[0][1].faces] == [
        "with_mask",
        "without_mask",
        "mask_worn_incorrectly",
        "without_mask",
    ]

    def fake_predictor(image: np.ndarray, annotation: SceneAnnotation) -> list:
        assert image.shape == (100, 320, 3)
        return PREDICTIONS

    report = evaluate_scenes(pairs, fake_predictor, min_iou=0.4, root=folder)
    assert (report["images"], report["faces"], report["predictions"]) == (1, 4, 5)
    assert report["recall"] == pytest.approx(3 / 4)
    assert report["precision"] == pytest.approx(3 / 5)
    assert report["recall_40px"] == pytest.approx(2 / 2)
    assert report["recall_<20px"] == 0.0 and report["recall_20-40px"] == 1.0
    assert report["confusion"]["with_mask"] == {"with_mask": 1, "without_mask": 0, "mask_worn_incorrectly": 0}
    assert report["confusion"]["without_mask"]["with_mask"] == 1
    assert report["confusion"]["mask_worn_incorrectly"]["without_mask"] == 1
    assert report["accuracy_3class"] == pytest.approx(1 / 3)
    # Binary: with -> with right, without -> with wrong, incorrect -> without right (both violations).
    assert report["accuracy_binary"] == pytest.approx(2 / 3)
    # F1: with_mask 2*1/(1+2), without_mask 0, mask_worn_incorrectly 0.
    assert report["macro_f1"] == pytest.approx((2 / 3) / 3)
    assert [(error["true"], error["predicted"]) for error in report["misclassified"]] == [
        ("without_mask", "with_mask"),
        ("mask_worn_incorrectly", "without_mask"),
    ]
    assert report["misclassified"][0]["image"] == "images/photo.jpg"

    stricter = evaluate_scenes(pairs, fake_predictor, min_iou=0.8, root=folder)
    assert stricter["recall"] == pytest.approx(2 / 4)


def test_macro_f1_counts_the_classes_in_truth_or_predictions() -> None:
    confusion = {
        "with_mask": {"with_mask": 9, "without_mask": 1, "mask_worn_incorrectly": 0},
        "without_mask": {"with_mask": 0, "without_mask": 5, "mask_worn_incorrectly": 0},
        "mask_worn_incorrectly": {"with_mask": 0, "without_mask": 0, "mask_worn_incorrectly": 0},
    }
    metrics = classification_metrics(confusion)
    # A class that occurs in neither truth nor predictions is left out.
    assert metrics["f1_mask_worn_incorrectly"] is None
    assert metrics["macro_f1"] == pytest.approx((18 / 19 + 10 / 11) / 2)
    assert metrics["accuracy_binary"] == pytest.approx(14 / 15)
    # Predicting a class that has no true faces makes its F1 zero and lowers the mean, as in
    # scikit-learn; the binary view does not mind (both are violations).
    confusion["without_mask"] = {"with_mask": 0, "without_mask": 4, "mask_worn_incorrectly": 1}
    metrics = classification_metrics(confusion)
    assert metrics["f1_mask_worn_incorrectly"] == 0.0
    assert metrics["macro_f1"] == pytest.approx((18 / 19 + 8 / 10 + 0.0) / 3)
    assert metrics["accuracy_binary"] == pytest.approx(14 / 15)


def test_voc_parser_rejects_unknown_labels(tmp_path: Path) -> None:
    from training.voc import AnnotationError

    path = tmp_path / "bad.xml"
    path.write_text(VOC_XML.format(name="x.jpg").replace("with_mask", "helmet"))
    with pytest.raises(AnnotationError, match="helmet"):
        parse_voc(path)


def test_command_writes_every_key_and_honours_the_split(tmp_path: Path, colour_classifier: Path) -> None:
    folder = write_scene_dataset(tmp_path, {"a.jpg": "test", "b.jpg": "train", "c.jpg": "test"})
    out = tmp_path / "report.json"
    args = ["--scenes", str(folder), "--split", "test", "--json", str(out)]
    assert main([*args, "--classifier", str(colour_classifier)]) == 0
    report = json.loads(out.read_text())
    for key in ("images", "faces", "recall", "precision", "recall_40px", "accuracy_3class", "macro_f1"):
        assert key in report
    assert "accuracy_binary" in report and set(report["confusion"]) == {
        "with_mask",
        "without_mask",
        "mask_worn_incorrectly",
    }
    assert (report["images"], report["faces"]) == (2, 8)
    # Grey photos hold no faces: nothing is found and nothing is classified.
    assert report["recall"] == 0.0 and report["accuracy_3class"] is None
    # The server's defaults (vision.detector_factory): YuNet at 480x360.
    assert report["settings"]["iou"] == 0.4 and report["settings"]["detector_size"] == "480x360"
    assert report["settings"]["detector"] == "yunet"


def test_annotated_boxes_mode_classifies_every_face(tmp_path: Path, colour_classifier: Path) -> None:
    folder = write_scene_dataset(tmp_path, {"a.jpg": "test"})
    out = tmp_path / "report.json"
    args = ["--scenes", str(folder), "--boxes", "annotated", "--json", str(out)]
    args += ["--classifier", str(colour_classifier), "--confusion-png", str(tmp_path / "cm.png")]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["classified"] == report["faces"] == 4
    assert "recall" not in report
    assert cv2.imread(str(tmp_path / "cm.png")) is not None


def test_annotated_boxes_can_leave_out_small_faces_and_the_flip(
    tmp_path: Path, colour_classifier: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--min-side and --no-flip measure the crops as training's own figures do (faces >= 8 px, one pass)."""
    folder = write_scene_dataset(tmp_path, {"a.jpg": "test"})
    out = tmp_path / "report.json"
    args = [
        "--scenes",
        str(folder),
        "--boxes",
        "annotated",
        "--json",
        str(out),
        "--classifier",
        str(colour_classifier),
    ]
    # Short sides of the four faces: 50, 30, 50 and 15 px.
    for min_side, kept in ((0, 4), (20, 3), (40, 2)):
        assert main([*args, "--min-side", str(min_side)]) == 0
        report = json.loads(out.read_text())
        assert report["faces"] == report["classified"] == kept
        assert report["settings"]["flip_average"] is True
    assert main([*args, "--no-flip"]) == 0
    assert json.loads(out.read_text())["settings"]["flip_average"] is False
    capsys.readouterr()
    detected = [
        "--scenes",
        str(folder),
        "--json",
        str(tmp_path / "d.json"),
        "--classifier",
        str(colour_classifier),
    ]
    assert main([*detected, "--min-side", "8"]) == 2
    assert "--boxes annotated only" in capsys.readouterr().err
    assert main([*args, "--min-side", "-1"]) == 2
    assert "--min-side must be 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "d.json").exists()


def test_faces_mode_with_contact_sheet(tmp_path: Path, colour_classifier: Path) -> None:
    faces = tmp_path / "faces"
    rows = ["path,label,split,group"]
    # The colour classifier calls red with_mask (right) and blue mask_worn_incorrectly (wrong in three
    # classes, right in the binary view); the train-split image is not evaluated.
    for index, (label, colour, split) in enumerate(
        [
            ("with_mask", (0, 0, 220), "test"),
            ("without_mask", (220, 0, 0), "test"),
            ("with_mask", (0, 0, 9), "train"),
        ]
    ):
        (faces / label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(faces / label / f"{index}.png"), np.full((120, 90, 3), colour, dtype=np.uint8))
        rows.append(f"{label}/{index}.png,{label},{split},{index}")
    (faces / "splits.csv").write_text("\n".join(rows) + "\n")
    out, sheet = tmp_path / "faces.json", tmp_path / "errors.png"
    args = ["--faces", str(faces), "--split", "test", "--json", str(out), "--errors-png", str(sheet)]
    assert main([*args, "--classifier", str(colour_classifier)]) == 0
    report = json.loads(out.read_text())
    assert report["images"] == report["classified"] == 2
    assert report["confusion"]["with_mask"]["with_mask"] == 1
    assert report["confusion"]["without_mask"]["mask_worn_incorrectly"] == 1
    assert (report["accuracy_3class"], report["accuracy_binary"]) == (0.5, 1.0)
    assert [error["image"] for error in report["misclassified"]] == ["without_mask/1.png"]
    assert cv2.imread(str(sheet)) is not None


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_image_gives_a_clear_error_naming_the_file(
    tmp_path: Path, colour_classifier: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    folder = write_scene_dataset(tmp_path, {"a.jpg": "test", "broken.jpg": "test"})
    target = folder / "images" / "broken.jpg"
    data = target.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "garbage": b"not a jpeg" * 50, "empty": b""}
    target.write_bytes(damaged[damage])
    out = tmp_path / "report.json"
    args = ["--scenes", str(folder), "--json", str(out), "--classifier", str(colour_classifier)]
    assert main(args) == 2
    message = capsys.readouterr().err
    assert "broken.jpg" in message and message.startswith("error: ")
    assert not out.exists()


def test_missing_model_and_missing_split_are_clear_errors(
    tmp_path: Path, colour_classifier: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_scene_dataset(tmp_path, {"a.jpg": "test"})
    out = str(tmp_path / "r.json")
    assert main(["--scenes", str(folder), "--json", out, "--classifier", str(tmp_path / "none.onnx")]) == 2
    assert "none.onnx" in capsys.readouterr().err
    args = ["--scenes", str(folder), "--split", "val", "--json", out, "--classifier", str(colour_classifier)]
    assert main(args) == 2
    assert "val" in capsys.readouterr().err


def test_detector_study_input_sizes_keep_the_frame_aspect() -> None:
    from training.detector_study import network_input

    assert network_input("400x400", (480, 640, 3)) == (400, 400)
    assert network_input("aspect400", (480, 640, 3)) == (400, 300)
    assert network_input("aspect400", (640, 480, 3)) == (300, 400)
    assert network_input("aspect600", (366, 512, 3)) == (600, 428)


def test_missing_detector_file_is_a_clear_error(
    tmp_path: Path, colour_classifier: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_scene_dataset(tmp_path, {"a.jpg": "test"})
    args = ["--scenes", str(folder), "--json", str(tmp_path / "r.json")]
    args += ["--classifier", str(colour_classifier)]
    assert main([*args, "--detector", "res10", "--prototxt", str(tmp_path / "missing.prototxt")]) == 2
    assert "missing.prototxt" in capsys.readouterr().err


# Issue 10's figures on a hand-written 640x480 photo: faces in every size band and class.
BANDS_XML = """<annotation>
  <filename>big.jpg</filename>
  <size><width>640</width><height>480</height><depth>3</depth></size>
  <object><name>with_mask</name>
    <bndbox><xmin>10</xmin><ymin>10</ymin><xmax>60</xmax><ymax>60</ymax></bndbox></object>
  <object><name>without_mask</name>
    <bndbox><xmin>100</xmin><ymin>10</ymin><xmax>200</xmax><ymax>110</ymax></bndbox></object>
  <object><name>with_mask</name>
    <bndbox><xmin>300</xmin><ymin>10</ymin><xmax>500</xmax><ymax>210</ymax></bndbox></object>
  <object><name>mask_weared_incorrect</name>
    <bndbox><xmin>10</xmin><ymin>300</ymin><xmax>70</xmax><ymax>360</ymax></bndbox></object>
  <object><name>with_mask</name>
    <bndbox><xmin>100</xmin><ymin>300</ymin><xmax>130</xmax><ymax>330</ymax></bndbox></object>
</annotation>
"""
BANDS_PREDICTIONS = [
    ("with_mask", (10.0, 10.0, 60.0, 60.0), 0.9),  # 50 px with_mask: found, right
    ("with_mask", (100.0, 10.0, 200.0, 110.0), 0.9),  # 100 px without_mask: found, binary wrong
    # the 200 px with_mask face: not found
    ("without_mask", (10.0, 300.0, 70.0, 360.0), 0.9),  # 60 px worn incorrectly: found, binary right
    ("with_mask", (100.0, 300.0, 130.0, 330.0), 0.9),  # 30 px: found (not in the >= 40 px figures)
    ("with_mask", (600.0, 400.0, 625.0, 425.0), 0.8),  # unmatched 25 px, judged a face
    ("with_mask", (500.0, 300.0, 550.0, 350.0), 0.8),  # unmatched 50 px, judged not a face
    ("with_mask", (400.0, 300.0, 460.0, 360.0), 0.8),  # unmatched 60 px, never judged
    ("with_mask", (300.0, 400.0, 310.0, 410.0), 0.8),  # unmatched 10 px: too small to judge
]


def test_size_bands_classes_found_and_right_and_verified_precision(tmp_path: Path) -> None:
    from training.judgements import Judgement, Judgements

    folder = tmp_path / "toyset"
    (folder / "images").mkdir(parents=True)
    (folder / "annotations").mkdir()
    cv2.imwrite(str(folder / "images" / "big.jpg"), grey_frame(640, 480))
    (folder / "annotations" / "big.xml").write_text(BANDS_XML)
    (tmp_path / "splits.csv").write_text("dataset,image,split\ntoyset,big.jpg,test\n")
    pairs = load_scene_annotations(folder)
    judgements = Judgements(
        detector="toy",
        entries=(
            Judgement("toyset/images/big.jpg", (600.0, 400.0, 625.0, 425.0), "face"),
            Judgement("toyset/images/big.jpg", (501.0, 300.0, 550.0, 351.0), "not_face"),
        ),
    )
    report = evaluate_scenes(
        pairs, lambda image, annotation: BANDS_PREDICTIONS, root=folder, judgements=judgements
    )
    assert report["recall_by_size"] == {"40-80": 1.0, "80-160": 1.0, "160+": 0.0}
    assert report["recall_by_class"] == {"with_mask": 0.5, "without_mask": 1.0, "mask_worn_incorrectly": 1.0}
    assert report["found_and_right_40px"] == pytest.approx(2 / 4)
    assert report["matched_iou"] == pytest.approx(1.0)
    # 4 matched + 1 judged a face, of 8 predictions; the unjudged and the tiny box count as wrong.
    assert report["verified_precision"] == pytest.approx(5 / 8)
    assert report["judged"] == {"detector": "toy", "face": 1, "not_face": 1, "unjudged": 1, "under_20px": 1}
    assert report["precision"] == pytest.approx(4 / 8)
    unjudged = [entry for entry in report["unmatched_detections"] if entry["verdict"] is None]
    assert [entry["box"] for entry in unjudged] == [[400.0, 300.0, 460.0, 360.0]]
    # Without judgements there is no verified figure, and every key of before is still there.
    plain = evaluate_scenes(pairs, lambda image, annotation: BANDS_PREDICTIONS, root=folder)
    assert plain["verified_precision"] is None and plain["judged"]["unjudged"] == 3
    assert {"recall", "precision", "recall_40px", "accuracy_binary", "macro_f1"} <= plain.keys()


def test_detector_flag_chooses_the_model_in_the_evaluation(
    tmp_path: Path, colour_classifier: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_scene_dataset(tmp_path, {"a.jpg": "test"})
    for name in ("res10", "yunet"):
        out = tmp_path / f"{name}.json"
        args = ["--scenes", str(folder), "--json", str(out), "--classifier", str(colour_classifier)]
        assert main([*args, "--detector", name]) == 0
        settings = json.loads(out.read_text())["settings"]
        assert settings["detector"] == name
        assert settings["detector_size"] == {"res10": "300x300", "yunet": "480x360"}[name]
    assert main([*args, "--detector", "yunet", "--prototxt", str(tmp_path / "x.prototxt")]) == 2
    assert "res10" in capsys.readouterr().err


def test_several_datasets_pool_into_one_report(tmp_path: Path, colour_classifier: Path) -> None:
    first = write_scene_dataset(tmp_path / "one", {"a.jpg": "test", "b.jpg": "test"})
    second = write_scene_dataset(tmp_path / "two", {"c.jpg": "test"})
    out = tmp_path / "pooled.json"
    args = ["--scenes", str(first), "--scenes", str(second), "--split", "test", "--json", str(out)]
    assert main([*args, "--classifier", str(colour_classifier), "--boxes", "annotated"]) == 0
    report = json.loads(out.read_text())
    assert (report["images"], report["faces"], report["classified"]) == (3, 12, 12)
    assert report["settings"]["scenes"] == f"{first.as_posix()},{second.as_posix()}"


def test_judgements_of_another_detector_run_are_not_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.evaluate import _judgements_for
    from training.judgements import Judgement, Judgements, load_judgements, save_judgements

    path = tmp_path / "judged.json"
    save_judgements(
        Judgements("yunet 480x360 confidence 0.6", (Judgement("d/images/a.jpg", (0, 0, 9, 9), "face"),)), path
    )
    assert load_judgements(path).verdict("d/images/a.jpg", (0, 0, 9, 9)) == "face"
    assert load_judgements(path).verdict("d/images/a.jpg", (0, 0, 5, 9)) is None
    assert _judgements_for(path, "yunet 480x360 confidence 0.6") is not None
    assert _judgements_for(path, "yunet 480x360 confidence 0.5") is None
    assert "not computed" in capsys.readouterr().err
    assert _judgements_for(tmp_path / "absent.json", "yunet 480x360 confidence 0.6") is None
