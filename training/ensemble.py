"""Join trained classifiers into one model that averages their probabilities.

``python -m training.ensemble A.pt B.pt --out runs/ensemble/mask_classifier.pt`` (``--help``).

Unlike a weight average (``training.soup``), the members need not share a starting point: two runs of
one recipe from different seeds make different errors, and the mean of their probabilities is usually
better than either. The cost is one network pass per member for every crop. The result is one
``.pt`` and one ``.onnx`` file that the server loads like any classifier (``vision.networks.Ensemble``),
and it is judged on val like any candidate (models/MODEL_CARD.md, issue 10 item 6).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from training.export import export_onnx, load_checkpoint, save_checkpoint
from vision.classifier import ClassifierInfo
from vision.networks import ENSEMBLE_SEPARATOR, Ensemble, ensemble_arch


class EnsembleError(ValueError):
    """Members that cannot be averaged: other labels, input size or crop margin, or an ensemble."""


def join(members: Sequence[tuple[nn.Module, ClassifierInfo]]) -> tuple[Ensemble, ClassifierInfo]:
    """One ensemble of trained members, with the metadata they share."""
    if len(members) < 2:
        raise EnsembleError("an ensemble needs at least two members")
    first = members[0][1]
    for _, info in members:
        if ENSEMBLE_SEPARATOR in info.arch:
            raise EnsembleError(f"a member is an ensemble already ({info.arch}); name its members instead")
        if (info.labels, info.input_size, info.margin) != (first.labels, first.input_size, first.margin):
            raise EnsembleError(
                "the members differ in labels, input size or crop margin: "
                f"{first.labels}/{first.input_size}/{first.margin} against "
                f"{info.labels}/{info.input_size}/{info.margin}"
            )
    network = Ensemble([network for network, _ in members]).eval()
    return network, dataclasses.replace(first, arch=ensemble_arch([info.arch for _, info in members]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("members", type=Path, nargs="+", help="trained .pt files (two or more)")
    parser.add_argument("--out", type=Path, required=True, help="the ensemble's .pt (and .onnx beside it)")
    args = parser.parse_args(argv)
    try:
        network, info = join([load_checkpoint(path) for path in args.members])
    except EnsembleError as exc:
        parser.error(str(exc))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(network, info, args.out)
    export_onnx(network, info, args.out.with_suffix(".onnx"))
    print(f"wrote {args.out} and {args.out.with_suffix('.onnx')} ({info.arch})")


if __name__ == "__main__":
    main()
