"""The STROTSS image core: seconds per optimiser iteration at each size against the floor.

For each long side: the median seconds per iteration (loop only) over ``--repeats`` runs of
``--iters`` iterations, the share spent in the extractor's forward+backward and in the losses,
and the floor measured in the same process (benchmarks/README.md): a bare VGG16
forward+backward of the same image plus the loss's unavoidable products timed alone, the
(points x style points) cosine cost matrix forward, the (D x D) output covariance
forward+backward and the (points x points) self-similarity forward+backward, each backward as
one product, its cheapest exact form.

    python -m benchmarks.image --sizes 64 128 256 --iters 10 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import torch

from benchmarks.common import Timing, add_output_arguments, finish, time_in_turn
from strotss_video.config import PRECISIONS, RuntimeConfig, StrotssConfig
from strotss_video.features.vgg import FeatureExtractor
from strotss_video.losses.ops import unit_rows
from strotss_video.pipeline.runtime import extractor_for, resolve_device
from strotss_video.stylize.optimize import ScaleReport, ScaleStep, StyleBank, stylize


def pattern(h: int, w: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A smooth synthetic image (1,3,h,w) in [0,1]: sinusoids plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.linspace(0, 1, h).view(h, 1)
    xs = torch.linspace(0, 1, w).view(1, w)
    chans = []
    for _ in range(3):
        fx, fy, ph = (torch.rand(3, generator=g) * torch.tensor([12.0, 12.0, 6.28])).tolist()
        chans.append(0.5 + 0.35 * torch.sin(fx * xs * 6.28 + fy * ys * 6.28 + ph))
    img = torch.stack(chans)[None] + 0.05 * torch.rand(1, 3, h, w, generator=g)
    return img.clamp(0, 1).to(device)


def floor_samples(extractor: FeatureExtractor, size: tuple[int, int], cfg: StrotssConfig,
                  device: torch.device, repeats: int) -> dict[str, Timing]:
    """``repeats`` timings of each floor piece alone at image ``size`` (H, W), the pieces taken
    in turn (benchmarks.common.time_in_turn)."""
    dim = sum(extractor.channels)  # the hypercolumn's length, 2179 for VGG16
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
    # incoming gradient (symmetrising that gradient is not a product: not floor). Outputs are
    # allocated once: a fresh (N,M) output is a new mapping that every call faults in, which
    # is not the product's work (the step keeps its cost matrices in one buffer too).
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

    return time_in_turn({"vgg_forward_backward": vgg, "cost_matrix_forward": cost,
                         "covariance_forward_backward": cov,
                         "self_similarity_forward_backward": ss}, device, repeats)


def floor_medians(samples: dict[str, Timing]) -> dict[str, float]:
    """Each floor piece's median seconds, and their sum (``total``)."""
    out = {name: t.median for name, t in samples.items()}
    out["total"] = sum(out.values())
    return out


def one_scale_setup(extractor: FeatureExtractor, size: tuple[int, int], cfg: StrotssConfig,
                    iters: int, device: torch.device
                    ) -> tuple[torch.Tensor, StyleBank, list[ScaleStep]]:
    """A synthetic content (1,3,H,W) of ``size`` (H, W), a style bank whose targets at the long
    side are already computed (constant per scale: not part of a step's time), and a plan of
    ``iters`` steps at that one scale."""
    long_side = max(size)
    content = pattern(*size, 1, device)
    bank = StyleBank(extractor, pattern(long_side, long_side, 2, device), cfg)
    bank.targets(long_side)
    return content, bank, [ScaleStep(long_side, iters, cfg.final_lr, 2.0, add_content_band=True)]


def timed_runs(content: torch.Tensor, bank: StyleBank, extractor: FeatureExtractor,
               cfg: StrotssConfig, plan: list[ScaleStep], graphs: str,
               repeats: int) -> list[ScaleReport]:
    """One warm-up run, then ``repeats`` timed runs of the one-scale ``plan``: their scale
    reports (``loop_seconds / iterations`` is the seconds per step)."""
    stylize(content, bank, extractor, cfg, plan=plan, progress=False, graphs=graphs)
    return [stylize(content, bank, extractor, cfg, plan=plan, seed=r, progress=False,
                    graphs=graphs).scales[0] for r in range(repeats)]


def measure_size(extractor: FeatureExtractor, size: int, args: argparse.Namespace,
                 device: torch.device) -> dict[str, Any]:
    """One long side: seconds per iteration (eager, and replayed as a CUDA graph on CUDA),
    where they go, and the floor at the same shapes."""
    cfg = StrotssConfig(max_size=size, scales=1, iters=args.iters,
                        output_points=args.output_points, style_points=args.style_points)
    content, bank, plan = one_scale_setup(extractor, (round(size * 0.75), size), cfg,
                                          args.iters, device)
    graphs = device.type == "cuda" and args.cuda_graphs == "on"
    per_mode: dict[str, list[float]] = {}
    runs: dict[str, list[ScaleReport]] = {}
    for mode in ("off", "on") if graphs else ("off",):
        runs[mode] = timed_runs(content, bank, extractor, cfg, plan, mode, args.repeats)
        per_mode[mode] = [r.loop_seconds / r.iterations for r in runs[mode]]
    eager = runs["off"]  # clock marks exist only for eager steps: shares come from them
    per_iter = min(statistics.median(v) for v in per_mode.values())
    vgg = statistics.median(r.vgg_seconds / r.loop_seconds for r in eager)
    loss = statistics.median(r.loss_seconds / r.loop_seconds for r in eager)
    floor = floor_medians(floor_samples(extractor, (eager[0].height, eager[0].width), cfg,
                                        device, max(5, args.repeats)))
    return {
        "long_side": size, "height": eager[0].height, "width": eager[0].width,
        "seconds_per_iteration": per_iter,
        "seconds_per_iteration_eager": Timing(tuple(per_mode["off"])).to_dict(),
        "seconds_per_iteration_cuda_graph": Timing(tuple(per_mode["on"])).to_dict()
        if "on" in per_mode else None,
        "extractor_share": vgg, "loss_share": loss, "other_share": 1 - vgg - loss,
        "floor_seconds": floor, "ratio_to_floor": per_iter / floor["total"],
    }


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
    add_output_arguments(parser)
    args = parser.parse_args()

    device = resolve_device(args.device)
    extractor, _ = extractor_for(RuntimeConfig(precision=args.precision), device, None, False)
    finish("image", {
        "precision": args.precision, "output_points": args.output_points,
        "style_points": args.style_points, "iters": args.iters, "repeats": args.repeats,
        "sizes": [measure_size(extractor, size, args, device) for size in args.sizes]},
        args, device)


if __name__ == "__main__":
    main()
