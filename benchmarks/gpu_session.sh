#!/usr/bin/env bash
# One device session's GPU measurements (issues 19 and 20), prepared to run once through the device tool:
#
#   run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=560)
#
# It needs the zoo's packages that the device image lacks, as wheels in .whl/ (git-ignored), fetched here first:
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl decord av albumentations gensim wandb pycocotools
#
# (check each one's Requires-Dist with `unzip -p .whl/NAME-*.whl '*/METADATA' | grep ^Requires-Dist`; the image has
# torch, torchvision, pytorch-lightning, torchmetrics, opencv, h5py, scipy and matplotlib). Each step has its own time
# limit (the default five: 520 s in all), its whole output goes to $OUT/<step>.log and its last lines to the reply; a
# failing step does not stop the next. Profiler tables are printed into the logs; the Chrome traces stay on the machine.
#
#   bash benchmarks/gpu_session.sh [STEP ...]     # default: sint_fps lang_fps flow_speed classification_speed
#                                                 #          classification_flow
#
# More steps for a second run (issue 20's other targets): o3n_train (120 s), actor_action (90 s), detection_cost (150 s).
set -u
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || echo "wheel install failed"
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($limit s at most): $*"
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    echo "=== $name: exit $?"
    tail -n 30 "$OUT/$name.log"
}

nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
run_step() {
    case $1 in
    # issue 20: SINT and the language trackers, frames/s of the former and the current path in one run, whether they
    # give the same boxes, and torch.profiler's costliest operators of both
    sint_fps) step sint_fps 160 python3 benchmarks/sint_fps.py --device cuda --models sint_vgg16 --decoding 60 \
        --profile /tmp/traces ;;
    lang_fps) step lang_fps 120 python3 benchmarks/lang_fps.py --device cuda \
        --models lang_model_ii_vgg16,lang_model_iii_vgg16 --profile /tmp/traces ;;
    # issue 19: TV-L1 on the GPU (pairs/s per batch, eager and compiled) and the classification benchmark's clips/s
    flow_speed) step flow_speed 90 python3 benchmarks/flow_speed.py --device cuda --batched-only --batches 1 32 128 ;;
    classification_speed) step classification_speed 80 python3 benchmarks/classification_speed.py --workers 8 ;;
    classification_flow) step classification_flow 70 python3 benchmarks/classification_speed.py --workers 8 \
        --model temporal_tiny --size 64x64 --flow-method tvl1_torch ;;
    # issue 20's other targets: O3N questions/s (compiled step, frame-store loader), the new models against their trunks
    o3n_train) step o3n_train 120 python3 benchmarks/o3n_train.py --compile --workers 12 ;;
    actor_action) step actor_action 90 python3 benchmarks/actor_action_speed.py --device cuda ;;
    detection_cost) step detection_cost 150 python3 benchmarks/detection_cost.py --devices cuda --channels-last \
        --flow-pairs 0 ;;
    *) echo "unknown step $1" ;;
    esac
}
[ $# -gt 0 ] || set -- sint_fps lang_fps flow_speed classification_speed classification_flow
for name in "$@"; do
    run_step "$name"
done
