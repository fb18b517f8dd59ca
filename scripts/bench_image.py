#!/usr/bin/env python
"""Benchmark the STROTSS image core: seconds per iteration at each scale vs a measured floor.

Prints JSON. For each long side: the median seconds per optimiser iteration (loop only), the
share spent in the extractor forward+backward and in the losses, and a floor measured in the
same process — a bare VGG16 forward+backward of the same image size plus the loss's
unavoidable products timed alone: the (points x style points) cosine cost matrix forward, the
(D x D) output covariance forward+backward and the (points x points) self-similarity
forward+backward (each backward as one product, its cheapest exact form; products only).

    python scripts/bench_image.py --sizes 64 128 256 --iters 10 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strotss_video.config import PRECISIONS, RuntimeConfig, StrotssConfig  # noqa: E402
from strotss_video.losses.ops import unit_rows  # noqa: E402
from strotss_video.pipeline.runtime import extractor_for, resolve_device  # noqa: E402
from strotss_video.stylize.optimize import ScaleStep, StyleBank, stylize  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_time(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _pattern(h: int, w: int, seed: int, device: torch.device) -> torch.Tensor:
    """A smooth synthetic test image (1,3,h,w) in [0,1]: sinusoids plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.linspace(0, 1, h).view(h, 1)
    xs = torch.linspace(0, 1, w).view(1, w)
    chans = []
    for c in range(3):
        fx, fy, ph = (torch.rand(3, generator=g) * torch.tensor([12.0, 12.0, 6.28])).tolist()
        chans.append(0.5 + 0.35 * torch.sin(fx * xs * 6.28 + fy * ys * 6.28 + ph))
    img = torch.stack(chans)[None] + 0.05 * torch.rand(1, 3, h, w, generator=g)
    return img.clamp(0, 1).to(device)


def floor_terms(extractor: torch.nn.Module, size: tuple[int, int], cfg: StrotssConfig,
                dim: int, device: torch.device, repeats: int) -> dict[str, float]:
    """Time the unavoidable work of one iteration, each piece alone: the median of each
    piece's ``repeats`` timings, and their sum (``total``)."""
    out = {name: statistics.median(times) for name, times in
           floor_samples(extractor, size, cfg, dim, device, repeats).items()}
    out["total"] = sum(out.values())
    return out


def floor_samples(extractor: torch.nn.Module, size: tuple[int, int], cfg: StrotssConfig,
                  dim: int, device: torch.device, repeats: int) -> dict[str, list[float]]:
    """``repeats`` timings of each floor piece alone, the pieces taken in turn (one of each per
    round, after two untimed rounds), so that a machine whose speed drifts during the
    measurement slows every piece alike (since session 17; before, each piece's timings were
    taken back to back)."""
    image = torch.rand(1, 3, *size, device=device, requires_grad=True)

    def vgg() -> None:
        maps = extractor(image)
        torch.autograd.backward(maps, [torch.ones_like(m) for m in maps])

    n, m = cfg.output_points, cfg.style_points
    a = unit_rows(torch.rand(n, dim, device=device))
    b_t = unit_rows(torch.rand(m, dim, device=device)).t().contiguous()
    x = torch.rand(n, dim, device=device)
    g_cov = torch.rand(dim, dim, device=device)
    g_ss = torch.rand(n, n, device=device)

    # The products alone: forward X^T X (D,D) or X X^T (N,N), backward one product with the
    # incoming gradient (the symmetrisation of that gradient is not a product: not floor).
    # Each writes into an output allocated once: a fresh (N,M) output is a new mapping that
    # every call faults in (~7 ms of a 70 ms product on a 2-core CPU), which is not the
    # product's work (since session 17; the step keeps its cost matrices in one buffer too).
    out_nm = torch.empty(n, m, device=device)
    out_dd = torch.empty(dim, dim, device=device)
    out_nn = torch.empty(n, n, device=device)
    out_nd = torch.empty(n, dim, device=device)

    @torch.no_grad()
    def cost() -> None:
        torch.mm(a, b_t, out=out_nm)

    @torch.no_grad()
    def cov() -> None:
        torch.mm(x.t(), x, out=out_dd)
        torch.mm(x, g_cov, out=out_nd)

    @torch.no_grad()
    def ss() -> None:
        torch.mm(x, x.t(), out=out_nn)
        torch.mm(g_ss, x, out=out_nd)

    pieces = (("vgg_forward_backward", vgg), ("cost_matrix_forward", cost),
              ("covariance_forward_backward", cov), ("self_similarity_forward_backward", ss))
    times: dict[str, list[float]] = {name: [] for name, _ in pieces}
    for r in range(repeats + 2):
        for name, fn in pieces:
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            if r >= 2:
                times[name].append(time.perf_counter() - start)
    return times


