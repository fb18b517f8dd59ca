"""Forward-backward consistency (Ruder et al. 2016; the same test and constants as Lai et al.'s
warping-error evaluation): which pixels of a frame can be trusted after warping.

Naming follows Ruder for frame i: ``backward`` b = flow(i -> i-1) (the one used to warp the
previous frame into frame i) and ``forward`` f = flow(i-1 -> i). Generally: the first argument
is the flow *from* the frame the mask is for, the second the flow back to it. For Lai's M_t of
frame t (warped with flow t -> t+1), pass ``(flow(t->t+1), flow(t+1->t))``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

from ..errors import UsageError
from ..tensorops import central_differences
from .warp import in_frame, warp

__all__ = ["SMOOTHING", "consistency_checks", "occlusion_mask", "reliability"]

SMOOTHING = ("gaussian", "erode", "none")

# Thresholds are in pixels (squared), so flows must be on the grid the mask is used on.
OCC_REL = 0.01
OCC_ABS = 0.5
MB_REL = 0.01
MB_ABS = 0.002


def _check(backward: torch.Tensor, forward: torch.Tensor) -> None:
    if backward.ndim != 4 or backward.shape[1] != 2 or backward.shape != forward.shape:
        raise ValueError(f"consistency needs two (B,2,H,W) flows of one shape, got "
                         f"{tuple(backward.shape)} and {tuple(forward.shape)}")


def _central_gradients(flow: torch.Tensor) -> torch.Tensor:
    """(B,2,H,W) -> (B,1,H,W) |∇u|² + |∇v|² with central differences (f(x+1)-f(x-1))/2;
    replicate padding, so at the border it is half a one-sided difference."""
    dx, dy = central_differences(flow)
    return (dx.square() + dy.square()).sum(1, keepdim=True)


def consistency_checks(backward: torch.Tensor, forward: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three failure tests separately, each (B,1,H,W) bool, True = fails:
    ``out_of_frame`` (x + b(x) outside), ``occluded`` (|b + f~|² >= 0.01(|b|² + |f~|²) + 0.5,
    f~ = f bilinearly sampled at x + b(x)) and ``motion_boundary``
    (|∇b_u|² + |∇b_v|² > 0.01|b|² + 0.002)."""
    _check(backward, forward)
    with torch.no_grad():
        b = backward.float()
        f_t = warp(forward.float(), b)
        b_sq = b.square().sum(1, keepdim=True)
        f_sq = f_t.square().sum(1, keepdim=True)
        diff_sq = (b + f_t).square().sum(1, keepdim=True)
        return {
            "out_of_frame": in_frame(b) < 0.5,
            "occluded": diff_sq >= OCC_REL * (b_sq + f_sq) + OCC_ABS,
            "motion_boundary": _central_gradients(b) > MB_REL * b_sq + MB_ABS,
        }


def occlusion_mask(backward: torch.Tensor, forward: torch.Tensor, *,
                   motion_boundaries: bool = True, out_of_frame: bool = True,
                   checks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Binary, unsmoothed mask (B,1,H,W) float: 1 = reliable, 0 = failed an included test.

    The occlusion test is always included. Defaults include all of Ruder's tests, which is
    what the spec's warping error uses (M = 1 - occlusion "with the checker above"; Lai's own
    code also ORs in the motion-boundary test). ``motion_boundaries=False, out_of_frame=False``
    gives the pure forward-backward occlusion test. ``checks``: :func:`consistency_checks` of
    the same flows, if already computed."""
    if checks is None:
        checks = consistency_checks(backward, forward)
    bad = checks["occluded"]
    if motion_boundaries:
        bad = bad | checks["motion_boundary"]
    if out_of_frame:
        bad = bad | checks["out_of_frame"]
    return (~bad).to(torch.float32)


def reliability(backward: torch.Tensor, forward: torch.Tensor, smooth: str | None = None,
                checks: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Ruder's reliability weight c (B,1,H,W) float in [0,1] for the frame ``backward`` starts at.

    backward (B,2,H,W) = flow(i -> i-1), forward (B,2,H,W) = flow(i-1 -> i), both in pixels of
    this grid. 0 where out of frame, occluded or on a motion boundary. ``smooth``: None/"none"
    (binary), "gaussian" (Ruder: sigma 0.8, 5 taps) or "erode" (7 px min filter: zeros grow
    by 3 px, a safety margin around unreliable regions). ``checks`` as for
    :func:`occlusion_mask`."""
    mask = occlusion_mask(backward, forward, checks=checks)
    if smooth is None or smooth == "none":
        return mask
    if smooth == "gaussian":
        return gaussian_blur2d(mask, (5, 5), (0.8, 0.8), border_type="replicate").clamp_(0.0, 1.0)
    if smooth == "erode":
        # min filter = -maxpool(-x); max_pool pads with -inf, so the frame edge does not erode.
        return -F.max_pool2d(-mask, kernel_size=7, stride=1, padding=3)
    raise UsageError(f"unknown mask smoothing {smooth!r}; use one of {', '.join(SMOOTHING)}")
