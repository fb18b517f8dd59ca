#!/usr/bin/env python
"""Loss-piece implementations against the alternatives tried beside them; prints JSON.

Each comparison runs in one process, so a machine whose speed drifts between runs still gives
a fair pair (docs/tuning.md, session 16):

- ``content``: the fused content loss against autograd through ``self_similarity`` (the
  formula it replaced), in real one-scale steps at 256x144, the two alternating;
- ``cosine``: the relaxed EMD's cost product as (N,M) (kept) against (M,N), alone and in steps;
- ``palette``: the palette cost matrix built whole (kept) against in row blocks, alone;
- ``covariance``: the moment loss's backward product (kept) against block columns built from
  the upper blocks only, alone.

    python scripts/bench_alternatives.py --pieces content cosine palette covariance --pairs 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_image import one_scale_setup  # noqa: E402
from bench_products import median_ms  # noqa: E402
import strotss_video.losses.total as total  # noqa: E402
from strotss_video.config import RuntimeConfig, StrotssConfig  # noqa: E402
from strotss_video.losses.content import self_similarity  # noqa: E402
from strotss_video.losses.ops import unit_rows  # noqa: E402
from strotss_video.losses.style import _first_side, _nearest_sums, _palette_matrix  # noqa: E402
from strotss_video.pipeline.runtime import extractor_for  # noqa: E402
from strotss_video.stylize.optimize import stylize  # noqa: E402


def content_autograd(x_unit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The content loss through autograd, as before session 16."""
    return (self_similarity(x_unit) - target).abs().mean() * x_unit.shape[0]


def remd_cosine_transposed(a_unit: torch.Tensor, b_unit: torch.Tensor,
                           b_unit_t: torch.Tensor | None = None,
                           branchless: bool | None = None) -> torch.Tensor:
    """The relaxed EMD with the similarity built as (M,N) (CPU path only)."""
    with torch.no_grad():
        n, m = a_unit.shape[0], b_unit.shape[0]
        sim_t = torch.mm(b_unit, a_unit.t())
        if _first_side(sim_t.t(), "max"):
            partner, count = b_unit.index_select(0, sim_t.max(dim=0).indices), n
        else:
            partner, count = _nearest_sums(a_unit, b_unit, sim_t.max(dim=1).indices), m
    return 1.0 - torch.dot(a_unit.reshape(-1), partner.reshape(-1)) / count


def palette_blocked(a: torch.Tensor, b: torch.Tensor, rows: int) -> torch.Tensor:
    """``_palette_matrix`` built ``rows`` rows at a time (same values)."""
    a_aug = torch.cat([a, torch.ones_like(a[:, :1]), a.square().sum(1, keepdim=True)], dim=1)
    b_aug_t = torch.cat([-2.0 * b, b.square().sum(1, keepdim=True), torch.ones_like(b[:, :1])],
                        dim=1).div_(3.0).t().contiguous()
    au, bu_t = unit_rows(a), unit_rows(b).t().contiguous()
    out = a.new_empty(a.shape[0], b.shape[0])
    for r0 in range(0, a.shape[0], rows):
        block = out[r0:r0 + rows]
        torch.mm(a_aug[r0:r0 + rows], b_aug_t, out=block)
        block.clamp_(1e-5 / 3.0, 1e5 / 3.0).sqrt_().addmm_(au[r0:r0 + rows], bu_t, alpha=-1.0)
    return out


