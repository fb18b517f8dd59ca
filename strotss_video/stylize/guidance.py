"""Region guidance: colour-coded content and style masks.

Each colour covering more than ``min_style_pixels`` pixels of the style mask is a region; style
points are drawn inside the region in the style, output points inside the same colour in the
content, and the style losses are computed per region and averaged."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError

# Masks saved as JPEG are not exactly flat; a pixel belongs to the nearest region colour
# when it is this close (in [0,1] RGB, Euclidean).
COLOR_TOLERANCE = 0.2


@dataclass(frozen=True)
class Guidance:
    """content_labels (H,W) long and style_labels (Hs,Ws) long; -1 means no region."""

    content_labels: torch.Tensor
    style_labels: torch.Tensor
    colors: tuple[tuple[int, int, int], ...]

    @property
    def regions(self) -> int:
        return len(self.colors)


def _labels(mask: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    pixels = mask[0].permute(1, 2, 0).reshape(-1, 3)
    dist = torch.cdist(pixels, palette)
    best, label = dist.min(dim=1)
    label[best > COLOR_TOLERANCE] = -1
    return label.view(mask.shape[-2], mask.shape[-1])


def build_guidance(content_mask: torch.Tensor, style_mask: torch.Tensor,
                   min_style_pixels: int) -> Guidance:
    """content_mask (1,3,H,W), style_mask (1,3,Hs,Ws) in [0,1] -> label maps."""
    quant = (style_mask[0] * 255).round().to(torch.int64)
    codes = (quant[0] << 16) | (quant[1] << 8) | quant[2]
    values, counts = codes.reshape(-1).unique(return_counts=True)
    keep = values[counts > min_style_pixels]
    if keep.numel() == 0:
        raise InputError(f"the style mask has no colour covering more than {min_style_pixels} "
                         "pixels; use larger flat-colour regions")
    colors = tuple((int(c) >> 16 & 255, int(c) >> 8 & 255, int(c) & 255) for c in keep)
    palette = torch.tensor(colors, dtype=torch.float32) / 255.0
    style_labels = _labels(style_mask.float().cpu(), palette)
    content_labels = _labels(content_mask.float().cpu(), palette)
    if not bool((content_labels >= 0).any()):
        raise InputError("the content mask uses none of the style mask's region colours; "
                         "paint both masks with the same colours")
    return Guidance(content_labels=content_labels, style_labels=style_labels, colors=colors)
