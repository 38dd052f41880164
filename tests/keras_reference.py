"""A NumPy interpreter of a Keras functional model's ``model_config``: the reference the converted torch
network is tested against.

It knows nothing of torchvision or of `training.pretrained`'s name mapping: it walks the Keras layer
graph as the file describes it (NHWC, Keras' own padding rules, each layer's own epsilon and activation),
so a weight copied into the wrong torch layer, a kernel transposed the wrong way or a wrong padding
makes the two disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from training.pretrained import KerasModel


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``padding='same'``: the extra pixel, if any, goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _windows(x: np.ndarray, config: Mapping[str, Any], kernel: tuple[int, int]) -> np.ndarray:
    """(N, H', W', C, kh, kw) patches of an NHWC tensor for a convolution's padding and strides."""
    stride_h, stride_w = config.get("strides", (1, 1))
    if config.get("padding", "valid") == "same":
        top, bottom = _same_padding(x.shape[1], kernel[0], stride_h)
        left, right = _same_padding(x.shape[2], kernel[1], stride_w)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    patches = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(1, 2))
    return patches[:, ::stride_h, ::stride_w]


def _apply(layer: dict[str, Any], inputs: list[np.ndarray], weights: dict[str, np.ndarray]) -> np.ndarray:
    kind, config = layer["class_name"], layer["config"]
    x = inputs[0]
    if kind in ("InputLayer", "Dropout"):
        return x
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = config["padding"]
        return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    if kind == "Conv2D":
        kernel = weights["kernel"]
        out = np.einsum("nhwcij,ijco->nhwo", _windows(x, config, kernel.shape[:2]), kernel, optimize=True)
        return out + weights["bias"] if config.get("use_bias") else out
    if kind == "DepthwiseConv2D":
        kernel = weights["depthwise_kernel"][..., 0]
        return np.einsum("nhwcij,ijc->nhwc", _windows(x, config, kernel.shape[:2]), kernel, optimize=True)
    if kind == "BatchNormalization":
        scale = weights["gamma"] / np.sqrt(weights["moving_variance"] + config["epsilon"])
        return (x - weights["moving_mean"]) * scale + weights["beta"]
    if kind == "ReLU":
        out = np.maximum(x, 0.0)
        return np.minimum(out, config["max_value"]) if config.get("max_value") is not None else out
    if kind == "Add":
        return inputs[0] + inputs[1]
    if kind == "AveragePooling2D":
        pool = tuple(config["pool_size"])
        patches = _windows(x, {"strides": config["strides"], "padding": config["padding"]}, pool)
        return patches.mean(axis=(4, 5))
    if kind == "Flatten":
        return x.reshape(len(x), -1)
    if kind == "Dense":
        out = x @ weights["kernel"] + weights["bias"]
        if config["activation"] == "relu":
            return np.maximum(out, 0.0)
        if config["activation"] == "softmax":
            shifted = np.exp(out - out.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)
        return out
    raise NotImplementedError(f"layer type {kind} is not interpreted")


def run_keras(model: KerasModel, inputs: Mapping[str, np.ndarray], output: str) -> np.ndarray:
    """The value of layer ``output`` given the values of the layers in ``inputs`` (NHWC float64).

    The config lists layers in an order where each comes after its inputs; a layer whose inputs are
    not (yet) known is skipped, so that a sub-graph (one block) runs from a hand-made tensor."""
    values: dict[str, np.ndarray] = {name: np.asarray(v, dtype=np.float64) for name, v in inputs.items()}
    for layer in model.layers:
        name = layer["name"]
        if name in values:
            continue
        nodes = layer["inbound_nodes"]
        sources = [entry[0] for entry in nodes[0]] if nodes else []
        if not sources or any(source not in values for source in sources):
            continue
        weights = {key: w.astype(np.float64) for key, w in model.weights.get(name, {}).items()}
        values[name] = _apply(layer, [values[source] for source in sources], weights)
        if name == output:
            return values[name]
    raise KeyError(f"layer {output!r} cannot be reached from {sorted(inputs)}")
