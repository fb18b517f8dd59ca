"""Point sampling and hypercolumn reads.

Points are ``(N,2)`` tensors of (x, y) pixel coordinates on the full-resolution grid of the image
being read; x and y always travel together as one row (the reference code shuffled them
independently, which breaks region masks)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

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


DEFAULT_READ = "gather"
"""The read a step uses. Gathers parallelise over points x channels; grid_sample over points
only, looping over channels, and copies a channels-last map to NCHW and back. Measured per
step with ~1000 points: on a 2-core CPU at 256x192, 22 vs 71 ms forward+backward
(docs/tuning.md); on an H100 at 512x288 replayed in a CUDA graph, 5.4 vs 8.6 ms for
the whole step (python -m benchmarks.video --reads). Eager CUDA steps ask for grid_sample, which
launches fewer kernels, and so does the content read (tens of thousands of points, no
gradient), where it is faster on CPU too."""


def read_bilinear(maps: Sequence[torch.Tensor], strides: Sequence[int],
                  points: torch.Tensor, method: str | None = None) -> torch.Tensor:
    """Bilinear reads of every map at ``points`` -> ``(N, sum C_k)`` (see
    :func:`read_bilinear_columns`)."""
    return torch.cat(read_bilinear_columns(maps, strides, points, method), dim=1)


def read_bilinear_columns(maps: Sequence[torch.Tensor], strides: Sequence[int],
                          points: torch.Tensor, method: str | None = None) -> list[torch.Tensor]:
    """Bilinear reads of each map at ``points`` -> ``[(N, C_k)]``.

    A map of stride s is read at (x/s, y/s) with no half-pixel correction, clamped at the
    border. maps: ``[(1,C_k,H_k,W_k)]``; points ``(N,2)`` (x, y) on the stride-1 grid.
    ``method``: "gather" reads the four corner rows of a channels-last map and scatters the
    gradient back with one ``index_add``; "grid_sample" uses ``align_corners=True``, which maps
    normalised -1..1 exactly onto pixel centres 0..W-1. None: :data:`DEFAULT_READ`. Same
    values and gradients either way; ``python -m benchmarks.video --reads`` compares them in
    the pipeline."""
    if method is None:
        method = DEFAULT_READ
    if method not in ("gather", "grid_sample"):
        raise ValueError(f"unknown read method {method!r}")
    columns = []
    cache: dict[tuple[int, int, int], tuple[torch.Tensor, ...]] = {}
    for fmap, stride in zip(maps, strides):
        _, c, h, w = fmap.shape
        key = (stride, h, w)
        if key not in cache:
            cache[key] = (_corners(points, stride, h, w, fmap) if method == "gather"
                          else (_grid(points, stride, h, w, fmap),))
        if method == "gather":
            columns.append(_BilinearRows.apply(fmap, *cache[key]))
        else:
            sampled = F.grid_sample(fmap, cache[key][0], mode="bilinear", padding_mode="border",
                                    align_corners=True)
            columns.append(sampled.view(c, -1).t())  # (N,C)
    return columns


def _grid(points: torch.Tensor, stride: int, h: int, w: int, fmap: torch.Tensor) -> torch.Tensor:
    """grid_sample's (1,1,N,2) normalised grid for an (h,w) map of this stride."""
    pts = points.to(device=fmap.device, dtype=fmap.dtype)
    gx = pts[:, 0] * (2.0 / (stride * (w - 1))) - 1.0 if w > 1 else torch.zeros_like(pts[:, 0])
    gy = pts[:, 1] * (2.0 / (stride * (h - 1))) - 1.0 if h > 1 else torch.zeros_like(pts[:, 1])
    return torch.stack([gx, gy], dim=1).view(1, 1, -1, 2)


