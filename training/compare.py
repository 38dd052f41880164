"""The architecture x optimiser comparison: ``python -m training.compare RUNS_DIR``.

Reads the ``training_metrics.json`` of each comparison run (``RUNS_DIR/compare_<arch>_<optimizer>/``,
as ``training/gpu_run.sh`` writes them), measures the CPU latency per face of each architecture on
this machine (batch 1, 2 and 1 threads, median after warm-up; latency does not depend on the weights, so
freshly built networks are timed), and writes ``comparison.json`` plus a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.export import export_onnx
from vision.classifier import ClassifierInfo
from vision.labels import LABELS
from vision.networks import build_network

COMPARED: tuple[str, ...] = ("mobilenet_v2", "resnet101")
"""The original project's comparison: the architectures trained by `training/gpu_run.sh`."""
OPTIMIZERS: tuple[str, ...] = ("adamw", "adam")


def median_ms(call: Callable[[], object], repeats: int, warmup: int = 5, max_seconds: float = 30.0) -> float:
    """Median time of ``repeats`` calls, fewer (at least 10) where they would take over ``max_seconds``."""
    for _ in range(warmup):
        call()
    timings: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(timings) < repeats and (len(timings) < 10 or time.perf_counter() < deadline):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(timings)


def cpu_latency(arch: str, input_size: int, threads: int, repeats: int) -> dict[str, float]:
    """Milliseconds per face (batch 1) in torch eager and, for MobileNetV2, in onnxruntime."""
    torch.set_num_threads(threads)
    network = build_network(arch, len(LABELS)).eval()
    batch = np.random.default_rng(0).random((1, 3, input_size, input_size), dtype=np.float32)
    tensor = torch.from_numpy(batch)

    def run_torch() -> object:
        with torch.inference_mode():
            return network(tensor)

    latency = {"torch_eager_ms": median_ms(run_torch, repeats)}
    if arch == "mobilenet_v2":
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.onnx"
            export_onnx(network, ClassifierInfo(arch, LABELS, input_size, 0.15), path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            latency["onnxruntime_ms"] = median_ms(lambda: session.run(None, {"crops": batch}), repeats)
    return latency


def run_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    test = metrics["test"]
    return {
        "arch": metrics["arch"],
        "optimizer": metrics["optimizer"],
        "epochs": metrics["epochs"],
        "epochs_run": metrics["epochs_run"],
        "stop_reason": metrics["stop_reason"],
        "best_epoch": metrics["best_epoch"],
        "weight_decay": metrics["weight_decay"],
        "parameters": metrics["parameters"],
        "checkpoint_bytes": metrics["checkpoint_bytes"],
        "training_seconds": metrics["training_seconds"],
        "device": metrics["device"],
        "val_macro_f1": metrics["val"]["all"]["macro_f1"],
        "test_accuracy": test["all"]["accuracy"],
        "test_macro_f1": test["all"]["macro_f1"],
        "test_binary_accuracy": test["all"]["binary_accuracy"],
        "faces_test_binary_accuracy": test["faces"]["binary_accuracy"],
        "scenes_test_macro_f1": test["scenes"]["macro_f1"],
    }


def markdown_table(rows: list[dict[str, Any]], equal_epochs: int) -> str:
    threads = list(rows[0]["cpu_latency"]) if rows else []
    header = (
        "| arch | optimiser | params | file | "
        + "".join(f"CPU ms/face, {key.replace('_', ' ')} (torch / ORT) | " for key in threads)
        + "epochs run (best) | "
        f"val macro-F1, best of epochs 1-{equal_epochs} | test acc | test macro-F1 | binary acc | "
        "faces binary acc | scenes macro-F1 | train time |\n" + "|---" * (12 + len(threads)) + "|\n"
    )
    lines = []
    for row in rows:
        latency = "".join(
            f"{timing['torch_eager_ms']:.1f}"
            + (f" / {timing['onnxruntime_ms']:.1f}" if "onnxruntime_ms" in timing else "")
            + " | "
            for timing in row["cpu_latency"].values()
        )
        lines.append(
            f"| {row['arch']} | {row['optimizer']} | {row['parameters'] / 1e6:.1f} M | "
            f"{row['checkpoint_bytes'] / 1e6:.1f} MB | {latency}"
            f"{row['epochs_run']} ({row['best_epoch']}) | "
            f"{row[f'best_val_macro_f1_first_{equal_epochs}_epochs']:.4f} | "
            f"{row['test_accuracy']:.4f} | {row['test_macro_f1']:.4f} | {row['test_binary_accuracy']:.4f} | "
            f"{row['faces_test_binary_accuracy']:.4f} | {row['scenes_test_macro_f1']:.4f} | "
            f"{row['training_seconds']:.0f} s |"
        )
    return header + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.compare",
        description="Gather the comparison runs' metrics, time each architecture on this CPU, write a table.",
    )
    parser.add_argument(
        "runs", type=Path, nargs="+", help="folders holding compare_<arch>_<optimizer>/training_metrics.json"
    )
    parser.add_argument(
        "--equal-epochs",
        type=int,
        default=15,
        help="also report the best val macro-F1 within this many epochs, a budget every run reached",
    )
    parser.add_argument("--json", type=Path, default=Path("models/comparison.json"))
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="thread counts to time")
    parser.add_argument(
        "--repeats", type=int, default=200, help="timed calls per network (ResNet101: a quarter)"
    )
    args = parser.parse_args()

    latency = {
        arch: {
            f"{threads}_threads": cpu_latency(
                arch, args.input_size, threads, args.repeats if arch == "mobilenet_v2" else args.repeats // 4
            )
            for threads in args.threads
        }
        for arch in COMPARED
    }
    rows = []
    for arch in COMPARED:
        for optimizer in OPTIMIZERS:
            name = f"compare_{arch}_{optimizer}"
            paths = [folder / name / "training_metrics.json" for folder in args.runs]
            found = [path for path in paths if path.is_file()]
            if not found:
                print(f"missing run: {name}")
                continue
            metrics = json.loads(found[0].read_text())
            rows.append(
                {
                    **run_summary(metrics),
                    f"best_val_macro_f1_first_{args.equal_epochs}_epochs": max(
                        row["val_macro_f1"] for row in metrics["history"][: args.equal_epochs]
                    ),
                    "cpu_latency": latency[arch],
                }
            )
    table = markdown_table(rows, args.equal_epochs)
    result = {
        "latency_setup": f"batch 1, input {args.input_size}, median of up to {args.repeats} calls "
        f"(ResNet101 {args.repeats // 4}; at most 30 s each) after warm-up, on this CPU",
        "load_average_during_timing": os.getloadavg(),
        "runs": rows,
        "table_markdown": table,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(table)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
