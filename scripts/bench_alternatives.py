#!/usr/bin/env python
"""Loss-piece implementations against the alternatives tried beside them; prints JSON.

Each comparison runs in one process, so a machine whose speed drifts between runs still gives
a fair pair (docs/tuning.md, session 16):

- ``content``: the fused content loss against autograd through ``self_similarity`` (the
  formula it replaced), in real one-scale steps at 256x144, the two alternating;
- ``cosine``: the relaxed EMD's cost product as (N,M) (kept) against (M,N), alone and in steps;
- ``palette``: the palette cost matrix built whole (kept) against in row blocks, alone;
- ``covariance``: the moment loss's backward product (kept) against block columns built from
  the upper blocks only, alone;
- ``s17``: session 17's four step changes against the formulations they replaced, together
  and one at a time, in real steps (``--s17-parts``): the loss on whole tensors instead of
  ``a[slice(None)]`` views (``views``); the covariance difference's sign and norm from the
  upper blocks with the subtraction in the GEMM (``moment``); the relaxed EMDs' column
  arg-max (or arg-min) taken with the extremes (``argmax``); the self-similarity's diagonal
  blocks not mirrored (``mirror``); the cost matrices written into one (N,M) buffer kept for
  the scale (``scratch``). Not included: the columns as one leaf (inside the step's body).

    python scripts/bench_alternatives.py --pieces content cosine palette covariance --pairs 8
    python scripts/bench_alternatives.py --pieces s17 --pairs 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_image import one_scale_setup  # noqa: E402
from bench_products import median_ms  # noqa: E402
import strotss_video.losses.content as content_module  # noqa: E402
import strotss_video.losses.total as total  # noqa: E402
import strotss_video.stylize.step as step_module  # noqa: E402
from strotss_video.config import RuntimeConfig, StrotssConfig  # noqa: E402
from strotss_video.losses.content import self_similarity  # noqa: E402
from strotss_video.losses.ops import symmetric_product, unit_rows  # noqa: E402
import strotss_video.losses.style as style_module  # noqa: E402
from strotss_video.losses.style import PairCost, _nearest_sums, _palette_matrix  # noqa: E402
from strotss_video.pipeline.runtime import extractor_for  # noqa: E402
from strotss_video.stylize.optimize import stylize  # noqa: E402


def _first_side(matrix: torch.Tensor, reduce: str) -> bool:
    """Whether the relaxed EMD takes the row side, from both sides' extremes alone (before
    session 17 the caller then found the chosen side's indices in a third pass)."""
    if reduce == "min":
        return bool(matrix.amin(dim=1).mean() >= matrix.amin(dim=0).mean())
    return bool(matrix.amax(dim=1).mean() <= matrix.amax(dim=0).mean())


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


def strotss_loss_views(a: torch.Tensor, content_target: torch.Tensor, styles: list,
                       alpha: float, regions: torch.Tensor | None = None,
                       rgb: torch.Tensor | None = None, scratch: torch.Tensor | None = None,
                       keep_scratch: bool = False) -> total.LossTerms:
    """``strotss_loss`` as before session 17: one region read through ``[slice(None)]`` views,
    and fresh cost matrices unless ``keep_scratch``."""
    if not keep_scratch:
        scratch = None
    rgb = a[:, :3] if rgb is None else rgb
    a_unit = unit_rows(a)
    l_c = total.content_loss(a_unit, content_target)
    if regions is None:
        groups = [(styles[0], slice(None))]
    else:
        groups = [(s, (regions == r).nonzero().squeeze(1)) for r, s in enumerate(styles)]
        groups = [(s, idx) for s, idx in groups if idx.numel() > 0]
    l_r = l_m = l_p = a.new_zeros(())
    for style, idx in groups:
        l_r = l_r + total.remd_cosine(a_unit[idx], style.unit, style.unit_t, out=scratch)
        l_m = l_m + total.moment_loss(a[idx], style.mean, style.cov)
        l_p = l_p + total.remd_palette(rgb[idx], style.rgb, out=scratch)
    n = float(len(groups))
    l_r, l_m, l_p = l_r / n, l_m / n, l_p / n
    return total.LossTerms(total=total.combine(alpha, l_c, l_r, l_m, l_p), content=l_c,
                           remd=l_r, moment=l_m, palette=l_p)


class _MomentMirrored(style_module._MomentL1):
    """The moment loss as before session 17: the whole mirrored covariance, divided by n,
    the target subtracted, then its norm and sign in separate passes (the same backward)."""

    @staticmethod
    def forward(ctx, a, mu_b, cov_b):  # type: ignore[no-untyped-def, override]
        n = float(a.shape[0])
        mu_a = a.mean(0)
        xc = a - mu_a
        diff = symmetric_product(xc, rows=False).div_(n).sub_(cov_b)
        mu_diff = mu_a - mu_b
        loss = mu_diff.abs().mean() + torch.linalg.vector_norm(diff, 1) / diff.numel()
        ctx.save_for_backward(xc, diff.sign_(), mu_diff.sign_())
        return loss


def moment_mirrored(a: torch.Tensor, mu_b: torch.Tensor, cov_b: torch.Tensor) -> torch.Tensor:
    return _MomentMirrored.apply(a, mu_b, cov_b)