def _corners(points: torch.Tensor, stride: int, h: int, w: int, fmap: torch.Tensor,
             dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices (4N,) of each point's four neighbours on an (h,w) map, corner-major, and
    their bilinear weights (4,N,1) in ``dtype`` (default the map's). Coordinates in float32
    whatever the map."""
    pts = points.to(device=fmap.device, dtype=torch.float32)
    x = (pts[:, 0] / stride).clamp(0, w - 1)
    y = (pts[:, 1] / stride).clamp(0, h - 1)
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    index = torch.cat([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1])
    weights = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
    return index, weights.unsqueeze(2).to(dtype or fmap.dtype)


class _BilinearRows(torch.autograd.Function):
    """Bilinear read of a (1,C,h,w) map as rows of its (h*w, C) channels-last view.

    For a channels-last map the view is free and each corner read is one contiguous row;
    the backward is one ``index_add`` of weighted rows into a zero map of the same layout."""

    @staticmethod
    def forward(ctx: Any, fmap: torch.Tensor, index: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        _, c, h, w = fmap.shape
        rows = fmap.permute(0, 2, 3, 1).reshape(h * w, c)  # a copy only for an NCHW map
        n = index.shape[0] // 4
        # One corner at a time: a (N,C) temporary instead of (4N,C), and fewer passes.
        out = rows.index_select(0, index[:n]).mul_(weights[0])
        for k in range(1, 4):
            out.addcmul_(rows.index_select(0, index[k * n:(k + 1) * n]), weights[k])
        ctx.save_for_backward(index, weights)
        ctx.map_shape = (h, w, c)
        ctx.channels_last = fmap.is_contiguous(memory_format=torch.channels_last)
        return out  # (N,C)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        index, weights = ctx.saved_tensors
        h, w, c = ctx.map_shape
        spread = (grad.unsqueeze(0) * weights).view(-1, c)  # (4N,C)
        out = grad.new_zeros(h * w, c).index_add_(0, index, spread)
        out = out.view(1, h, w, c).permute(0, 3, 1, 2)
        # Give a gradient in the map's own layout (autograd would otherwise copy it).
        return (out if ctx.channels_last else out.contiguous()), None, None


class TapReader:
    """Bilinear reads of feature maps at fixed points taken *inside* the extractor's forward,
    so that the gradient goes back sparsely.

    Reading detached maps (:func:`read_bilinear_columns`) hands the extractor's backward one
    dense gradient map per layer: a zero map filled by an ``index_add``, converted to the
    body's dtype, then added to the gradient coming from the deeper layers. A tap instead adds
    its few weighted rows straight into that deeper gradient. Same values; the same gradient
    up to the order of the sums (and, in bfloat16, the rounding of each row before it is
    added rather than of their sum). points ``(N,2)`` (x, y) on the stride-1 grid; the
    columns are float32 for lower-precision maps (as reading a float32 copy would give)."""

    def __init__(self, points: torch.Tensor) -> None:
        self.points = points
        self._cache: dict[tuple[int, int, int, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def read(self, fmap: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fmap as is, its columns (N,C))``: go on with the first so that the columns'
        gradient joins the deeper layers' there. fmap (1,C,h,w)."""
        _, _, h, w = fmap.shape
        dtype = torch.promote_types(fmap.dtype, torch.float32)
        key = (stride, h, w, dtype)
        if key not in self._cache:
            self._cache[key] = _corners(self.points, stride, h, w, fmap, dtype)
        return _TapRows.apply(fmap, *self._cache[key])


class _TapRows(torch.autograd.Function):
    """Identity on a (1,C,h,w) map plus its bilinear rows (N,C) in the weights' dtype (see
    :class:`TapReader`); the backward adds the rows' gradient into the map's in place."""

    @staticmethod
    def forward(ctx: Any, fmap: torch.Tensor, index: torch.Tensor,
                weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, c, h, w = fmap.shape
        rows = fmap.permute(0, 2, 3, 1).reshape(h * w, c)  # a copy only for an NCHW map
        n = index.shape[0] // 4
        # Widened before the weights: the same arithmetic as reading a float32 copy of the map.
        out = rows.index_select(0, index[:n]).to(weights.dtype).mul_(weights[0])
        for k in range(1, 4):
            out.addcmul_(rows.index_select(0, index[k * n:(k + 1) * n]), weights[k])
        ctx.save_for_backward(index, weights)
        ctx.map_meta = (h, w, c, fmap.dtype, fmap.device)
        # No gradient arrives for the map output of the deepest tap: None, not a zero map.
        ctx.set_materialize_grads(False)
        # A view with the map's exact strides (view_as would renumber the batch stride of a
        # channels-last map, and a max-pool then takes it for NCHW and copies it).
        return fmap[...], out

    @staticmethod
    def backward(ctx: Any, grad_map: torch.Tensor | None,
                 grad_rows: torch.Tensor | None) -> tuple[torch.Tensor | None, None, None]:
        if grad_rows is None:
            return grad_map, None, None
        index, weights = ctx.saved_tensors
        h, w, c, dtype, device = ctx.map_meta
        # Rounded to the map's dtype before the weights are applied (at whole pixels they are
        # multiples of 1/stride^2 with at most 8 significant bits up to stride 16: exact in
        # bfloat16): one (4N,C) pass in that dtype instead of a float32 one and a copy.
        spread = (grad_rows.to(dtype).unsqueeze(0) * weights.to(dtype)).view(-1, c)  # (4N,C)
        if grad_map is None:
            grad_map = torch.zeros(1, h, w, c, dtype=dtype, device=device).permute(0, 3, 1, 2)
        # In place: the deeper gradient is this node's own input buffer, used nowhere else. A
        # max-pool's backward gives it NCHW on CPU; the convolution below wants channels-last
        # anyway, so it is converted here once.
        if not grad_map.is_contiguous(memory_format=torch.channels_last):
            grad_map = grad_map.contiguous(memory_format=torch.channels_last)
        grad_map.permute(0, 2, 3, 1).view(h * w, c).index_add_(0, index, spread)
        return grad_map, None, None


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
