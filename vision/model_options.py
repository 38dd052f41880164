"""The model settings that the server, predict.py, the evaluation and the benchmark all offer, declared once.

One definition, so that `python run_server.py`, `python predict.py` and `python -m training.evaluate` run
the same detector and classifier unless told otherwise, and accept the same spellings.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from vision.detector_factory import DEFAULT_DETECTOR, DETECTOR_NAMES, DetectorSpec
from vision.settings_fields import add_arguments, from_namespace, optional_path, setting

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


DETECTORS_DEFAULTS_DOC = ", ".join(f"`{DetectorSpec(name).describe()}`" for name in DETECTOR_NAMES)


@dataclass(frozen=True)
class ModelSettings:
    """The six model settings, declared once for the server, predict.py, the evaluation and the benchmark.

    The size and threshold default to None, which means the chosen detector's own defaults
    (`vision.detector_factory`); `detector_spec` turns them into what `build_detector` takes.
    """

    classifier: Path = setting(
        DEFAULT_CLASSIFIER,
        "mask classifier (`.onnx` or `.pt`)",
        parse=Path,
        shown_default="`models/mask_classifier.onnx`",
    )
    detector: str = setting(
        DEFAULT_DETECTOR,
        "face detector: `yunet` (YuNet, `yuface` wheel) or `res10` (the original project's SSD)",
        choices=DETECTOR_NAMES,
    )
    prototxt: Path | None = setting(
        None,
        "res10's prototxt (with `--detector res10` only; with another detector it is an error)",
        parse=optional_path,
        shown_default="packaged res10 SSD",
    )
    caffemodel: Path | None = setting(
        None,
        "res10's weights (with `--detector res10` only; with another detector they are an error)",
        parse=optional_path,
        shown_default="packaged res10 SSD",
    )
    detector_size: tuple[int, int] | None = setting(
        None,
        "detector input, `N` or `WxH` (YuNet: the frame is scaled to fit it, aspect kept; res10: "
        "stretched to it)",
        parse=detector_size_argument,
        metavar="WxH",
        shown_default="the detector's: " + DETECTORS_DEFAULTS_DOC,
    )
    confidence: float | None = setting(
        None,
        "face detector threshold, between 0 and 1",
        parse=confidence_argument,
        shown_default="the detector's: " + DETECTORS_DEFAULTS_DOC,
    )

    @property
    def detector_spec(self) -> DetectorSpec:
        """The detector these settings ask for."""
        return DetectorSpec(
            self.detector, self.detector_size, self.confidence, self.prototxt, self.caffemodel
        )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--classifier, --detector, --prototxt, --caffemodel, --detector-size and --confidence."""
    add_arguments(parser, ModelSettings)


def model_settings(args: argparse.Namespace) -> ModelSettings:
    """The model settings that parsed flags ask for."""
    return ModelSettings(**from_namespace(ModelSettings, args))


def detector_spec(args: argparse.Namespace) -> DetectorSpec:
    """The detector that parsed model flags ask for."""
    return model_settings(args).detector_spec
