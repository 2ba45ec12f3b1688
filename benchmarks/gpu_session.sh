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
# limit (520 s in all), its whole output goes to $OUT/<step>.log (5 files come back) and its last lines to the reply; a failing step
# does not stop the next. Profiler tables are printed into the logs; the Chrome traces stay on the machine.
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
# issue 20: SINT and the language trackers, frames/s of the former and the current path in one run, whether they give
# the same boxes, and torch.profiler's costliest operators of both
step sint_fps 140 python3 benchmarks/sint_fps.py --device cuda --models sint_vgg16 --profile /tmp/traces
step lang_fps 130 python3 benchmarks/lang_fps.py --device cuda --models lang_model_ii_vgg16,lang_model_iii_vgg16 \
    --profile /tmp/traces
# issue 19: TV-L1 on the GPU (pairs/s per batch, eager and compiled) and the classification benchmark's clips/s
step flow_speed 90 python3 benchmarks/flow_speed.py --device cuda --batched-only --batches 1 32 128
step classification_speed 80 python3 benchmarks/classification_speed.py --workers 8
step classification_flow 80 python3 benchmarks/classification_speed.py --workers 8 --model temporal_tiny --size 64x64 \
    --flow-method tvl1_torch
