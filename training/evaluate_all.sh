#!/bin/sh
# Every evaluation figure of models/MODEL_CARD.md, written to models/eval/ (JSON, printed table, images).
# Usage: sh training/evaluate_all.sh [DATA_DIR]   (default ../shared/data); run from the repository root.
set -eu
DATA="${1:-../shared/data}"
OUT=models/eval
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$OUT"

"$PY" -m training.evaluate --faces "$DATA/faces" --split test --json "$OUT/faces_test.json" \
    --confusion-png "$OUT/confusion_faces_test.png" --errors-png "$OUT/errors_faces_test.png" \
    > "$OUT/faces_test.txt"

for ds in andrewmvd jolignier; do
    scenes="$DATA/scenes/$ds"
    # End to end with the server's defaults (res10 at 300x300, confidence 0.5).
    "$PY" -m training.evaluate --scenes "$scenes" --split test --json "$OUT/scenes_${ds}_test.json" \
        --confusion-png "$OUT/confusion_${ds}_test.png" --errors-png "$OUT/errors_${ds}_test.png" \
        > "$OUT/scenes_${ds}_test.txt"
    # The classifier alone, on the annotated boxes.
    "$PY" -m training.evaluate --scenes "$scenes" --split test --boxes annotated \
        --json "$OUT/scenes_${ds}_test_annotated.json" \
        --confusion-png "$OUT/confusion_${ds}_test_annotated.png" \
        --errors-png "$OUT/errors_${ds}_test_annotated.png" > "$OUT/scenes_${ds}_test_annotated.txt"
    # Other detector operating points from the detector study.
    for point in "300x300 0.3" "400x400 0.3"; do
        set -- $point
        "$PY" -m training.evaluate --scenes "$scenes" --split test --detector-size "$1" --confidence "$2" \
            --json "$OUT/scenes_${ds}_test_$1_c$2.json" > "$OUT/scenes_${ds}_test_$1_c$2.txt"
    done
done

"$PY" -m training.detector_study --json "$OUT/detector_study.json" > "$OUT/detector_study.txt"
