#!/usr/bin/env bash
# One GPU session: the default model and the four-way comparison (arch x optimiser) at one budget.
#
# Two streams share the GPU and the CPU cores: the MobileNetV2 runs, then the ResNet101 runs.
# Results land in $OUT: mask_classifier.pt (default model), results.tar.gz (metrics, curves, logs,
# refreshed after every run), log.txt. Without ONNX: it is exported on the CPU machine afterwards.
# A dry run on a CPU: EXTRA="--device cpu --workers 1 --max-steps 2" DEFAULT_EPOCHS=1 COMPARE_EPOCHS=1
set -uo pipefail
OUT=${OUT:-runs/gpu_out}
WORK=${WORK:-runs/gpu_work}
DEFAULT_EPOCHS=${DEFAULT_EPOCHS:-50}
COMPARE_EPOCHS=${COMPARE_EPOCHS:-20}
WORKERS=${WORKERS:-7}
EXTRA=${EXTRA:-}
CACHE=${CACHE:-.cache/crops.npz}
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/log.txt") 2>&1

pack() { tar czf "$OUT/results.tar.gz.tmp" -C "$WORK" --exclude='*.pt' . && mv "$OUT/results.tar.gz.tmp" "$OUT/results.tar.gz"; }

train() {
    local name=$1 time_limit=$2
    shift 2
    local started=$SECONDS
    # shellcheck disable=SC2086
    "$PYTHON" -m training.train --no-onnx --cache "$CACHE" --workers "$WORKERS" --out "$WORK/$name" --state "$WORK/state_$name.pt" \
        --time-limit "$time_limit" $EXTRA "$@" 2>"$WORK/$name.progress.log" | sed -u "s/^/[$name] /"
    local rc=${PIPESTATUS[0]}
    echo "[$name] exit $rc after $((SECONDS - started)) s"
    [ "$rc" -ne 0 ] && tail -20 "$WORK/$name.progress.log"
    rm -f "$WORK/state_$name.pt"
    pack
}

"$PYTHON" -c "import torch, cv2; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', 'cv2', cv2.__version__)"
nproc

(
    train default 210 --epochs "$DEFAULT_EPOCHS"
    cp "$WORK/default/mask_classifier.pt" "$OUT/mask_classifier.pt"
    train compare_mobilenet_v2_adamw 90 --epochs "$COMPARE_EPOCHS" --arch mobilenet_v2 --optimizer adamw
    train compare_mobilenet_v2_adam 90 --epochs "$COMPARE_EPOCHS" --arch mobilenet_v2 --optimizer adam
) &
(
    train compare_resnet101_adamw 150 --epochs "$COMPARE_EPOCHS" --arch resnet101 --optimizer adamw
    train compare_resnet101_adam 150 --epochs "$COMPARE_EPOCHS" --arch resnet101 --optimizer adam
) &
wait
pack
echo "all runs done after $SECONDS s"
