#!/usr/bin/env python
"""What batching several shots into one optimisation could gain on one device: prints JSON.

Each step of a STROTSS optimisation is one VGG16 forward+backward of the image plus the loss's
work on ~1000 sampled points. Shots optimised together would share the forward+backward as one
batch; the loss work is per image and stays as it is. This times the extractor's
forward+backward at batch 1, 2, 4, ... (eagerly, and on CUDA also replayed as a CUDA graph, as
the pipeline's steps are) and the loss products of one image (``bench_image.floor_terms``), and
projects the seconds per image-step at each batch size two ways:

    per_image_step(b)      = vgg(b) / b + products(1)          (floor terms only)
    per_image_full_step(b) = step(1) - vgg(1) + vgg(b) / b     (a real step, measured)

where step(1) is a real single-image optimisation step at that size (``stylize``, replayed as a
CUDA graph on CUDA). ``gain_*`` is the batch-1 figure over the batch-b one: the most a batched
optimiser could raise throughput by. A figure near 1 means the device is already busy at
batch 1 and batching is not worth building.

    python scripts/bench_batching.py --device cuda --size 512 288 --batches 1 2 4 8
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_image import _median_time, floor_terms, one_scale_setup, timed_runs  # noqa: E402
from strotss_video.config import PRECISIONS, RuntimeConfig, StrotssConfig  # noqa: E402
from strotss_video.pipeline.runtime import extractor_for, resolve_device  # noqa: E402


def _fwd_bwd(extractor: torch.nn.Module, image: torch.Tensor) -> Callable[[], torch.Tensor]:
    """One forward+backward of ``image`` (B,3,H,W), every map's gradient all ones."""
    def run() -> torch.Tensor:
        maps = extractor(image)
        (grad,) = torch.autograd.grad(maps, image, [torch.ones_like(m) for m in maps])
        return grad
    return run


def _graphed(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """``fn`` captured once as a CUDA graph (warm-up on a side stream first, as torch asks)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", type=int, nargs=2, default=[512, 288], metavar=("W", "H"))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--precision", choices=PRECISIONS, default="auto")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--step-iters", type=int, default=50, help="steps of the real batch-1 run")
    args = ap.parse_args()
    if 1 not in args.batches:
        args.batches = [1, *args.batches]

    device = resolve_device(args.device)
    runtime = RuntimeConfig(precision=args.precision)
    extractor, _ = extractor_for(runtime, device, None, False)
    w, h = args.size
    cfg = StrotssConfig()
    products = floor_terms(extractor, (h, w), cfg, extractor.dim, device, args.repeats)
    loss_products = products["total"] - products["vgg_forward_backward"]

    # One real step at batch 1: a one-scale optimisation at this size, run as warm frames run.
    step_cfg = StrotssConfig(max_size=max(w, h), scales=1, iters=args.step_iters)
    graphs = "on" if device.type == "cuda" else "off"
    content, bank, plan = one_scale_setup(extractor, (h, w), step_cfg, args.step_iters, device)
    step_1 = statistics.median(r.loop_seconds / r.iterations for r in
                               timed_runs(content, bank, extractor, step_cfg, plan, graphs, 3))

    modes = ["eager", "graph"] if device.type == "cuda" else ["eager"]
    rows = []
    for b in sorted(set(args.batches)):
        image = torch.rand(b, 3, h, w, device=device, requires_grad=True)
        row: dict[str, object] = {"batch": b}
        for mode in modes:
            fn = _fwd_bwd(extractor, image)
            timed = _graphed(fn) if mode == "graph" else fn
            seconds = _median_time(timed, device, args.repeats)
            row[f"vgg_seconds_{mode}"] = seconds
            row[f"per_image_step_{mode}"] = seconds / b + loss_products
        mode = modes[-1]  # the way the pipeline's steps run on this device
        vgg_1 = (rows[0] if rows else row)[f"vgg_seconds_{mode}"]
        row["per_image_full_step"] = step_1 - vgg_1 + row[f"vgg_seconds_{mode}"] / b  # type: ignore[operator]
        if device.type == "cuda":
            row["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
            torch.cuda.reset_peak_memory_stats(device)
        rows.append(row)
        del image
    for mode in modes:
        base = rows[0][f"per_image_step_{mode}"]
        for row in rows:
            row[f"gain_over_batch_1_{mode}"] = base / row[f"per_image_step_{mode}"]  # type: ignore[operator]
    for row in rows:
        row["gain_full_step"] = step_1 / row["per_image_full_step"]  # type: ignore[operator]

    print(json.dumps({
        "benchmark": "bench_batching",
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "precision": args.precision,
        "size": [w, h],
        "loss_products_seconds_one_image": loss_products,
        "step_seconds_one_image": step_1,
        "step_mode": graphs,
        "floor_one_image": products,
        "rows": rows,
    }, indent=2))


if __name__ == "__main__":
    main()
