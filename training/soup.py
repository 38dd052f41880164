"""Average the weights of two trained classifiers of one architecture: ``python -m training.soup --help``.

Two runs from the same starting weights (a model and its fine-tune) lie in one basin, so a weighted mean
of their weights is a model too, often better than either on data neither was selected on (weight-space
ensembling, "WiSE-FT"). Running statistics of batch normalisation are averaged the same way. The result
is judged on val like any candidate (models/MODEL_CARD.md, issue 10 item 6).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from training.export import export_onnx, load_checkpoint, save_checkpoint


def average_state(
    first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], weight: float
) -> dict[str, torch.Tensor]:
    """(1 - weight) * first + weight * second, key by key; integer buffers (counters) are taken from
    `second`."""
    if first.keys() != second.keys():
        raise ValueError("the two models have different layers")
    if not 0.0 <= weight <= 1.0:
        raise ValueError("weight must be in [0, 1]")
    averaged = {}
    for key, a in first.items():
        b = second[key]
        if a.shape != b.shape:
            raise ValueError(f"{key}: shapes differ ({tuple(a.shape)} vs {tuple(b.shape)})")
        averaged[key] = (a * (1.0 - weight) + b * weight).to(a.dtype) if a.is_floating_point() else b.clone()
    return averaged


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.soup", description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="a trained .pt")
    parser.add_argument("second", type=Path, help="a trained .pt of the same architecture and labels")
    parser.add_argument("--weight", type=float, default=0.5, help="share of the second model")
    parser.add_argument("--out", type=Path, required=True, help="the averaged .pt (and .onnx beside it)")
    args = parser.parse_args(argv)
    first, info = load_checkpoint(args.first)
    second, second_info = load_checkpoint(args.second)
    if (info.arch, info.labels, info.input_size) != (
        second_info.arch,
        second_info.labels,
        second_info.input_size,
    ):
        parser.error("the two models differ in architecture, labels or input size")
    first.load_state_dict(average_state(first.state_dict(), second.state_dict(), args.weight))
    save_checkpoint(first, info, args.out)
    export_onnx(first, info, args.out.with_suffix(".onnx"))
    print(f"wrote {args.out} and {args.out.with_suffix('.onnx')}")


if __name__ == "__main__":
    main()
