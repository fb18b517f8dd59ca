"""Differentiable backward warping and flow resizing (pure torch, any device).

Bilinear sampling is done by hand with four gathers rather than ``grid_sample``: the weights
are then exactly 0/1 at integer positions, so a zero flow is the identity and an integer flow
an exact pixel shift (grid_sample's pixel->[-1,1]->pixel round trip is off by ~1e-7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["in_frame", "resize_flow", "warp", "warp_with_validity"]


def _check(image: torch.Tensor, flow: torch.Tensor) -> None:
    if image.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"warp needs image (B,C,H,W) and flow (B,2,H,W), got "
                         f"{tuple(image.shape)} and {tuple(flow.shape)}")
    if flow.shape[-2:] != image.shape[-2:] or flow.shape[0] not in (1, image.shape[0]):
        raise ValueError(f"flow {tuple(flow.shape)} does not match image {tuple(image.shape)}")


def _sample_points(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,2,H,W) -> sample positions x + u, y + v, each (B,H,W); non-finite -> far outside."""
    _, _, h, w = flow.shape
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    px = xs + flow[:, 0]
    py = ys + flow[:, 1]
    # A NaN/inf vector (a failed flow) must read as out of frame, not crash the index maths.
    finite = torch.isfinite(px) & torch.isfinite(py)
    px = torch.where(finite, px, torch.full_like(px, -2.0))
    py = torch.where(finite, py, torch.full_like(py, -2.0))
    return px, py


def in_frame(flow: torch.Tensor) -> torch.Tensor:
    """(B,2,H,W) -> (B,1,H,W) float, 1 where x + flow(x) lies inside [0,W-1]x[0,H-1]
    (there ``warp`` is a true bilinear sample; outside it blends in zeros)."""
    _, _, h, w = flow.shape
    px, py = _sample_points(flow)
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    return inside.unsqueeze(1).to(flow.dtype)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: out(x) = image(x + flow(x)), bilinear, zeros outside the frame.

    image (B,C,H,W), flow (B,2,H,W) or (1,2,H,W) in pixels -> (B,C,H,W). Differentiable w.r.t.
    image and flow. Use ``in_frame(flow)`` (or ``warp_with_validity``) to know where it is valid."""
    _check(image, flow)
    b, c, h, w = image.shape
    flow = flow.to(image.dtype)
    px, py = _sample_points(flow)
    x0 = torch.floor(px)
    y0 = torch.floor(py)
    wx = px - x0
    wy = py - y0
    flat = image.reshape(b, c, h * w)
    out = torch.zeros_like(image)
    for dy, dx, weight in ((0, 0, (1 - wx) * (1 - wy)), (0, 1, wx * (1 - wy)),
                           (1, 0, (1 - wx) * wy), (1, 1, wx * wy)):
        xi = x0 + dx
        yi = y0 + dy
        inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
        index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().reshape(-1, 1, h * w)
        values = torch.gather(flat, 2, index.expand(b, c, h * w)).view(b, c, h, w)
        # Multiply (not index) by the mask so out-of-frame corners contribute exact zeros.
        out = out + values * (weight * inside).unsqueeze(1)
    return out


def warp_with_validity(image: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,C,H,W), (B,2,H,W) -> (warped (B,C,H,W), in-frame mask (B,1,H,W) float)."""
    return warp(image, flow), in_frame(flow)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B,2,H,W) -> (B,2,H',W'): resample the field bilinearly and scale u by W'/W, v by H'/H
    so the vectors stay in pixels of the new grid (pixel centres map as in image resizing)."""
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    shrink = size[0] < h or size[1] < w
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    scale = torch.tensor([size[1] / w, size[0] / h], device=flow.device, dtype=flow.dtype)
    return out * scale.view(1, 2, 1, 1)
