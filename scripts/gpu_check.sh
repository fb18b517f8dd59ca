#!/usr/bin/env bash
# The GPU acceptance run, on the device machine, in one call (prepare with scripts/gpu_prepare.sh;
# the device tool's command: `bash scripts/gpu_check.sh`, carry [".whl"]). Steps run in priority
# order under one time budget (BUDGET seconds, default 420), each under its own limit; each
# benchmark's JSON becomes one line of $OUT/results.jsonl, everything else goes to $OUT/log.txt.
# ONLY="name name ..." runs just those steps (the step names below).
set -uo pipefail
export PYTHONUNBUFFERED=1
T0=$(date +%s)
BUDGET=${BUDGET:-420}
OUT=${OUT:-out/gpu}; mkdir -p "$OUT"
LOG="$OUT/log.txt"; RES="$OUT/results.jsonl"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl >> "$LOG" 2>&1 || { echo "wheel install failed"; tail "$LOG"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD STROTSS_WORK_DIR=/tmp/strotss-work
python3 scripts/gpu_weights.py unpack .whl/vgg16.q8.xz /tmp/vgg16.pth || exit 1
export STROTSS_VGG_WEIGHTS=/tmp/vgg16.pth
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
  python3 -c "import torch, av, kornia, scenedetect; print('torch', torch.__version__, 'av', av.__version__, 'kornia', kornia.__version__)"
  nproc; } >> "$LOG" 2>&1

left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
step() {  # NAME LIMIT COMMAND...: run one step if time is left; a JSON result goes to $RES
  local name=$1 limit=$2; shift 2
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then return; fi
  local l; l=$(left)
  if (( l < 25 )); then echo "$name: skipped, ${l} s left" | tee -a "$LOG"; return; fi
  (( limit > l )) && limit=$l
  echo "== $name (limit $limit s): $*" >> "$LOG"
  local s; s=$(date +%s)
  timeout "$limit" "$@" > /tmp/step.out 2>> "$LOG"; local rc=$?
  echo "$name: rc=$rc, $(( $(date +%s) - s )) s" | tee -a "$LOG"
  python3 -c "import json,sys; d=json.load(open('/tmp/step.out')); d['run']='$name'; print(json.dumps(d))" \
    >> "$RES" 2>/dev/null || cat /tmp/step.out >> "$LOG"
}
V=scripts/bench_video.py
step cuda-tests 100 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py
step video512 100 python3 $V --device cuda --size 512 --frames 12 --cuts 1
step video512-again 100 python3 $V --device cuda --size 512 --frames 12 --cuts 1
printf 'runtime: {cudnn_benchmark: "on"}\n' > /tmp/onbench.yaml
printf 'runtime: {cudnn_benchmark: final}\n' > /tmp/finalbench.yaml
# cuDNN's algorithm timing (on) was the first cold frame's one-time cost: 12.0 s vs 4.75 s off.
step video512-cudnn-on 100 python3 $V --device cuda --size 512 --frames 12 --cuts 1 --config /tmp/onbench.yaml
step video512-cudnn-final 100 python3 $V --device cuda --size 512 --frames 12 --cuts 1 --config /tmp/finalbench.yaml
# Could several shots optimised as one batch raise throughput? (The extractor's share, batched.)
step batching 60 python3 scripts/bench_batching.py --device cuda --size 512 288 --batches 1 2 4 8
step video1920 120 python3 $V --device cuda --size 1920 --frames 6 --iters 50
step video512-eager 100 python3 $V --device cuda --size 512 --frames 12 --cuts 1 --cuda-graphs off
step profile512 60 python3 scripts/profile_step.py --device cuda --size 512 288 --iters 20 --precision mixed --top 40
step video512-float32 100 python3 $V --device cuda --size 512 --frames 12 --cuts 1 --precision float32
step image-mixed 90 python3 scripts/bench_image.py --device cuda --sizes 256 512 1024 --iters 50 --repeats 3 --precision mixed
grep -E "rc=|skipped|passed|failed|error" "$LOG" | tail -n 20
wc -l < "$RES"
