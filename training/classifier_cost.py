"""Per-face cost of served classifier files, side by side: ``python -m training.classifier_cost A B ...``.

Each file is loaded as the server loads it (`vision.classifier.MaskClassifier`: onnxruntime for ``.onnx``,
flip averaging on) and classifies real-looking crops of its own input size, one face and four faces per
call. The files are timed in interleaved rounds (A, B, A, B, ...), so that the load of a shared machine
falls on all of them alike; the figure of a file is the median over rounds of its per-round median, and
the ratio to the first file is the median of the per-round ratios. Latency does not depend on the
weights, only on the graph and the input size, so any two files of one architecture and size must cost
the same within the noise: that is what the issue's speed target checks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from training.compare import median_ms
from vision.classifier import MaskClassifier

FACES_PER_CALL: tuple[int, ...] = (1, 4)


def crops_for(classifier: MaskClassifier, faces: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random BGR crops of the classifier's own input size (the cost depends on the size and
    the graph, not on the content)."""
    import cv2

    rng = np.random.default_rng(seed)
    size = classifier.input_size
    small = rng.integers(0, 256, size=(faces, size // 8, size // 8, 3), dtype=np.uint8)
    return [cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC) for image in small]


def measure(paths: Sequence[Path], threads: int, rounds: int, repeats: int) -> dict[str, Any]:
    classifiers = [MaskClassifier(path, threads=threads) for path in paths]
    per_round: dict[int, list[list[float]]] = {faces: [[] for _ in paths] for faces in FACES_PER_CALL}
    for _ in range(rounds):
        for faces in FACES_PER_CALL:
            for index, classifier in enumerate(classifiers):
                call = partial(classifier.predict_crops, crops_for(classifier, faces))
                milliseconds = median_ms(call, repeats)
                per_round[faces][index].append(milliseconds / faces)
    result: dict[str, Any] = {"threads": threads, "rounds": rounds, "repeats": repeats, "models": []}
    for index, (path, classifier) in enumerate(zip(paths, classifiers, strict=True)):
        entry: dict[str, Any] = {"model": str(path), "input_size": classifier.input_size}
        for faces in FACES_PER_CALL:
            mine, first = per_round[faces][index], per_round[faces][0]
            entry[f"ms_per_face_{faces}"] = round(statistics.median(mine), 3)
            entry[f"ratio_to_first_{faces}"] = round(
                statistics.median(m / f for m, f in zip(mine, first, strict=True)), 3
            )
        result["models"].append(entry)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.classifier_cost", description=__doc__)
    parser.add_argument("models", type=Path, nargs="+", help="classifier files; the first is the reference")
    parser.add_argument("--threads", type=int, default=2, help="as the server (MaskClassifier's default)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=40, help="calls per file and round (median)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = measure(args.models, args.threads, args.rounds, args.repeats)
    for entry in result["models"]:
        print(
            f"{entry['model']} ({entry['input_size']} px, {args.threads} threads): "
            + ", ".join(
                f"{faces} per call {entry[f'ms_per_face_{faces}']:.2f} ms per face "
                f"(x{entry[f'ratio_to_first_{faces}']:.2f})"
                for faces in FACES_PER_CALL
            )
        )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
