"""Matrix products shared by the losses, with the cheapest exact backward."""

from __future__ import annotations

from typing import Any

import torch


def plus_transpose(g: torch.Tensor) -> torch.Tensor:
    """``g + g^T`` for a square g. A sum that reads one operand across its layout is ~3x slower
    on CPU than a (blocked) transposing copy followed by a plain sum."""
    return g.t().contiguous().add_(g)


SYMMETRIC_BLOCK = 256
"""Side length per block (at most 4 blocks a side) of :func:`symmetric_product` on CPU."""


def _blocks(size: int) -> list[tuple[int, int]]:
    b = min(4, max(1, size // SYMMETRIC_BLOCK))
    edges = [round(size * k / b) for k in range(b + 1)]
    return list(zip(edges[:-1], edges[1:]))


def symmetric_product(x: torch.Tensor, rows: bool, exact: bool = True) -> torch.Tensor:
    """``x x^T`` (N,N) if ``rows`` else ``x^T x`` (D,D), for x (N,D); exactly symmetric on CPU
    when ``exact``.

    On CPU the blocks on and above the diagonal are multiplied straight into the result and
    mirrored below it: with 4x4 blocks, 10/16 of the product's multiply-adds; 0.77x the time of
    one product for 1024 x 2179 on a 2-core CPU (docs/tuning.md). Some GEMM kernels
    (AVX2-only) sum (i,j) and (j,i) of a diagonal block in different orders; ``exact`` mirrors
    each diagonal block's upper triangle too (four passes over it), for callers that rely on
    exact symmetry. On CUDA, where a step is bound by kernel launches, one product."""
    size = x.shape[0] if rows else x.shape[1]
    blocks = _blocks(size)
    if x.is_cuda or len(blocks) == 1:
        full = torch.mm(x, x.t()) if rows else torch.mm(x.t(), x)
        return _mirror_upper(full) if exact and not x.is_cuda else full
    out = x.new_empty(size, size)

    def part(a: int, b: int) -> torch.Tensor:
        return x[a:b] if rows else x[:, a:b].t()

    for i, (a0, a1) in enumerate(blocks):
        for b0, b1 in blocks[i:]:
            torch.mm(part(a0, a1), part(b0, b1).t(), out=out[a0:a1, b0:b1])
    for i, (a0, a1) in enumerate(blocks):
        if exact:
            _mirror_upper(out[a0:a1, a0:a1])
        for b0, b1 in blocks[i + 1:]:
            out[b0:b1, a0:a1].copy_(out[a0:a1, b0:b1].t())
    return out


def covariance_gap_sign(xc: torch.Tensor, cov: torch.Tensor, n: float
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """``sign(xc^T xc / n - cov)`` (D,D) and ``sum|xc^T xc / n - cov|`` (scalar), for centred
    rows xc (N,D) and a symmetric cov (D,D).

    Each block on and above the diagonal is one GEMM that also subtracts ``n cov`` (its beta
    term, no pass of its own); the scale 1/n changes no sign and is applied to the sum alone.
    Only the upper blocks are summed (twice for those off the diagonal) and only their signs are
    mirrored below: no mirrored difference. A diagonal block's two triangles keep their own
    signs, which can differ only where the difference is zero to rounding. On CUDA, one GEMM."""
    d = xc.shape[1]
    blocks = [(0, d)] if xc.is_cuda else _blocks(d)
    out = xc.new_empty(d, d)
    sums = []
    for i, (a0, a1) in enumerate(blocks):
        for j, (b0, b1) in enumerate(blocks[i:], start=i):
            block = out[a0:a1, b0:b1]
            torch.addmm(cov[a0:a1, b0:b1], xc[:, a0:a1].t(), xc[:, b0:b1], beta=-n, out=block)
            part = torch.linalg.vector_norm(block, 1)
            sums.append(part if i == j else part * 2.0)
            block.sign_()
            if j > i:
                out[b0:b1, a0:a1].copy_(block.t())
    total = sums[0] if len(sums) == 1 else torch.stack(sums).sum()
    return out, total / n


def _mirror_upper(square: torch.Tensor) -> torch.Tensor:
    """``square`` (M,M) made exactly symmetric in place from its upper triangle. A GEMM of
    ``a a^T`` need not be: some CPU kernels (AVX2-only) sum (i,j) and (j,i) in different orders."""
    square.copy_(square.triu() + square.triu(1).t())
    return square


class _SymmetricGram(torch.autograd.Function):
    """``X^T X / n`` whose backward is one product, ``X (G + G^T) / n``.

    Autograd's generic matmul backward would run two (D x D x N) products; the Gram matrix
    is symmetric in X, so one suffices."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, n: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.n = n
        return symmetric_product(x, rows=False).div_(n)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return torch.mm(x, plus_transpose(grad)).div_(ctx.n), None


def gram(x: torch.Tensor, n: float = 1.0) -> torch.Tensor:
    """x (N,D) -> x^T x / n  (D,D)."""
    return _SymmetricGram.apply(x, n)


class _UnitRows(torch.autograd.Function):
    """Row normalisation with a three-pass backward: ``dx = (dy - y (dy.y)) / |x|``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, eps: float) -> torch.Tensor:
        norm = x.norm(dim=1, keepdim=True).clamp_min_(eps)
        y = x / norm
        ctx.save_for_backward(y, norm)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor, None]:
        y, norm = ctx.saved_tensors
        # Rows shorter than eps were divided by the constant eps: no projection for them.
        dot = (dy * y).sum(1, keepdim=True).mul_(norm > ctx.eps)
        return torch.addcmul(dy, y, dot, value=-1.0).div_(norm), None


def unit_rows(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rows scaled to unit L2 norm (rows shorter than eps are divided by eps). (N,D) -> (N,D)."""
    return _UnitRows.apply(x, eps)


class _OuterGram(torch.autograd.Function):
    """``X X^T`` whose backward is one product, ``(G + G^T) X``, in X's own (N,D) layout.

    The same product as :func:`gram` of ``X^T``, but that backward would give a (D,N) result
    seen transposed, and autograd's sum of it with the other losses' (N,D) gradients of X
    then runs across the layout: about 20x slower than a sum in one layout."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        # The backward sums G and G^T itself: it needs no exact symmetry.
        return symmetric_product(x, rows=True, exact=False)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return torch.mm(plus_transpose(grad), x)


def outer_cosine_similarity(a_unit: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of rows of a unit-row matrix. (N,D) -> (N,N)."""
    return _OuterGram.apply(a_unit)
