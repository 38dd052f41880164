"""The model settings that the server, predict.py and the evaluation all offer: defaults, parsing, flags.

One definition, so that `python run_server.py`, `python predict.py` and `python -m training.evaluate` run
the same detector and classifier unless told otherwise, and accept the same spellings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vision.detectors import DEFAULT_DETECTOR, DETECTOR_NAMES, DetectorSpec

DEFAULT_CLASSIFIER = Path(__file__).resolve().parents[1] / "models" / "mask_classifier.onnx"
DETECTOR_SIDES = (32, 2048)
"""Smallest and largest side of the face detector's network input, in pixels."""


def parse_detector_size(text: str) -> tuple[int, int]:
    """`300` -> (300, 300); `400x300` -> (400, 300) (width x height). ValueError when malformed."""
    try:
        sides = [int(part) for part in text.lower().split("x")]
    except ValueError as exc:
        raise ValueError(f"detector size {text!r} must be N or WxH, such as 300 or 400x300") from exc
    if len(sides) == 1:
        sides *= 2
    low, high = DETECTOR_SIDES
    if len(sides) != 2 or min(sides) < low or max(sides) > high:
        raise ValueError(f"detector size {text!r} must be N or WxH with sides in {low}..{high}")
    return sides[0], sides[1]


def detector_size_argument(text: str) -> tuple[int, int]:
    """`parse_detector_size` for argparse: its message becomes the command line's error."""
    try:
        return parse_detector_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def confidence_argument(text: str) -> float:
    """A detector threshold, strictly between 0 (every proposal a face) and 1 (none)."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"confidence {text!r} must be a number between 0 and 1") from exc
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"confidence {text!r} must be between 0 and 1")
    return value


DETECTOR_DEFAULTS_TEXT = ", ".join(DetectorSpec(name).describe() for name in DETECTOR_NAMES)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--classifier, --detector, --prototxt, --caffemodel, --detector-size and --confidence.

    The size and threshold default to None, which means the chosen detector's own defaults
    (`vision.detectors`); `detector_spec` turns the parsed flags into what `build_detector` takes.
    """
    parser.add_argument("--classifier", type=Path, default=DEFAULT_CLASSIFIER, help="a .onnx or .pt model")
    parser.add_argument(
        "--detector",
        choices=DETECTOR_NAMES,
        default=DEFAULT_DETECTOR,
        help=f"face detector (default {DEFAULT_DETECTOR}; res10 is the original project's)",
    )
    parser.add_argument("--prototxt", type=Path, help="res10 prototxt (default: the packaged one)")
    parser.add_argument("--caffemodel", type=Path, help="res10 weights (default: the packaged ones)")
    parser.add_argument(
        "--detector-size",
        type=detector_size_argument,
        default=None,
        metavar="WxH",
        help="face detector network input, N or WxH (default: the detector's own, "
        + DETECTOR_DEFAULTS_TEXT
        + ")",
    )
    parser.add_argument(
        "--confidence",
        type=confidence_argument,
        default=None,
        help="face detector threshold (default: the detector's own, " + DETECTOR_DEFAULTS_TEXT + ")",
    )


def detector_spec(args: argparse.Namespace) -> DetectorSpec:
    """The detector that parsed model flags ask for."""
    return DetectorSpec(
        name=args.detector,
        input_size=args.detector_size,
        confidence=args.confidence,
        prototxt=args.prototxt,
        caffemodel=args.caffemodel,
    )
