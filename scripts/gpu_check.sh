#!/usr/bin/env bash
# The GPU acceptance run, on the device machine, in one call (prepare with scripts/gpu_prepare.sh;
# the device tool's command: `bash scripts/gpu_check.sh`, carry [".whl"]). Each benchmark's JSON
# becomes one line of $OUT/results.jsonl; stderr and the CUDA tests' output go to $OUT/log.txt.
set -uo pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD STROTSS_VGG_WEIGHTS=$PWD/.whl/vgg16.pth
OUT=${OUT:-out/gpu}; mkdir -p "$OUT"
LOG="$OUT/log.txt"; RES="$OUT/results.jsonl"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$LOG"
bench() {  # NAME ARGS...: run one benchmark, append its JSON as one line
  local name=$1; shift
  echo "== $name: $*" >> "$LOG"
  python3 "$@" 2>> "$LOG" | python3 -c \
    "import json,sys; d=json.load(sys.stdin); d['run']='$name'; print(json.dumps(d))" >> "$RES"
}
for p in float32 mixed; do
  bench "image-$p" scripts/bench_image.py --device cuda --sizes 256 512 1024 --iters 50 \
    --repeats 3 --precision $p
  bench "video512-$p" scripts/bench_video.py --device cuda --size 512 --frames 12 --precision $p
done
bench "video1920-mixed" scripts/bench_video.py --device cuda --size 1920 --frames 6 --iters 50 \
  --precision mixed
bench "video1920-float32" scripts/bench_video.py --device cuda --size 1920 --frames 6 --iters 50
python3 -m pytest -q -x -p no:cacheprovider tests/test_stylize.py tests/test_losses.py >> "$LOG" 2>&1
tail -n 5 "$LOG"; wc -l "$RES"
