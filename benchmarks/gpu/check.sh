#!/usr/bin/env bash
# The GPU benchmark run, on a machine with a CUDA GPU, in one call from the repository root
# (prepare it with benchmarks/gpu/prepare.sh and copy .whl/ along): `bash benchmarks/gpu/check.sh`.
# Steps run in priority order under one time budget (BUDGET seconds, default 420), each under its
# own limit; each benchmark writes its result file into $OUT (DATE-DEVICE-STEP.json), everything
# else goes to $OUT/log.txt. ONLY="name name ..." runs just those steps (the step names below).
set -uo pipefail
export PYTHONUNBUFFERED=1
T0=$(date +%s)
BUDGET=${BUDGET:-420}
OUT=${OUT:-out/gpu}; mkdir -p "$OUT"
LOG="$OUT/log.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl >> "$LOG" 2>&1 || { echo "wheel install failed"; tail "$LOG"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD STROTSS_WORK_DIR=/tmp/strotss-work
python3 benchmarks/gpu/weights.py unpack .whl/vgg16.q8.xz /tmp/vgg16.pth || exit 1
export STROTSS_VGG_WEIGHTS=/tmp/vgg16.pth
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
  python3 -c "import torch, av, kornia, scenedetect; print('torch', torch.__version__, 'av', av.__version__, 'kornia', kornia.__version__)"
  nproc; } >> "$LOG" 2>&1

left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
step() {  # NAME LIMIT COMMAND...: run one step if time is left, its output into the log
  local name=$1 limit=$2; shift 2
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then return; fi
  local l; l=$(left)
  if (( l < 25 )); then echo "$name: skipped, ${l} s left" | tee -a "$LOG"; return; fi
  (( limit > l )) && limit=$l
  echo "== $name (limit $limit s): $*" >> "$LOG"
  local s; s=$(date +%s)
  timeout "$limit" "$@" >> "$LOG" 2>&1; local rc=$?
  echo "$name: rc=$rc, $(( $(date +%s) - s )) s" | tee -a "$LOG"
}
bench() {  # NAME LIMIT MODULE ARGS...: a benchmark step whose result file is $OUT/DATE-DEVICE-NAME.json
  local name=$1 limit=$2 module=$3; shift 3
  step "$name" "$limit" python3 -m "benchmarks.$module" "$@" --out "$OUT" --name "$name"
}
step cuda-tests 100 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py
bench video512 100 video --device cuda --size 512 --frames 12 --cuts 1
bench video512-again 100 video --device cuda --size 512 --frames 12 --cuts 1
printf 'runtime: {cudnn_benchmark: "on"}\n' > /tmp/onbench.yaml
printf 'runtime: {cudnn_benchmark: final}\n' > /tmp/finalbench.yaml
# cuDNN's algorithm timing (on) is a process's first cold frame's one-time cost.
bench video512-cudnn-on 100 video --device cuda --size 512 --frames 12 --cuts 1 --config /tmp/onbench.yaml
bench video512-cudnn-final 100 video --device cuda --size 512 --frames 12 --cuts 1 --config /tmp/finalbench.yaml
# Could several shots optimised as one batch raise throughput? (The extractor's share, batched.)
bench batched 60 batch batched --device cuda --size 512 288 --batches 1 2 4 8
bench video1920 120 video --device cuda --size 1920 --frames 6 --iters 50
bench video512-eager 100 video --device cuda --size 512 --frames 12 --cuts 1 --cuda-graphs off
bench profile512 60 profile_step --device cuda --size 512 288 --iters 20 --precision mixed --top 40
bench video512-float32 100 video --device cuda --size 512 --frames 12 --cuts 1 --precision float32
bench image-mixed 90 image --device cuda --sizes 256 512 1024 --iters 50 --repeats 3 --precision mixed
grep -E "rc=|skipped|passed|failed|error" "$LOG" | tail -n 20
ls "$OUT"