def remd_cosine_three_passes(a_unit: torch.Tensor, b_unit: torch.Tensor,
                             b_unit_t: torch.Tensor | None = None,
                             branchless: bool | None = None,
                             out: torch.Tensor | None = None) -> torch.Tensor:
    """The relaxed EMD (CPU path) as before session 17: both sides' maxima, then the chosen
    side's arg-max in a third pass."""
    with torch.no_grad():
        b_t = b_unit_t if b_unit_t is not None else b_unit.t()
        sim = torch.mm(a_unit, b_t, out=out) if out is not None else torch.mm(a_unit, b_t)
        n, m = a_unit.shape[0], b_unit.shape[0]
        if _first_side(sim, "max"):
            partner, count = b_unit.index_select(0, sim.max(dim=1).indices), n
        else:
            partner, count = _nearest_sums(a_unit, b_unit, sim.max(dim=0).indices), m
    return 1.0 - torch.dot(a_unit.reshape(-1), partner.reshape(-1)) / count


def relaxed_emd_three_passes(a: torch.Tensor, b: torch.Tensor, cost_matrix: PairCost,
                             cost_pairs: PairCost, branchless: bool | None = None
                             ) -> torch.Tensor:
    """``relaxed_emd`` (CPU path; the palette term) as before session 17."""
    with torch.no_grad():
        cost = cost_matrix(a, b)
        rows_side = _first_side(cost, "min")
        arg = cost.min(dim=1 if rows_side else 0).indices
    if rows_side:
        return cost_pairs(a, b[arg]).mean()
    return cost_pairs(a[arg], b).mean()


def symmetric_product_mirrored(x: torch.Tensor, rows: bool, exact: bool = True) -> torch.Tensor:
    """Every self-similarity with its diagonal blocks mirrored, as before session 17."""
    return symmetric_product(x, rows, True)


def strotss_loss_fresh(*args: object, scratch: torch.Tensor | None = None,
                       **kwargs: object) -> total.LossTerms:
    """``strotss_loss`` with fresh cost matrices (no scratch), as before session 17."""
    return total.strotss_loss(*args, **kwargs)  # type: ignore[arg-type]


S17_PARTS: dict[str, list[tuple[object, str, Callable]]] = {
    "views": [(step_module, "strotss_loss", partial(strotss_loss_views, keep_scratch=True))],
    "scratch": [(step_module, "strotss_loss", strotss_loss_fresh)],
    "moment": [(total, "moment_loss", moment_mirrored)],
    "argmax": [(total, "remd_cosine", remd_cosine_three_passes),
               (style_module, "relaxed_emd", relaxed_emd_three_passes)],
    "mirror": [(content_module, "symmetric_product", symmetric_product_mirrored)],
}
"""Each session-17 change as the patches that restore what it replaced (but the tapped
columns' single leaf, which lives inside the step)."""
S17_ALL = [(step_module, "strotss_loss", strotss_loss_views),
           *(p for name, ps in S17_PARTS.items() if name not in ("views", "scratch") for p in ps)]


def patched_steps(patches: list[tuple[object, str, Callable]], pairs: int, iters: int) -> dict:
    """Seconds per step of real one-scale steps (256x144, the default precision) as the code
    is and with ``patches`` (module, attribute, replacement) applied, alternating."""
    device = torch.device("cpu")
    extractor, _ = extractor_for(RuntimeConfig(), device, None, False)
    cfg = StrotssConfig(max_size=256, scales=1, iters=iters)
    image, bank, plan = one_scale_setup(extractor, (144, 256), cfg, iters, device)
    kept = [(mod, attr, getattr(mod, attr)) for mod, attr, _ in patches]
    stylize(image, bank, extractor, cfg, plan=plan, progress=False)
    out: dict[str, list[float]] = {"kept": [], "alternative": []}
    try:
        for r in range(pairs):
            for key in ("kept", "alternative"):
                for (mod, attr, old), (_, _, new) in zip(kept, patches):
                    setattr(mod, attr, old if key == "kept" else new)
                rep = stylize(image, bank, extractor, cfg, plan=plan, seed=r,
                              progress=False).scales[0]
                out[key].append(round(rep.loop_seconds / rep.iterations, 4))
    finally:
        for mod, attr, old in kept:
            setattr(mod, attr, old)
    diffs = [(b - a) * 1000 for a, b in zip(out["kept"], out["alternative"])]
    return {"seconds_per_step": out, "median_kept": statistics.median(out["kept"]),
            "median_alternative": statistics.median(out["alternative"]),
            "paired_alternative_minus_kept_ms_median": round(statistics.median(diffs), 2),
            "paired_alternative_minus_kept_ms": [round(d, 1) for d in diffs]}


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
    """:func:`patched_steps` with ``total.<name>`` replaced by ``alternative``."""
    return patched_steps([(total, name, alternative)], pairs, iters)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pieces", nargs="+", default=["content", "cosine", "palette", "covariance"],
                    choices=["content", "cosine", "palette", "covariance", "s17"])
    ap.add_argument("--s17-parts", nargs="+", default=["all"],
                    choices=["all", *S17_PARTS], help="with --pieces s17: which changes")
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
    if "s17" in args.pieces:
        for part in args.s17_parts:
            patches = S17_ALL if part == "all" else S17_PARTS[part]
            result[f"s17_{part}_vs_before"] = patched_steps(patches, args.pairs, args.iters)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
