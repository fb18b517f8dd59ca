"""Warm starts from the previous stylised frame, and the masked temporal term.

Shapes: images (1,3,H,W) float in [0,1]; flows (1,2,H,W) in pixels; masks (1,1,H,W) in [0,1]."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..flow.consistency import consistency_checks, occlusion_mask, reliability
from ..flow.warp import in_frame, warp
from ..tensorops import central_differences


def temporal_loss(image: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ruder's short-term loss ``(1/D) sum_k c_k (x_k - w_k)^2`` with D = H*W*C."""
    return (mask * (image - warped).square()).sum() / image[0].numel()


def long_term_weights(masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """Ruder's long-term weights, nearest frame first: each pixel is constrained by the
    closest past frame where it is reliable, ``c_j' = max(c_j - sum_{k<j} c_k, 0)``."""
    out = []
    covered = torch.zeros_like(masks[0])
    for mask in masks:
        out.append((mask - covered).clamp_min(0.0))
        covered = covered + mask
    return out


@dataclass(frozen=True)
class TemporalTerm:
    """A weighted sum of temporal losses against warped past outputs (one or more)."""

    warped: tuple[torch.Tensor, ...]
    masks: tuple[torch.Tensor, ...]
    weight: float

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        total = image.new_zeros(())
        for w, m in zip(self.warped, self.masks):
            total = total + temporal_loss(image, w, m)
        return self.weight * total


def lowpass(image: torch.Tensor, levels: int) -> torch.Tensor:
    """The image's low-pass at ``levels`` halvings, upsampled back: (1,3,H,W) -> same."""
    h, w = image.shape[-2:]
    small = F.interpolate(image, size=(max(h >> levels, 1), max(w >> levels, 1)), mode="bilinear",
                          align_corners=False, antialias=True)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


AGREE_TOL = 0.03
"""Mean absolute RGB difference (in [0,1]) between this frame and the warped previous frame up
to which the ``checked`` fill trusts a rejected flow vector fully; none from twice this on."""


TEXTURE_MIN = 0.02
"""Local mean gradient magnitude (per pixel, RGB in [0,1]) from which a matching warp is
evidence: a flow off by 1-2 px then changes the colours by about ``AGREE_TOL``. In flatter
areas any flow matches (the aperture problem), so agreement there proves nothing."""


def texture(image: torch.Tensor) -> torch.Tensor:
    """(1,3,H,W) -> (1,1,H,W) 5x5 mean of the RGB-mean gradient magnitude (central differences)."""
    dx, dy = central_differences(image)
    grad = (dx.square() + dy.square()).sqrt().mean(1, keepdim=True)
    return F.avg_pool2d(grad, 5, stride=1, padding=2, count_include_pad=False)


def input_agreement(previous_input: torch.Tensor, backward_flow: torch.Tensor,
                    content: torch.Tensor, tol: float = AGREE_TOL) -> torch.Tensor:
    """How well the previous *input* frame, warped like the output, matches this one:
    (1,1,H,W) in [0,1], 1 where the 3x3 mean of the absolute RGB difference is at most ``tol``,
    0 from ``2 tol`` on, linear between, 0 where the flow leaves the frame."""
    diff = (warp(previous_input, backward_flow) - content).abs().mean(1, keepdim=True)
    # A 3x3 mean, so compression noise and one-pixel aliasing at edges do not decide alone.
    diff = F.avg_pool2d(diff, 3, stride=1, padding=1, count_include_pad=False)
    return (2.0 - diff / tol).clamp_(0.0, 1.0) * in_frame(backward_flow)


def checked_mask(mask: torch.Tensor, previous_input: torch.Tensor, backward_flow: torch.Tensor,
                 content: torch.Tensor, consistent: torch.Tensor | None = None) -> torch.Tensor:
    """The reliability ``mask`` (1,1,H,W) raised to 1 where a rejected vector still carries the
    right colours: the previous input, warped by it, matches this frame
    (:func:`input_agreement`) in a textured area (:data:`TEXTURE_MIN`), or anywhere it passed
    the forward-backward test (``consistent`` (1,1,H,W), e.g. failed only as a motion
    boundary). A vector that drags other colours (a disocclusion, a static object under a pan)
    stays rejected. In a flat area any vector carries the right colours, so there the match
    counts only for vectors the forward-backward test accepted."""
    evidence = (texture(content) / TEXTURE_MIN).clamp_(max=1.0)
    if consistent is not None:
        evidence = torch.maximum(evidence, consistent)
    return torch.maximum(mask, input_agreement(previous_input, backward_flow, content) * evidence)


def warm_masks(previous_input: torch.Tensor, content: torch.Tensor, backward: torch.Tensor,
               forward: torch.Tensor, smooth: str | None, checked: bool
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The masks (1,1,H,W) of a warm frame: (mask, flow mask). The flow mask is the backward
    flow's reliability (forward-backward, motion boundaries; smoothed by ``smooth``); with
    ``checked`` the mask is that raised by :func:`checked_mask` (from the occlusion-only test
    and the previous input), else the flow mask itself."""
    checks = consistency_checks(backward, forward)
    flow_mask = reliability(backward, forward, smooth=smooth, checks=checks)
    if not checked:
        return flow_mask, flow_mask
    consistent = occlusion_mask(backward, forward, motion_boundaries=False, checks=checks)
    return checked_mask(flow_mask, previous_input, backward, content, consistent), flow_mask


def warm_start(previous_output: torch.Tensor, backward_flow: torch.Tensor, mask: torch.Tensor,
               content: torch.Tensor, fill: str, style_mean: torch.Tensor,
               levels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial image of a warm frame and the warped previous output.

    The previous output is warped into the current frame by the backward flow (current ->
    previous). ``warped`` keeps that everywhere the flow lands inside the previous frame and
    uses the content's low-pass where it leaves it. The other fills blend every pixel the mask
    calls unreliable (disoccluded, out of frame, motion boundary) towards: the content's
    low-pass (``blur``), that plus the previous output's high-pass at the same place
    (``texture``), the content itself (``content``) or the style's mean colour (``mean``).
    (The pipeline's ``checked`` fill is ``blur`` with a mask raised by :func:`checked_mask`.)
    Returns (init, warped)."""
    warped = warp(previous_output, backward_flow)
    if fill == "blur":
        filler = lowpass(content, levels)
    elif fill == "texture":
        # Content colours, with the brush texture found at the same place in the previous
        # output, so newly visible areas start stylised instead of flat.
        filler = lowpass(content, levels) + previous_output - lowpass(previous_output, levels)
    elif fill == "content":
        filler = content
    elif fill == "warped":
        # Ruder et al.'s init: the warped previous output wherever the flow lands in the
        # previous frame, rejected pixels included (usually closer to their stylised
        # surroundings than a blur, but wrong flow in flat areas smears: docs/tuning.md);
        # only the temporal term is masked. Areas entering the frame get the low-pass.
        inside = in_frame(backward_flow)
        return inside * warped + (1.0 - inside) * lowpass(content, levels), warped
    elif fill == "mean":
        filler = style_mean.expand_as(content)
    else:
        raise ValueError(f"unknown warm-start fill {fill!r}")
    init = mask * warped + (1.0 - mask) * filler
    return init, warped
