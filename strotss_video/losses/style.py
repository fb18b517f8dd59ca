"""Style losses: relaxed EMD (cosine cost), moment matching, colour-palette relaxed EMD.

Each is a pure function of output hypercolumns and constant per-scale style targets.
The relaxed EMD's gradient only flows through each row's/column's arg-min entry, so the full
cost matrix is built without autograd and only the selected pairs are recomputed with it —
the same value and gradient as differentiating through ``min``, at a fraction of the cost."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from .ops import covariance_gap_sign, gram, unit_rows

PairCost = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cosine_cost_matrix(a_unit: torch.Tensor, b_unit: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of unit rows. (N,D),(M,D) -> (N,M)."""
    return torch.addmm(torch.ones((), dtype=a_unit.dtype, device=a_unit.device), a_unit, b_unit.t(),
                       alpha=-1.0)


def cosine_cost_pairs(a_unit: torch.Tensor, b_unit: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine cost of aligned unit rows. (K,D),(K,D) -> (K,)."""
    return 1.0 - (a_unit * b_unit).sum(1)


def relaxed_emd(a: torch.Tensor, b: torch.Tensor, cost_matrix: PairCost,
                cost_pairs: PairCost, branchless: bool | None = None) -> torch.Tensor:
    """``max(mean_i min_j C_ij, mean_j min_i C_ij)`` for ``C = cost_matrix(a, b)``.

    a (N,D) may require grad; b (M,D) is a constant target. ``cost_pairs`` must give the
    same values as the matrix on aligned rows, up to one constant added to the whole matrix
    (the matrix only picks the arg-mins and the branch). ``branchless`` (default: on CUDA)
    evaluates both sides and selects on the device, so the GPU never waits for the host (and
    the step can be captured in a CUDA graph); the value and gradient are the same."""
    both = branchless if branchless is not None else a.is_cuda
    with torch.no_grad():
        cost = cost_matrix(a, b)
        if both:
            row_min, row_arg = cost.min(dim=1)
            col_min, col_arg = cost.min(dim=0)
            use_rows = row_min.mean() >= col_min.mean()
        else:
            # As in remd_cosine: the column side's arg-min comes with the minima that pick
            # the side (the palette takes it nearly always).
            col_min, col_arg = cost.min(dim=0)
            rows_side = bool(cost.amin(dim=1).mean() >= col_min.mean())
            arg = cost.min(dim=1).indices if rows_side else col_arg
    if both:
        return torch.where(use_rows, cost_pairs(a, b[row_arg]).mean(),
                           cost_pairs(a[col_arg], b).mean())
    if rows_side:
        return cost_pairs(a, b[arg]).mean()
    return cost_pairs(a[arg], b).mean()


def remd_cosine(a_unit: torch.Tensor, b_unit: torch.Tensor,
                b_unit_t: torch.Tensor | None = None, branchless: bool | None = None,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """Relaxed EMD with cosine cost on unit hypercolumns. (N,D),(M,D) -> scalar.

    Same value and gradient as :func:`relaxed_emd` with the cosine cost, but each branch is
    one elementwise product with a constant: the column branch sums, for every output point,
    the style points it is nearest to, instead of gathering M rows of ``a`` (whose backward is
    a slow serial scatter). ``b_unit_t`` (D,M), the contiguous transpose, is the cost
    product's operand (computed once per style). ``branchless`` (default: on CUDA) builds
    both partners and selects on the device: no host sync, same value and gradient. ``out``
    (N,M), optional, is scratch space for the similarity matrix (overwritten)."""
    count: torch.Tensor | float
    with torch.no_grad():
        if b_unit_t is None:
            b_unit_t = b_unit.t().contiguous()
        sim = torch.mm(a_unit, b_unit_t, out=out) if out is not None else torch.mm(a_unit, b_unit_t)
        n, m = a_unit.shape[0], b_unit.shape[0]
        # min cost = 1 - max similarity: the larger mean of minima is the smaller mean of maxima.
        # index_select, not b_unit[idx]: 0.9-1.1 against 1.3 ms for the (1024, 2179) rows
        # after the cost product (2-core CPU; docs/tuning.md).
        if branchless if branchless is not None else a_unit.is_cuda:
            row_max, row_arg = sim.max(dim=1)
            col_max, col_arg = sim.max(dim=0)
            use_rows = row_max.mean() <= col_max.mean()
            partner = torch.where(use_rows, b_unit.index_select(0, row_arg),
                                  _nearest_sums(a_unit, b_unit, col_arg))
            count = torch.where(use_rows, n, m).to(a_unit.dtype)
        else:
            # The column side (each style point's nearest output) is the one nearly always
            # taken: its arg-max comes with the maxima that pick the side, and the row side,
            # when taken, costs one more pass. (1024 x 5000 on a 2-core CPU: a column max with
            # indices 2.7 ms, a row max 1.5 ms, maxima alone 0.5-0.6 ms.)
            col_max, col_arg = sim.max(dim=0)
            if sim.amax(dim=1).mean() <= col_max.mean():
                partner, count = b_unit.index_select(0, sim.max(dim=1).indices), float(n)
            else:
                partner, count = _nearest_sums(a_unit, b_unit, col_arg), float(m)
    # A dot product: no (N,D) temporary in the forward.
    return 1.0 - torch.dot(a_unit.reshape(-1), partner.reshape(-1)) / count


def _nearest_sums(a_unit: torch.Tensor, b_unit: torch.Tensor, col_arg: torch.Tensor) -> torch.Tensor:
    """For each output point, the sum of the style points nearest to it: (N,D) from
    b_unit (M,D) and col_arg (M,), the output point nearest each style point. Row-wise in
    a's layout (a sum across layouts with ``a_unit`` would cost several times more)."""
    return torch.zeros_like(a_unit).index_add_(0, col_arg, b_unit)


def _palette_matrix(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """The palette cost minus 1 (the constant changes no arg-min and no branch). (N,3),(M,3);
    ``out`` (N,M), optional, receives it."""
    # Built without autograd, so in place: the squared distance over 3 as one 5-d product
    # (|a|^2 + |b|^2 - 2ab, b's side scaled), clamp and root in place, then the cosine
    # similarity subtracted by the second product itself (no (N,M) temporary).
    a_aug = torch.cat([a, torch.ones_like(a[:, :1]), a.square().sum(1, keepdim=True)], dim=1)
    b_aug = torch.cat([-2.0 * b, b.square().sum(1, keepdim=True), torch.ones_like(b[:, :1])],
                      dim=1).div_(3.0)
    dist = torch.mm(a_aug, b_aug.t(), out=out) if out is not None else torch.mm(a_aug, b_aug.t())
    dist.clamp_(1e-5 / 3.0, 1e5 / 3.0).sqrt_()
    return dist.addmm_(unit_rows(a), unit_rows(b).t(), alpha=-1.0)


def _palette_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    cos = cosine_cost_pairs(unit_rows(a), unit_rows(b))
    sq = (a - b).square().sum(1)
    return cos + (sq.clamp(1e-5, 1e5) / 3.0).sqrt()


def remd_palette(a_rgb: torch.Tensor, b_rgb: torch.Tensor,
                 branchless: bool | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Relaxed EMD on RGB with cost ``cos + sqrt(clamp(|a-b|^2, 1e-5, 1e5)/3)``. (N,3),(M,3);
    ``out`` (N,M), optional, is scratch space for the cost matrix (overwritten)."""
    matrix = _palette_matrix if out is None else partial(_palette_matrix, out=out)
    return relaxed_emd(a_rgb, b_rgb, matrix, _palette_pairs, branchless)


def moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and biased covariance (D,D) of rows x (N,D)."""
    mu = x.mean(0)
    return mu, gram(x - mu, float(x.shape[0]))


class _MomentL1(torch.autograd.Function):
    """``mean|mu_a - mu_b| + mean|cov(a) - cov_b|`` for rows a (N,D), fused.

    The forward is :func:`~.ops.covariance_gap_sign` (the difference's sign and L1 norm from
    the upper blocks of the product, in its buffer); the backward is one
    product, ``xc (S + S^T) / (n D^2)`` with S = sign(cov difference), plus the mean term's
    row vector. Both covariances are symmetric, so ``S + S^T = 2 S`` (an entry could differ
    only where the difference is zero to rounding, where |.| has no derivative anyway): this
    skips a transposed (D,D) sum that cost about a third as much as the product. The centring
    needs no backward of its own: the rows of xc sum to zero, so the product's rows sum to
    zero too."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, mu_b: torch.Tensor,
                cov_b: torch.Tensor) -> torch.Tensor:
        n = float(a.shape[0])
        mu_a = a.mean(0)
        xc = a - mu_a
        sign, gap = covariance_gap_sign(xc, cov_b, n)
        mu_diff = mu_a - mu_b
        loss = mu_diff.abs().mean() + gap / sign.numel()
        ctx.save_for_backward(xc, sign, mu_diff.sign_())
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        xc, sign, mu_sign = ctx.saved_tensors
        n, d = xc.shape
        grad_a = torch.mm(xc, sign).mul_(grad * (2.0 / (n * d * d)))
        grad_a.add_(mu_sign * (grad / (n * d)))
        return grad_a, None, None


def moment_loss(a: torch.Tensor, mu_b: torch.Tensor, cov_b: torch.Tensor) -> torch.Tensor:
    """``mean|mu_a - mu_b| + mean|Sigma_a - Sigma_b|`` over all dims. a (N,D) -> scalar."""
    return _MomentL1.apply(a, mu_b, cov_b)
