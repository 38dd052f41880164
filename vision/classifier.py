"""Three-class mask classifier over face crops, served by onnxruntime or torch.

The ONNX file is the default (onnxruntime runs it several times faster than torch eager on a small CPU);
the torch checkpoint stays available as a second backend. Both files carry the same metadata: labels,
input size and crop margin, so a model trained with other settings is used with the settings it was
trained with.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vision.crops import Box, crop_face, crops_to_batch


class ModelFileError(RuntimeError):
    """A model file is missing, unreadable or not a mask classifier."""


@dataclass(frozen=True)
class ClassifierInfo:
    """What the exporter stores beside the weights."""

    arch: str
    labels: tuple[str, ...]
    input_size: int
    margin: float

    def to_metadata(self) -> dict[str, str]:
        return {
            "arch": self.arch,
            "labels": json.dumps(list(self.labels)),
            "input_size": str(self.input_size),
            "margin": str(self.margin),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> ClassifierInfo:
        try:
            labels = meta["labels"]
            if isinstance(labels, str):
                labels = json.loads(labels)
            return cls(
                arch=str(meta["arch"]),
                labels=tuple(str(label) for label in labels),
                input_size=int(meta["input_size"]),
                margin=float(meta["margin"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelFileError(f"model metadata is incomplete: {exc}") from exc


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class MaskClassifier:
    """Classifies face crops; all faces of a frame go through the network in one batch.

    With ``flip_average`` (the default) each crop is also classified mirrored, in the same batch, and
    the two probability vectors are averaged: on the validation crops this raised binary accuracy by
    a little on every source for one more crop per face (models/MODEL_CARD.md, "Flip averaging").
    """

    def __init__(self, model_path: str | Path, threads: int = 2, flip_average: bool = True) -> None:
        path = Path(model_path)
        self.flip_average = flip_average
        if not path.is_file():
            raise ModelFileError(f"classifier model not found: {path}")
        self.model_path = path
        if path.suffix == ".onnx":
            self.backend = "onnx"
            self.info, self._run = _load_onnx(path, threads)
        elif path.suffix in (".pt", ".pth"):
            self.backend = "torch"
            self.info, self._run = _load_torch(path, threads)
        else:
            raise ModelFileError(f"unsupported classifier file {path.name!r}: expected .onnx or .pt")

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    @property
    def input_size(self) -> int:
        return self.info.input_size

    def crop(self, image: np.ndarray, box: Box) -> np.ndarray:
        return crop_face(image, box, self.info.input_size, self.info.margin)

    def predict_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities, shape (len(crops), len(labels)), for BGR crops of input_size."""
        if not self.flip_average:
            return softmax(self.logits(crops)).astype(np.float32)
        both = softmax(self.logits([*crops, *(crop[:, ::-1] for crop in crops)]))
        return ((both[: len(crops)] + both[len(crops) :]) / 2.0).astype(np.float32)

    def logits(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """The network's raw outputs, shape (len(crops), len(labels)), one pass per crop, no flip."""
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self._run(crops_to_batch(crops))

    def predict_boxes(self, image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        """Class probabilities for each face box of a BGR image, in one batch."""
        return self.predict_crops([self.crop(image, box) for box in boxes])


def _load_onnx(path: Path, threads: int) -> tuple[ClassifierInfo, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning threads after a call slow the OpenCV detector that runs next in the same worker.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
        raise ModelFileError(f"cannot load ONNX classifier {path}: {exc}") from exc
    info = ClassifierInfo.from_metadata(session.get_modelmeta().custom_metadata_map)
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {input_name: batch})[0])

    return info, run


def _load_torch(path: Path, threads: int) -> tuple[ClassifierInfo, Any]:
    import torch

    from vision.networks import build_network

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle and zip errors of a corrupt file
        raise ModelFileError(f"cannot load torch classifier {path}: {exc}") from exc
    info = ClassifierInfo.from_metadata(checkpoint)
    network = build_network(info.arch, len(info.labels))
    network.load_state_dict(checkpoint["state_dict"])
    network.eval()
    torch.set_num_threads(threads)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return network(torch.from_numpy(batch)).numpy()

    return info, run
