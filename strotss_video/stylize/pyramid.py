"""Laplacian-pyramid parameterisation of the optimised image."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _size(x: torch.Tensor) -> tuple[int, int]:
    return x.shape[-2], x.shape[-1]


def _down(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(max(h // 2, 1), max(w // 2, 1)), mode="bilinear",
                         align_corners=False)


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def laplacian_band(image: torch.Tensor) -> torch.Tensor:
    """Finest band-pass level: image - up(down(image)). (B,C,H,W) -> same shape."""
    return image - _up(_down(image), _size(image))


def decompose(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """(B,C,H,W) -> ``levels`` band-pass tensors (fine to coarse) + the low-pass residual."""
    bands = []
    current = image
    for _ in range(levels):
        small = _down(current)
        bands.append(current - _up(small, _size(current)))
        current = small
    bands.append(current)
    return bands


def level_maps(values: torch.Tensor, bands: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-pixel ``values`` (B,C,H,W) at the finest band's size -> one map per pyramid level,
    at that level's size (the same bilinear halvings as :func:`decompose`)."""
    maps = []
    current = values
    for band in bands:
        if current.shape[-2:] != band.shape[-2:]:
            current = _down(current)
        maps.append(current)
    return maps


def recompose(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`decompose` (exact up to float rounding)."""
    current = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        current = band + _up(current, _size(band))
    return current
