"""Point sampling and hypercolumn reads.

Points are ``(N,2)`` tensors of (x, y) pixel coordinates on the full-resolution grid of the image
being read; x and y always travel together as one row (the reference code shuffled them
independently, which breaks region masks)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


def grid_stride(height: int, width: int, grid_side: int) -> int:
    """Stride of the candidate grid: about sqrt(H*W / grid_side**2), at least 1."""
    return max(int(math.floor(math.sqrt((height * width) // (grid_side * grid_side)))), 1)


def candidate_grid(height: int, width: int, grid_side: int, generator: torch.Generator,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """Strided grid of candidate points with a random offset -> ``(K,2)`` long (x, y).

    ``mask`` (H,W) bool keeps only candidates inside a region."""
    stride = grid_stride(height, width, grid_side)
    ox, oy = (int(v) for v in torch.randint(stride, (2,), generator=generator))
    ys, xs = torch.meshgrid(torch.arange(oy, height, stride), torch.arange(ox, width, stride),
                            indexing="ij")
    points = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    if mask is not None:
        points = points[mask[points[:, 1], points[:, 0]]]
    return points


def random_pixels(height: int, width: int, count: int, generator: torch.Generator,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """``count`` uniformly random pixels (with replacement) -> ``(count,2)`` long (x, y)."""
    if mask is None:
        flat = torch.randint(height * width, (count,), generator=generator)
    else:
        allowed = mask.reshape(-1).nonzero().squeeze(1)
        if allowed.numel() == 0:
            raise ValueError("random_pixels: empty mask")
        flat = allowed[torch.randint(allowed.numel(), (count,), generator=generator)]
    return torch.stack([flat % width, flat // width], dim=1)


def subset(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random subset of ``min(size, count)`` distinct indices into ``range(count)``."""
    return torch.randperm(count, generator=generator)[: min(size, count)]


def read_bilinear(maps: Sequence[torch.Tensor], strides: Sequence[int],
                  points: torch.Tensor) -> torch.Tensor:
    """Bilinear reads of every map at ``points`` -> ``(N, sum C_k)``."""
    return torch.cat(read_bilinear_columns(maps, strides, points), dim=1)


def read_bilinear_columns(maps: Sequence[torch.Tensor], strides: Sequence[int],
                          points: torch.Tensor) -> list[torch.Tensor]:
    """Bilinear reads of each map at ``points`` -> ``[(N, C_k)]``.

    A map of stride s is read at (x/s, y/s) with no half-pixel correction, clamped at the
    border. maps: ``[(1,C_k,H_k,W_k)]``; points ``(N,2)`` (x, y) on the stride-1 grid.
    ``grid_sample`` with ``align_corners=True`` maps normalised -1..1 exactly onto pixel
    centres 0..W-1, and its native backward is far faster than a gather's scatter."""
    pts = points.to(device=maps[0].device, dtype=maps[0].dtype)
    grids: dict[tuple[int, int, int], torch.Tensor] = {}
    columns = []
    for fmap, stride in zip(maps, strides):
        _, c, h, w = fmap.shape
        key = (stride, h, w)
        if key not in grids:
            gx = pts[:, 0] * (2.0 / (stride * (w - 1))) - 1.0 if w > 1 else torch.zeros_like(pts[:, 0])
            gy = pts[:, 1] * (2.0 / (stride * (h - 1))) - 1.0 if h > 1 else torch.zeros_like(pts[:, 1])
            grids[key] = torch.stack([gx, gy], dim=1).view(1, 1, -1, 2)
        sampled = F.grid_sample(fmap, grids[key], mode="bilinear", padding_mode="border",
                                align_corners=True)
        columns.append(sampled.view(c, -1).t())  # (N,C)
    return columns


def read_nearest(maps: Sequence[torch.Tensor], strides: Sequence[int],
                 points: torch.Tensor) -> torch.Tensor:
    """Nearest (floor) reads of every map at ``points`` -> ``(N, sum C_k)``."""
    pts = points.to(maps[0].device)
    columns = []
    for fmap, stride in zip(maps, strides):
        _, c, h, w = fmap.shape
        x = (pts[:, 0] // stride).clamp(0, w - 1)
        y = (pts[:, 1] // stride).clamp(0, h - 1)
        columns.append(fmap.reshape(c, h * w)[:, y * w + x].t())
    return torch.cat(columns, dim=1)
