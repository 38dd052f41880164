"""The one factory of face detectors, keyed by name: every command and the server build them here.

A detector is chosen by a `DetectorSpec` (name, network input, threshold, model files); unset fields
take the model's own defaults, which were chosen on the scene val split (models/MODEL_CARD.md).
A new model is a module with a class that honours `vision.detector.FaceDetector` and one entry in
`_BUILDERS` and `_DEFAULTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from vision import res10, yunet
from vision.detector import DetectorFileError, FaceDetector

DETECTOR_NAMES = ("yunet", "res10")
DEFAULT_DETECTOR = "yunet"


@dataclass(frozen=True)
class DetectorDefaults:
    input_size: tuple[int, int]
    confidence: float
    region_input: int
    """Side of the square input for the stream analyser's search regions: res10 finds a face that
    fills most of a 128 px patch; YuNet's scores and boxes fall apart on images under about 200 px
    whatever the face's size, and are steady from 256."""


_DEFAULTS: dict[str, DetectorDefaults] = {
    "res10": DetectorDefaults(res10.DEFAULT_INPUT, res10.DEFAULT_CONFIDENCE, 128),
    "yunet": DetectorDefaults(yunet.DEFAULT_INPUT, yunet.DEFAULT_CONFIDENCE, 256),
}


@dataclass(frozen=True)
class DetectorSpec:
    """Which face detector, and how: None takes the model's default."""

    name: str = DEFAULT_DETECTOR
    input_size: tuple[int, int] | None = None
    confidence: float | None = None
    prototxt: Path | None = None
    caffemodel: Path | None = None

    def __post_init__(self) -> None:
        if self.name not in _DEFAULTS:
            raise ValueError(
                f"unknown face detector {self.name!r}: choose one of {', '.join(DETECTOR_NAMES)}"
            )

    @property
    def resolved_input_size(self) -> tuple[int, int]:
        return self.input_size or _DEFAULTS[self.name].input_size

    @property
    def resolved_confidence(self) -> float:
        return self.confidence if self.confidence is not None else _DEFAULTS[self.name].confidence

    def describe(self) -> str:
        """For reports and logs: ``yunet 640x480 confidence 0.6``."""
        width, height = self.resolved_input_size
        return f"{self.name} {width}x{height} confidence {self.resolved_confidence}"


def _res10(spec: DetectorSpec) -> FaceDetector:
    return res10.Res10Detector(
        spec.prototxt,
        spec.caffemodel,
        input_size=spec.resolved_input_size,
        confidence=spec.resolved_confidence,
    )


def _yunet(spec: DetectorSpec) -> FaceDetector:
    if spec.prototxt is not None or spec.caffemodel is not None:
        raise DetectorFileError("--prototxt and --caffemodel are files of res10: add --detector res10")
    return yunet.YuNetDetector(input_size=spec.resolved_input_size, confidence=spec.resolved_confidence)


_BUILDERS: dict[str, Callable[[DetectorSpec], FaceDetector]] = {"res10": _res10, "yunet": _yunet}


def build_detector(spec: DetectorSpec | None = None) -> FaceDetector:
    """The detector that ``spec`` names (default: the server's default detector).

    Raises `vision.detector.DetectorFileError` with a readable message when its files or package are
    missing.
    """
    spec = spec or DetectorSpec()
    return _BUILDERS[spec.name](spec)


def region_input(name: str, side: int | None = None) -> int:
    """``side``, or the detector's own search-region input when None."""
    return side if side is not None else _DEFAULTS[name].region_input


def build_region_detector(spec: DetectorSpec, side: int | None = None) -> FaceDetector:
    """The same model at a square input (``side``, or the detector's own region input), for the
    stream analyser's search regions."""
    size = region_input(spec.name, side)
    return build_detector(replace(spec, input_size=(size, size)))
