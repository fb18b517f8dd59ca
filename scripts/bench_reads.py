#!/usr/bin/env python
"""Benchmark the two hypercolumn reads (row gathers vs grid_sample); prints JSON.

Reads VGG16-shaped channels-last maps (the 10 STROTSS layers, random values) of one image
size at N random points, forward and backward (as in an optimisation step: fresh leaf maps,
the gradient of a weighted sum), and forward only without gradient (as for the content).

    python scripts/bench_reads.py --size 256 192 --points 1024 --repeats 9
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strotss_video.features.sampling import read_bilinear_columns  # noqa: E402

# (channels, stride) of the image and the nine VGG16 maps STROTSS reads.
MAPS = [(3, 1), (64, 1), (64, 1), (128, 2), (128, 2), (256, 4), (256, 4), (256, 4), (512, 8),
        (512, 16)]


def _median_time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, nargs=2, default=[256, 192], metavar=("W", "H"))
    ap.add_argument("--points", type=int, nargs="+", default=[1024, 36864])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    device = torch.device(args.device)
    w, h = args.size
    g = torch.Generator().manual_seed(0)
    maps = [torch.rand(1, c, h // s, w // s, generator=g).to(device) for c, s in MAPS]
    maps = [m if m.shape[1] == 3 else m.contiguous(memory_format=torch.channels_last)
            for m in maps]
    strides = [s for _, s in MAPS]
    rows = []
    for n in args.points:
        points = torch.stack([torch.randint(w, (n,), generator=g),
                              torch.randint(h, (n,), generator=g)], dim=1)
        weights = torch.rand(n, sum(c for c, _ in MAPS), generator=g).to(device)
        row: dict[str, object] = {"points": n}
        for method in ("gather", "grid_sample"):
            def step() -> None:
                leaves = [m.detach().requires_grad_(True) for m in maps]
                a = torch.cat(read_bilinear_columns(leaves, strides, points, method), dim=1)
                (a * weights).sum().backward()

            def forward() -> None:
                with torch.no_grad():
                    torch.cat(read_bilinear_columns(maps, strides, points, method), dim=1)

            row[f"{method}_forward_backward_s"] = round(_median_time(step, args.repeats, device), 6)
            row[f"{method}_forward_s"] = round(_median_time(forward, args.repeats, device), 6)
        row["grid_sample_over_gather_forward_backward"] = round(
            row["grid_sample_forward_backward_s"] / row["gather_forward_backward_s"], 2)  # type: ignore[operator]
        row["grid_sample_over_gather_forward"] = round(
            row["grid_sample_forward_s"] / row["gather_forward_s"], 2)  # type: ignore[operator]
        rows.append(row)
    print(json.dumps({"benchmark": "bench_reads", "device": str(device),
                      "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                      else platform.processor() or platform.machine(),
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "size": [w, h], "results": rows}, indent=2))


if __name__ == "__main__":
    main()