def in_steps(name: str, alternative: Callable, pairs: int, iters: int) -> dict:
    """Seconds per step of real one-scale steps with ``total.<name>`` as it is and replaced by
    ``alternative``, alternating, ``pairs`` times."""
    device = torch.device("cpu")
    extractor, _ = extractor_for(RuntimeConfig(), device, None, False)
    cfg = StrotssConfig(max_size=256, scales=1, iters=iters)
    image, bank, plan = one_scale_setup(extractor, (144, 256), cfg, iters, device)
    kept = getattr(total, name)
    stylize(image, bank, extractor, cfg, plan=plan, progress=False)
    out: dict[str, list[float]] = {"kept": [], "alternative": []}
    try:
        for r in range(pairs):
            for key, fn in (("kept", kept), ("alternative", alternative)):
                setattr(total, name, fn)
                rep = stylize(image, bank, extractor, cfg, plan=plan, seed=r,
                              progress=False).scales[0]
                out[key].append(round(rep.loop_seconds / rep.iterations, 4))
    finally:
        setattr(total, name, kept)
    diffs = [(b - a) * 1000 for a, b in zip(out["kept"], out["alternative"])]
    return {"seconds_per_step": out, "median_kept": statistics.median(out["kept"]),
            "median_alternative": statistics.median(out["alternative"]),
            "paired_alternative_minus_kept_ms_median": round(statistics.median(diffs), 2),
            "paired_alternative_minus_kept_ms": [round(d, 1) for d in diffs]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pieces", nargs="+", default=["content", "cosine", "palette", "covariance"],
                    choices=["content", "cosine", "palette", "covariance"])
    ap.add_argument("--pairs", type=int, default=8, help="alternating pairs of step runs")
    ap.add_argument("--iters", type=int, default=10, help="steps per run")
    ap.add_argument("--repeats", type=int, default=15, help="timings of a piece alone")
    args = ap.parse_args()
    torch.manual_seed(0)
    n, m, d = 1024, 5000, 2179
    result: dict[str, object] = {"benchmark": "bench_alternatives",
                                 "threads": torch.get_num_threads()}
    if "content" in args.pieces:
        result["content_fused_vs_autograd"] = in_steps("content_loss", content_autograd,
                                                       args.pairs, args.iters)
    if "cosine" in args.pieces:
        a = F.normalize(torch.randn(n, d).abs(), dim=1)
        b = F.normalize(torch.randn(m, d).abs(), dim=1)
        b_t = b.t().contiguous()
        with torch.no_grad():
            alone = {"kept_ms": median_ms(lambda: total.remd_cosine(a, b, b_t), args.repeats),
                     "transposed_ms": median_ms(lambda: remd_cosine_transposed(a, b, b_t),
                                                args.repeats)}
        result["cosine_nm_vs_mn"] = {"alone": alone, "in_steps": in_steps(
            "remd_cosine", remd_cosine_transposed, args.pairs, args.iters)}
    if "palette" in args.pieces:
        a, b = torch.rand(n, 3), torch.rand(m, 3)
        with torch.no_grad():
            result["palette_whole_vs_row_blocks_ms"] = {
                "whole": median_ms(lambda: _palette_matrix(a, b), args.repeats * 2),
                **{f"blocks_of_{r}": median_ms(lambda r=r: palette_blocked(a, b, r),
                                               args.repeats * 2) for r in (64, 128, 256)}}
    if "covariance" in args.pieces:
        x, sign = torch.rand(n, d), torch.rand(d, d).sign()
        edges = [0, 545, 1090, 1635, d]
        spans = list(zip(edges[:-1], edges[1:]))
        upper = {(i, j): sign[a0:a1, b0:b1].contiguous() for i, (a0, a1) in enumerate(spans)
                 for j, (b0, b1) in enumerate(spans) if j >= i}

        def from_upper() -> torch.Tensor:
            out = torch.empty(n, d)
            for j, (b0, b1) in enumerate(spans):
                col = out[:, b0:b1]
                for i, (a0, a1) in enumerate(spans):
                    blk = upper[(i, j)] if j >= i else upper[(j, i)].t()
                    if i == 0:
                        torch.mm(x[:, a0:a1], blk, out=col)
                    else:
                        col.addmm_(x[:, a0:a1], blk)
            return out

        result["covariance_backward_ms"] = {
            "one_product": median_ms(lambda: torch.mm(x, sign), args.repeats),
            "block_columns_from_upper": median_ms(from_upper, args.repeats)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
