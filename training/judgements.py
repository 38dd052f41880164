"""Judgements of the detections that match no annotated face: real faces the annotators skipped, or not.

The scene annotations are incomplete (in crowd photos many faces, masked ones above all, have no box),
so precision against them understates a detector's real precision. Each unmatched detection with a
short side >= `MIN_JUDGED_SIDE` on the scene test splits was judged once by a look at a contact sheet
(``python -m training.judge``); the verdicts live in a small JSON file per detector under models/eval/
and the evaluation's ``verified_precision`` counts a detection as correct when it matched an annotation
or was judged a face. The file names the detector it was made with; boxes of another detector, or new
boxes of a changed one, are reported as unjudged, never silently counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision.boxes import iou

MIN_JUDGED_SIDE = 20.0
# A detection is the judged box when they overlap this much (the same detector gives the same box).
SAME_BOX_IOU = 0.9
VERDICTS = ("face", "not_face")
JUDGED_DIR = Path(__file__).resolve().parents[1] / "models" / "eval"


def judgement_file(detector_name: str) -> Path:
    return JUDGED_DIR / f"judged_{detector_name}.json"


@dataclass(frozen=True)
class Judgement:
    image: str
    box: tuple[float, float, float, float]
    verdict: str | None


@dataclass(frozen=True)
class Judgements:
    """The verdicts for one detector: ``detector`` is `DetectorSpec.describe()` of the judged run."""

    detector: str
    entries: tuple[Judgement, ...]

    def verdict(self, image: str, box: Sequence[float]) -> str | None:
        """The verdict on this box of this image, None when it was never judged."""
        best, best_overlap = None, SAME_BOX_IOU
        for entry in self.entries:
            if entry.image == image and (overlap := iou(entry.box, box)) >= best_overlap:
                best, best_overlap = entry, overlap
        return None if best is None else best.verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "min_side": MIN_JUDGED_SIDE,
            "boxes": [
                {"image": e.image, "box": [round(v, 1) for v in e.box], "verdict": e.verdict}
                for e in self.entries
            ],
        }


def load_judgements(path: Path) -> Judgements:
    data = json.loads(path.read_text())
    entries = []
    for item in data["boxes"]:
        verdict = item.get("verdict")
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"{path}: verdict {verdict!r} is not one of {VERDICTS}")
        entries.append(Judgement(item["image"], tuple(float(v) for v in item["box"]), verdict))  # type: ignore[arg-type]
    return Judgements(detector=data["detector"], entries=tuple(entries))


def save_judgements(judgements: Judgements, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(judgements.to_json(), indent=1) + "\n")
