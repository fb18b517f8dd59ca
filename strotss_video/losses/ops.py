"""Matrix products shared by the losses, with the cheapest exact backward."""

from __future__ import annotations

import torch


def _plus_transpose(g: torch.Tensor) -> torch.Tensor:
    """``g + g^T`` for a square g. A sum that reads one operand across its layout is ~3x slower
    on CPU than a (blocked) transposing copy followed by a plain sum."""
    return g.t().contiguous().add_(g)


class _SymmetricGram(torch.autograd.Function):
    """``X^T X / n`` whose backward is one product, ``X (G + G^T) / n``.

    Autograd's generic matmul backward would run two (D x D x N) products; the Gram matrix
    is symmetric in X, so one suffices."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, n: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.n = n
        return torch.mm(x.t(), x).div_(n)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return torch.mm(x, _plus_transpose(grad)).div_(ctx.n), None


def gram(x: torch.Tensor, n: float = 1.0) -> torch.Tensor:
    """x (N,D) -> x^T x / n  (D,D)."""
    return _SymmetricGram.apply(x, n)


class _UnitRows(torch.autograd.Function):
    """Row normalisation with a three-pass backward: ``dx = (dy - y (dy.y)) / |x|``."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, eps: float) -> torch.Tensor:
        norm = x.norm(dim=1, keepdim=True).clamp_min_(eps)
        y = x / norm
        ctx.save_for_backward(y, norm)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, dy: torch.Tensor):  # type: ignore[override]
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
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.mm(x, x.t())

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return torch.mm(_plus_transpose(grad), x)


def outer_cosine_similarity(a_unit: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of rows of a unit-row matrix. (N,D) -> (N,N)."""
    return _OuterGram.apply(a_unit)
