"""Warm starts from the previous stylised frame, and the masked temporal term.

Shapes: images (1,3,H,W) float in [0,1]; flows (1,2,H,W) in pixels; masks (1,1,H,W) in [0,1]."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..flow.consistency import consistency_checks, occlusion_mask, reliability
from ..flow.warp import in_frame, warp
from ..tensorops import central_differences, push_pull


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


FLAT_REACH = 15
"""Side (px) of the square around a pixel that must hold no texture (:data:`TEXTURE_MIN`) for
:func:`neighbour_flow` to move it on a prior alone: a stroke at an edge within half of it could
otherwise be dragged across a flat area (a moving sun's dark halo into the sky)."""


def _square_max(x: torch.Tensor, side: int) -> torch.Tensor:
    """Max over a ``side`` x ``side`` square (odd side) around each pixel, same size: (1,1,H,W).
    Separable: 2 x side comparisons per pixel instead of side^2."""
    rows = F.max_pool2d(x, (1, side), stride=1, padding=(0, side // 2))
    return F.max_pool2d(rows, (side, 1), stride=1, padding=(side // 2, 0))


def neighbour_flow(backward: torch.Tensor, mask: torch.Tensor, previous_input: torch.Tensor,
                   content: torch.Tensor, reach: int = FLAT_REACH
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rejected vectors (``mask`` < 0.5) replaced by those of their trusted neighbours.

    backward (1,2,H,W) current -> previous; mask (1,1,H,W) the trusted vectors (e.g. from
    :func:`checked_mask`). A rejected pixel takes the push-pull fill of the trusted vectors
    around it when the previous input, warped by it, matches this frame
    (:func:`input_agreement`) and the match means something: in a textured area it is
    evidence; in a flat one (a white window, a sky) any vector matches, so there the smooth
    vector is only a prior, taken only deep inside flat areas at both ends (no texture within
    ``reach`` px square here and around its source), where a wrong vector moves nothing that
    can be seen. A pixel so moved is trusted as far as its input agrees. Such areas are
    rejected frame after frame (DIS has nothing to match there), and repainting them from the
    content each frame flickers (docs/tuning.md). Returns (flow, raised mask)."""
    filled = push_pull(backward, mask)
    agree = input_agreement(previous_input, filled, content)
    here = texture(content)
    flat_here = _square_max(here, reach) < TEXTURE_MIN
    around_source = _square_max(texture(previous_input), reach)
    flat_source = warp(around_source, filled) < TEXTURE_MIN
    take = ((agree > 0.5) & (mask < 0.5)
            & ((here >= TEXTURE_MIN) | (flat_here & flat_source))).to(backward.dtype)
    return backward + take * (filled - backward), torch.maximum(mask, agree * take)


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
