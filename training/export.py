"""Checkpoint and ONNX files of a trained classifier, with the metadata the server needs."""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx
import torch
from torch import nn

from vision.classifier import ClassifierInfo
from vision.networks import build_network


def save_checkpoint(network: nn.Module, info: ClassifierInfo, path: str | Path) -> None:
    """Weights plus metadata, loadable with ``torch.load(weights_only=True)``."""
    state = {key: value.detach().cpu() for key, value in network.state_dict().items()}
    torch.save({**info.to_metadata(), "state_dict": state}, Path(path))


def load_checkpoint(path: str | Path) -> tuple[nn.Module, ClassifierInfo]:
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    info = ClassifierInfo.from_metadata(checkpoint)
    network = build_network(info.arch, len(info.labels))
    network.load_state_dict(checkpoint["state_dict"])
    return network.eval(), info


def export_onnx(network: nn.Module, info: ClassifierInfo, path: str | Path) -> None:
    """Export with a dynamic batch axis; weights stay inside the file (OpenCV cannot read external data)."""
    network = network.eval().cpu()
    example = torch.rand(1, 3, info.input_size, info.input_size)
    path = Path(path)
    torch.onnx.export(
        network,
        (example,),
        str(path),
        input_names=["crops"],
        output_names=["logits"],
        dynamic_axes={"crops": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load(str(path))
    for key, value in info.to_metadata().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description="Export a trained checkpoint (.pt) to ONNX.")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("onnx", type=Path)
    args = parser.parse_args()
    network, info = load_checkpoint(args.checkpoint)
    export_onnx(network, info, args.onnx)
    print(f"wrote {args.onnx}")


if __name__ == "__main__":
    main()
