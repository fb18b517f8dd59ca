"""Small tensor helpers shared by every stage (no foreign libraries beyond torch).

Convention: images are float32 RGB ``(B,3,H,W)`` in [0,1]; masks are ``(H,W)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scaled_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(H, W) rescaled so that max(H, W) == long_side, keeping the aspect ratio."""
    if height >= width:
        return long_side, max(1, round(width * long_side / height))
    return max(1, round(height * long_side / width)), long_side


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B,C,H,W) to ``size`` (H', W'), antialiased when shrinking."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    shrink = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def resize_long_side(image: torch.Tensor, long_side: int) -> torch.Tensor:
    """(B,C,H,W) -> (B,C,H',W') with max(H',W') == long_side."""
    return resize(image, scaled_size(image.shape[-2], image.shape[-1], long_side))


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of an integer label map (H,W) -> size."""
    if tuple(labels.shape) == tuple(size):
        return labels
    out = F.interpolate(labels[None, None].float(), size=size, mode="nearest")
    return out[0, 0].to(labels.dtype)


def central_differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x+1) - f(x-1)) / 2 along width and height of (B,C,H,W), each (B,C,H,W); replicate
    padding, so at the border it is half a one-sided difference."""
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) * 0.5
    dy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) * 0.5
    return dx, dy


def push_pull(values: torch.Tensor, weight: torch.Tensor, full: float = 0.5) -> torch.Tensor:
    """Fill low-weight pixels from their neighbourhood (push-pull): (B,C,H,W), (B,1,H,W) in
    [0,1] -> (B,C,H,W).

    Weighted means are pulled down a 2x pyramid to a single pixel (the weighted mean of all),
    then pushed back up: at each level a pixel keeps its own weighted mean in proportion to its weight
    (``full`` and above: only its own) and takes the coarser level's value for the rest, so
    holes get the average of the nearest weighted pixels, from however far they are."""
    num, den = [values * weight], [weight]
    while max(den[-1].shape[-2:]) > 1:
        num.append(F.avg_pool2d(num[-1], 2, ceil_mode=True))
        den.append(F.avg_pool2d(den[-1], 2, ceil_mode=True))
    filled = num[-1] / den[-1].clamp_min(1e-6)
    for n, d in zip(reversed(num[:-1]), reversed(den[:-1])):
        up = F.interpolate(filled, size=n.shape[-2:], mode="bilinear", align_corners=False)
        own = (d / full).clamp(max=1.0)
        filled = own * (n / d.clamp_min(1e-6)) + (1.0 - own) * up
    return filled
