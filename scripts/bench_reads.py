#!/usr/bin/env python
"""Benchmark the two hypercolumn reads (row gathers vs grid_sample); prints JSON.

Reads VGG16-shaped channels-last maps (the 10 STROTSS layers, random values) of one image
size at N random points, forward and backward (as in an optimisation step: fresh leaf maps,
the gradient of a weighted sum), and forward only without gradient (as for the content).

    python scripts/bench_reads.py --size 256 192 --points 1024 --repeats 9

``--vgg``: instead, VGG16 itself (float32 and bfloat16 on CPUs with native bfloat16) forward
+ backward at one size with the reads of one step, read from the returned maps (as before
session 15) and tapped inside the forward (``VGGHypercolumns.columns``), beside the floor's VGG
term (a dense gradient into every returned map) and a backward from the last map alone.

    python scripts/bench_reads.py --vgg --size 256 144 --points 1024 --repeats 15
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


def vgg_rows(size: tuple[int, int], n: int, repeats: int, device: torch.device) -> list[dict]:
    """Median seconds of VGG16 forward+backward with one step's reads, per precision."""
    from strotss_video.config import RuntimeConfig
    from strotss_video.features.sampling import random_pixels
    from strotss_video.pipeline.runtime import load_extractor, resolve_precision

    model = load_extractor(RuntimeConfig(), device, progress=False).model
    w, h = size
    g = torch.Generator().manual_seed(0)
    points = random_pixels(h, w, n, g)
    probe = torch.rand(n, model.dim, generator=g).to(device)
    image = torch.rand(1, 3, h, w, generator=g).to(device)
    dtypes = {"float32": None}
    if resolve_precision("auto", device) != "float32":
        dtypes["bfloat16"] = torch.bfloat16
    rows = []
    reference: torch.Tensor | None = None
    for name, dtype in dtypes.items():
        model.autocast = dtype

        def returned() -> torch.Tensor:
            x = image.clone().requires_grad_(True)
            maps = model(x)
            leaves = [m.detach().requires_grad_(True) for m in maps]
            a = torch.cat(read_bilinear_columns(leaves, model.strides, points), dim=1)
            (a.square() * probe).sum().backward()
            torch.autograd.backward(maps, [m.grad for m in leaves])
            return x.grad

        def tapped() -> torch.Tensor:
            x = image.clone().requires_grad_(True)
            live = model.columns(x, points)
            cols = [c.detach().requires_grad_(True) for c in live]
            (torch.cat(cols, dim=1).square() * probe).sum().backward()
            torch.autograd.backward(live, [c.grad for c in cols])
            return x.grad

        def floor_vgg() -> None:
            x = image.clone().requires_grad_(True)
            maps = model(x)
            torch.autograd.backward(maps, [torch.ones_like(m) for m in maps])

        def last_only() -> None:
            x = image.clone().requires_grad_(True)
            maps = model(x)
            maps[-1].backward(torch.ones_like(maps[-1]))

        def rel(a: torch.Tensor, b: torch.Tensor) -> float:
            return round(float((a - b).norm() / b.norm()), 6)

        grad_returned, grad_tapped = returned(), tapped()
        reference = grad_returned if reference is None else reference
        row: dict[str, object] = {
            "vgg_dtype": name, "points": n,
            # The image gradient of the same loss: tapped against returned maps, and each
            # against float32 with returned maps (the first row's).
            "grad_rel_diff_tapped_vs_returned": rel(grad_tapped, grad_returned),
            "grad_rel_diff_vs_float32": {"returned_maps": rel(grad_returned, reference),
                                         "tapped": rel(grad_tapped, reference)}}
        # In turn, twice, so that a drift of the machine shows as a difference between rounds.
        for rnd in (1, 2):
            for key, fn in (("returned_maps", returned), ("tapped", tapped),
                            ("floor_vgg_term", floor_vgg), ("backward_from_last_map", last_only)):
                row.setdefault(f"{key}_s", []).append(  # type: ignore[union-attr]
                    round(_median_time(fn, repeats, device), 6))
        rows.append(row)
    model.autocast = None
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, nargs=2, default=[256, 192], metavar=("W", "H"))
    ap.add_argument("--points", type=int, nargs="+", default=[1024, 36864])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--vgg", action="store_true",
                    help="time VGG16 forward+backward with the reads (returned maps vs tapped)")
    args = ap.parse_args()
    if args.vgg:
        device = torch.device(args.device)
        print(json.dumps({"benchmark": "bench_reads --vgg", "device": str(device),
                          "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "size": list(args.size),
                          "results": vgg_rows(tuple(args.size), args.points[0], args.repeats,
                                              device)}, indent=2))
        return

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
