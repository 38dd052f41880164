"""Seconds per training step of the classifier on this CPU, fp32 against bf16 autocast, side by side.

    python -m bench.train_step [--sizes 128,160] [--steps 6]

Why it exists: ``python -m training.train --precision bf16`` is worth it only on a CPU whose oneDNN has
bf16 kernels (AMX or AVX512-BF16); elsewhere bf16 may be slower than fp32. This prints the median step
(forward, backward, AdamW) of MobileNetV2 with batch 64 on random input, as training runs it
(channels_last, all cores), after one unmeasured step. Figures: models/MODEL_CARD.md, Training.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

import torch

from vision.labels import LABELS
from vision.networks import build_network

BATCH = 64


def seconds_per_step(size: int, precision: str, steps: int) -> float:
    torch.manual_seed(0)
    network = build_network("mobilenet_v2", len(LABELS)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    images = torch.rand(BATCH, 3, size, size).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, len(LABELS), (BATCH,))
    timings = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(network(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings[1:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_step", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,160", help="input sides, comma-separated")
    parser.add_argument("--steps", type=int, default=6, help="measured steps per variant")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}")
    print("| input | fp32 s/step | bf16 s/step | bf16 speed-up |")
    print("|---|---|---|---|")
    for size in (int(side) for side in args.sizes.split(",")):
        fp32 = seconds_per_step(size, "fp32", args.steps)
        bf16 = seconds_per_step(size, "bf16", args.steps)
        print(f"| {size} | {fp32:.3f} | {bf16:.3f} | {fp32 / bf16:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
