"""Predict command: find faces and their mask labels in image and video files.

    python predict.py INPUT... --out DIR

Every input (files, or folders searched recursively) is analysed frame by frame with the same
detector + classifier as the server. Annotated copies go into DIR (videos as .mp4) and one JSON line
per image or video frame into DIR/detections.jsonl. An input that cannot be read is reported by name,
the others are still processed, and the exit status is 1 if any input failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from vision.classifier import MaskClassifier, ModelFileError
from vision.detector import DetectorFileError
from vision.detector_factory import build_detector
from vision.draw import draw_detections
from vision.image_files import IMAGE_SUFFIXES, ImageFileError, read_image
from vision.model_options import add_model_arguments, detector_spec
from vision.pipeline import MaskDetectionPipeline

REPO_ROOT = Path(__file__).resolve().parent
VIDEO_SUFFIXES: frozenset[str] = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm"})
# Suffixes OpenCV can write; other images are written as .png.
WRITABLE_IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
)


class InputError(RuntimeError):
    """One input could not be processed; the message names it and says why."""


@dataclass(frozen=True)
class MediaFile:
    """An input file and the name of its annotated copy, relative to the output folder."""

    path: Path
    output_name: Path

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_SUFFIXES


def media_kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def collect_inputs(paths: Sequence[Path]) -> tuple[list[MediaFile], list[str]]:
    """Media files named directly or found in folders, and an error message for each unusable name.

    Files in a folder that are not images or videos are passed over; a file named directly that
    is not one is an error, since the user asked for it.
    """
    found: list[MediaFile] = []
    errors: list[str] = []
    for path in paths:
        if path.is_dir():
            members = sorted(p for p in path.rglob("*") if p.is_file() and media_kind(p) is not None)
            if not members:
                errors.append(f"{path}: folder holds no image or video files")
            found.extend(MediaFile(p, Path(path.name) / p.relative_to(path)) for p in members)
        elif not path.exists():
            errors.append(f"{path}: no such file or folder")
        elif media_kind(path) is None:
            errors.append(
                f"{path}: unsupported file type {path.suffix or '(no suffix)'!r}; expected an image "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}) or a video ({', '.join(sorted(VIDEO_SUFFIXES))})"
            )
        else:
            found.append(MediaFile(path, Path(path.name)))
    return _unique_outputs(found), errors


def _unique_outputs(files: list[MediaFile]) -> list[MediaFile]:
    """Output names with the right suffix, numbered where two inputs would write the same file."""
    used: set[Path] = set()
    unique = []
    for media in files:
        name = media.output_name
        if media.is_video:
            name = name.with_suffix(".mp4")
        elif name.suffix.lower() not in WRITABLE_IMAGE_SUFFIXES:
            name = name.with_suffix(".png")
        candidate, counter = name, 2
        while candidate in used:
            candidate = name.with_name(f"{name.stem}-{counter}{name.suffix}")
            counter += 1
        used.add(candidate)
        unique.append(MediaFile(media.path, candidate))
    return unique


def frame_record(media: MediaFile, frame_index: int, frame: np.ndarray, detections: Sequence[Any]) -> str:
    height, width = frame.shape[:2]
    record = {
        "file": media.path.as_posix(),
        "frame": frame_index,
        "width": width,
        "height": height,
        "faces": [detection.to_json() for detection in detections],
    }
    return json.dumps(record)


def predict_image(pipeline: MaskDetectionPipeline, media: MediaFile, out_dir: Path, jsonl: IO[str]) -> int:
    """Annotate one image; returns the number of faces found."""
    try:
        image = read_image(media.path)
    except ImageFileError as exc:
        raise InputError(str(exc)) from exc
    detections = pipeline.analyse(image)
    target = out_dir / media.output_name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(target), draw_detections(image, detections)):
        raise InputError(f"{media.path}: cannot write the annotated copy {target}")
    jsonl.write(frame_record(media, 0, image, detections) + "\n")
    return len(detections)


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """The frame as it is meant to be seen: phones store portrait video as landscape frames plus a display
    rotation (counter-clockwise degrees, as PyAV reads it), which players apply and so does this."""
    turns = round(rotation / 90.0) % 4
    if turns == 1:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if turns == 2:
        return cv2.rotate(image, cv2.ROTATE_180)
    if turns == 3:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    return image


def _decoded_frames(path: Path) -> Iterator[tuple[np.ndarray, Fraction]]:
    """Upright BGR frames of a video's first video stream, with the stream's frame rate."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"{path}: not a readable video ({exc})") from exc
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: the file holds no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        try:
            for frame in container.decode(stream):
                yield upright(frame.to_ndarray(format="bgr24"), frame.rotation), Fraction(rate)
        except av.FFmpegError as exc:
            raise InputError(f"{path}: video data is corrupt ({exc})") from exc


def predict_video(pipeline: MaskDetectionPipeline, media: MediaFile, out_dir: Path, jsonl: IO[str]) -> int:
    """Annotate every frame of a video into an H.264 .mp4; returns the number of frames."""
    import av

    target = out_dir / media.output_name
    target.parent.mkdir(parents=True, exist_ok=True)
    output: Any = None
    stream: Any = None
    frames = 0
    try:
        for frame, rate in _decoded_frames(media.path):
            if output is None:
                output = av.open(str(target), mode="w")
                stream = output.add_stream("libx264", rate=rate)
                # H.264 in 4:2:0 needs even sides.
                stream.width, stream.height = frame.shape[1] // 2 * 2, frame.shape[0] // 2 * 2
                stream.pix_fmt = "yuv420p"
            detections = pipeline.analyse(frame)
            jsonl.write(frame_record(media, frames, frame, detections) + "\n")
            annotated = np.ascontiguousarray(
                draw_detections(frame, detections)[: stream.height, : stream.width]
            )
            output.mux(stream.encode(av.VideoFrame.from_ndarray(annotated, format="bgr24")))
            frames += 1
        if output is None:
            raise InputError(f"{media.path}: the video holds no decodable frames")
        output.mux(stream.encode())
    finally:
        if output is not None:
            output.close()
    return frames


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python predict.py",
        description="Find faces and mask labels in images and videos; write annotated copies "
        "(videos as H.264 .mp4) and one JSON line of detections per image or frame.",
    )
    parser.add_argument(
        "inputs", nargs="+", type=Path, metavar="INPUT", help="image or video files, or folders"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the annotated copies")
    parser.add_argument("--jsonl", type=Path, help="detections file (default: OUT/detections.jsonl)")
    add_model_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    files, errors = collect_inputs(args.inputs)
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    try:
        detector = build_detector(detector_spec(args))
        pipeline = MaskDetectionPipeline(detector, MaskClassifier(args.classifier))
    except (ModelFileError, DetectorFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    jsonl_path = args.jsonl or args.out / "detections.jsonl"
    done = 0
    with jsonl_path.open("w") as jsonl:
        for media in files:
            try:
                if media.is_video:
                    count = predict_video(pipeline, media, args.out, jsonl)
                    print(f"{media.path}: {count} frames -> {args.out / media.output_name}")
                else:
                    count = predict_image(pipeline, media, args.out, jsonl)
                    print(f"{media.path}: {count} faces -> {args.out / media.output_name}")
                done += 1
            except InputError as exc:
                errors.append(str(exc))
                print(f"error: {exc}", file=sys.stderr)
    print(f"wrote {jsonl_path}; {done} inputs processed, {len(errors)} failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
