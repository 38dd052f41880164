"""Shared by the vision, evaluation and predict tests: data locations and a throwaway classifier.

The photos stay in ../shared/data; tests that need them skip with a reason when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
FACES_DIR = DATA_DIR / "faces"
SCENES_DIR = DATA_DIR / "scenes"
COMMITTED_ONNX = REPO_ROOT / "models" / "mask_classifier.onnx"
COMMITTED_TORCH = REPO_ROOT / "models" / "mask_classifier.pt"


def require_dir(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"needs the real data of ../shared/data ({path} not found)")
    return path


def write_colour_classifier(folder: Path) -> Path:
    """A tiny ONNX "classifier" whose label is the crop's dominant colour: for plumbing tests.

    Logits are 10x the mean of the R, G and B channels, so a red crop is ``with_mask``, a green one
    ``without_mask`` and a blue one ``mask_worn_incorrectly``. It carries the real metadata and
    loads through ``MaskClassifier`` like a trained model, without torch (fast to make).
    """
    import onnx
    from onnx import TensorProto, helper

    from vision.classifier import ClassifierInfo
    from vision.labels import LABELS

    weights = helper.make_tensor("weights", TensorProto.FLOAT, [3, 3], (10.0 * np.eye(3)).ravel().tolist())
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["crops"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["means"]),
            helper.make_node("MatMul", ["means", "weights"], ["logits"]),
        ],
        "colour_classifier",
        [helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["batch", 3, 128, 128])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in ClassifierInfo("mobilenet_v2", LABELS, 128, 0.15).to_metadata().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path = folder / "colour_classifier.onnx"
    onnx.save(model, str(path))
    return path


def grey_frame(width: int, height: int, value: int = 128) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)
