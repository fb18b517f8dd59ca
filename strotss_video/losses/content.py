"""Self-similarity content loss."""

from __future__ import annotations

import torch

from .ops import outer_cosine_similarity


def self_similarity(x_unit: torch.Tensor) -> torch.Tensor:
    """Cosine-distance matrix of unit rows, each column divided by its sum. (N,D) -> (N,N)."""
    return normalise_columns(1.0 - outer_cosine_similarity(x_unit))


def normalise_columns(dist: torch.Tensor) -> torch.Tensor:
    """Each column of a distance matrix divided by its sum. (N,N) -> (N,N)."""
    return dist / dist.sum(0, keepdim=True).clamp_min(1e-12)


def content_loss(x_unit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean|D_X - D_C| * N`` with ``target = self_similarity(content_unit)`` (N,N)."""
    return (self_similarity(x_unit) - target).abs().mean() * x_unit.shape[0]
