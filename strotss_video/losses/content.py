"""Self-similarity content loss."""

from __future__ import annotations

from typing import Any

import torch

from .ops import outer_cosine_similarity, plus_transpose, symmetric_product

_SUM_EPS = 1e-12
"""Smallest column sum a distance matrix is divided by."""


def self_similarity(x_unit: torch.Tensor) -> torch.Tensor:
    """Cosine-distance matrix of unit rows, each column divided by its sum. (N,D) -> (N,N)."""
    if torch.is_grad_enabled() and x_unit.requires_grad:
        return normalise_columns(1.0 - outer_cosine_similarity(x_unit))
    # As outer_cosine_similarity's: the targets equal the graph's values bit for bit.
    return target_from_similarity_(symmetric_product(x_unit, rows=True, exact=False))


def target_from_similarity_(sim: torch.Tensor) -> torch.Tensor:
    """A content target (no graph) from a fresh cosine-similarity matrix, in its own buffer:
    the values of :func:`self_similarity`, bit for bit. (N,N) -> (N,N)."""
    dist = sim.neg_().add_(1.0)
    return dist.div_(dist.sum(0, keepdim=True).clamp_min_(_SUM_EPS))


def normalise_columns(dist: torch.Tensor) -> torch.Tensor:
    """Each column of a distance matrix divided by its sum. (N,N) -> (N,N)."""
    return dist / dist.sum(0, keepdim=True).clamp_min(_SUM_EPS)


class _ContentL1(torch.autograd.Function):
    """``sum|D_X / s - T| / N`` with ``D_X = 1 - X X^T`` and s its column sums, fused.

    Autograd through :func:`self_similarity` keeps a dozen (N,N) temporaries and passes (the
    division's two-sided backward alone is four); here the forward works in the product's
    buffer and the backward is one (N,N) expression and one product. With
    ``sg = sign(T - D_X/s)`` and ``c_j = sum_k sign(D_X/s - T)_kj D_kj / s_j`` (the column sum's
    share), ``dL/dS_ij = (sg_ij + c_j) / (s_j N)`` and ``dL/dX = (G + G^T) X``."""

    @staticmethod
    def forward(ctx: Any, x_unit: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
        n = x_unit.shape[0]
        # Column sums and signs of the whole matrix, and both of its transposes in the
        # backward: nothing relies on exact symmetry.
        neg_dist = symmetric_product(x_unit, rows=True, exact=False).sub_(1.0)
        sums = neg_dist.sum(0).neg_()
        live = sums > _SUM_EPS
        sums.clamp_min_(_SUM_EPS)
        sg = torch.addcdiv(target, neg_dist, sums)  # T - D/s
        loss = torch.linalg.vector_norm(sg, 1) / n
        sg.sign_()
        # A clamped column sum is a constant: no share of the gradient through it.
        share = torch.linalg.vecdot(sg, neg_dist, dim=0).div_(sums).mul_(live)
        ctx.save_for_backward(x_unit, sg, share, sums)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        x_unit, sg, share, sums = ctx.saved_tensors
        # Out of place: a second backward (retain_graph) finds sg intact. The scale rides on
        # the (N,) divisor, not on an (N,N) or (N,D) pass.
        g = torch.add(sg, share).div_(sums * (x_unit.shape[0] / grad))
        return torch.mm(plus_transpose(g), x_unit), None


def content_loss(x_unit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean|D_X - D_C| * N`` with ``target = self_similarity(content_unit)`` (N,N).

    x_unit (N,D) unit rows (may require grad)."""
    return _ContentL1.apply(x_unit, target)
