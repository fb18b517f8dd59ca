#!/usr/bin/env bash
# Reproduces the video acceptance figures in README.md / the closing notes (CPU, ~25 min).
# Needs the development data set at ../shared/data (not part of the repository).
# EXTRA="--fill warped" passes options to every stylisation run.
set -u
cd "$(dirname "$0")/.."
mkdir -p out/acc
V=../shared/data/videos
S=../shared/data/styles/udnie.jpg
.venv/bin/python scripts/acceptance_video.py $V/imageio_realshort.mp4 $V/cotracker_bear.mp4 $V/sam2_bedroom.mp4 $V/adain_cutBunny.mp4 --style $S --frames 16 --max-size 192 --out out/acc --extra="${EXTRA:-}" > out/acc/acceptance.json 2> out/acc/acceptance.err
echo "acc done $(date)" >> out/acc/progress
/usr/bin/time -v .venv/bin/python -m strotss_video $V/cotracker_bear.mp4 $S out/acc/preview_2s.mp4 --preset preview --end 2s --stats out/acc/preview_2s.json --overwrite --quiet ${EXTRA:-} 2> out/acc/preview_2s.time
echo "preview done $(date)" >> out/acc/progress
for n in 24 96; do .venv/bin/python -m strotss_video $V/sam2_bedroom.mp4 $S out/acc/mem_$n.mp4 --preset preview --max-size 128 --scales 2 --end $n --stats out/acc/mem_$n.json --overwrite --quiet ${EXTRA:-}; done
echo "mem done $(date)" >> out/acc/progress
.venv/bin/python -m strotss_video $V/cotracker_bear.mp4 $S out/acc/default_4.mp4 --max-size 256 --end 4 --stats out/acc/default_4.json --overwrite --quiet ${EXTRA:-}
echo "default done $(date)" >> out/acc/progress