def one_scale_setup(extractor: torch.nn.Module, size: tuple[int, int], cfg: StrotssConfig,
                    iters: int, device: torch.device
                    ) -> tuple[torch.Tensor, StyleBank, list[ScaleStep]]:
    """A synthetic content (1,3,H,W) of ``size`` (H, W), a style bank whose targets at the long
    side are already computed (constant per scale: not part of a step's time), and a plan of
    ``iters`` steps at that one scale."""
    long_side = max(size)
    content = _pattern(*size, 1, device)
    bank = StyleBank(extractor, _pattern(long_side, long_side, 2, device), cfg)
    bank.targets(long_side)
    return content, bank, [ScaleStep(long_side, iters, cfg.final_lr, 2.0, add_content_band=True)]


def timed_runs(content: torch.Tensor, bank: StyleBank, extractor: torch.nn.Module,
               cfg: StrotssConfig, plan: list[ScaleStep], graphs: str, repeats: int) -> list[Any]:
    """One warm-up run, then ``repeats`` timed runs of the one-scale ``plan``: their scale
    results (``loop_seconds / iterations`` is the seconds per step)."""
    stylize(content, bank, extractor, cfg, plan=plan, progress=False, graphs=graphs)
    return [stylize(content, bank, extractor, cfg, plan=plan, seed=r, progress=False,
                    graphs=graphs).scales[0] for r in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output-points", type=int, default=1024)
    parser.add_argument("--style-points", type=int, default=5000)
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="float32 keeps the image-core figures comparable across machines")
    parser.add_argument("--cuda-graphs", choices=("on", "off"), default="on",
                        help="on CUDA, also time the steps replayed as a CUDA graph")
    args = parser.parse_args()

    device = resolve_device(args.device)
    extractor, _ = extractor_for(RuntimeConfig(precision=args.precision), device, None, False)
    results = []
    for size in args.sizes:
        cfg = StrotssConfig(max_size=size, scales=1, iters=args.iters,
                            output_points=args.output_points, style_points=args.style_points)
        content, bank, plan = one_scale_setup(extractor, (round(size * 0.75), size), cfg,
                                              args.iters, device)
        modes = ["off", "on"] if device.type == "cuda" and args.cuda_graphs == "on" else ["off"]
        per_mode: dict[str, float] = {}
        for mode in modes:
            runs = timed_runs(content, bank, extractor, cfg, plan, mode, args.repeats)
            if mode == "off":
                eager = runs
            per_mode[mode] = statistics.median(r.loop_seconds / r.iterations for r in runs)
        runs = eager
        per_iter = min(per_mode.values())
        # Clock marks exist only for eager steps: shares come from the eager runs.
        vgg = statistics.median(r.vgg_seconds / r.loop_seconds for r in runs)
        loss = statistics.median(r.loss_seconds / r.loop_seconds for r in runs)
        floor = floor_terms(extractor, (runs[0].height, runs[0].width), cfg, extractor.dim, device,
                            repeats=max(5, args.repeats))
        results.append({
            "long_side": size, "height": runs[0].height, "width": runs[0].width,
            "seconds_per_iteration": round(per_iter, 6),
            "seconds_per_iteration_eager": round(per_mode["off"], 6),
            "seconds_per_iteration_cuda_graph": round(per_mode["on"], 6) if "on" in per_mode
            else None,
            "extractor_share": round(vgg, 3), "loss_share": round(loss, 3),
            "other_share": round(1 - vgg - loss, 3),
            "floor_seconds": {k: round(v, 6) for k, v in floor.items()},
            "ratio_to_floor": round(per_iter / floor["total"], 3),
        })
    print(json.dumps({
        "benchmark": "bench_image", "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "precision": args.precision, "output_points": args.output_points, "style_points": args.style_points,
        "iters": args.iters, "repeats": args.repeats, "sizes": results}, indent=2))


if __name__ == "__main__":
    main()
