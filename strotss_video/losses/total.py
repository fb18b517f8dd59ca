"""The STROTSS objective: targets computed once per scale, and the weighted total."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .content import content_loss
from .ops import unit_rows
from .style import moment_loss, moments, remd_cosine, remd_palette


@dataclass(frozen=True)
class StyleTarget:
    """Constant statistics of one style (region) at one scale.

    unit (M,D) unit hypercolumns and unit_t (D,M) its contiguous transpose; rgb (M,3) raw
    colours; mean (D,); cov (D,D)."""

    unit: torch.Tensor
    unit_t: torch.Tensor
    rgb: torch.Tensor
    mean: torch.Tensor
    cov: torch.Tensor

    @classmethod
    def from_hypercolumns(cls, b: torch.Tensor) -> StyleTarget:
        """b (M,D) style hypercolumns whose first 3 channels are RGB."""
        with torch.no_grad():
            mean, cov = moments(b)
            unit = unit_rows(b).contiguous()
            return cls(unit=unit, unit_t=unit.t().contiguous(), rgb=b[:, :3].contiguous(), mean=mean,
                       cov=cov)


@dataclass(frozen=True)
class LossTerms:
    """Scalar tensors; ``total`` carries the gradient."""

    total: torch.Tensor
    content: torch.Tensor
    remd: torch.Tensor
    moment: torch.Tensor
    palette: torch.Tensor
    temporal: torch.Tensor | None = None
    """The weighted pixel-space term added by the video pipeline, if any (included in total)."""

    @property
    def style(self) -> torch.Tensor:
        """The three style terms together (the style loss compared across frames)."""
        return self.remd + self.moment + self.palette

    def as_floats(self) -> dict[str, float]:
        names = ["total", "content", "remd", "moment", "palette"]
        if self.temporal is not None:
            names.append("temporal")
        out = {k: float(getattr(self, k).detach()) for k in names}
        out["style"] = out["remd"] + out["moment"] + out["palette"]
        return out


def alpha_at(content_weight: float, alpha_base: float, scale_index: int) -> float:
    """alpha = alpha_base * content_weight, halved after each scale (index 0 = coarsest)."""
    return alpha_base * content_weight / (2 ** scale_index)


def combine(alpha: float, l_c: torch.Tensor, l_r: torch.Tensor, l_m: torch.Tensor,
            l_p: torch.Tensor) -> torch.Tensor:
    """``(alpha*l_c + l_r + l_m + l_p/max(alpha,1)) / (alpha + 2)`` (the authors' code)."""
    return (alpha * l_c + l_r + l_m + l_p / max(alpha, 1.0)) / (alpha + 2.0)


def strotss_loss(a: torch.Tensor, content_target: torch.Tensor, styles: list[StyleTarget],
                 alpha: float, regions: torch.Tensor | None = None,
                 rgb: torch.Tensor | None = None,
                 scratch: torch.Tensor | None = None) -> LossTerms:
    """The STROTSS loss at sampled points.

    a (N,D) output hypercolumns (with grad); content_target (N,N) the content's
    :func:`self_similarity` at the same points; ``styles[r]`` the target of region r;
    ``regions`` (N,) long region of each point (None: one region). Style terms are averaged over
    the regions present among the points. ``rgb`` (N,3), optional, is ``a[:, :3]`` as its own
    tensor (``a`` concatenated from it), so the palette gradient skips the (N,D) matrix.
    ``scratch`` (N,M) float32, optional, holds each relaxed EMD's cost matrix in turn (one
    region only): a caller that keeps it across steps saves the fresh (N,M) mappings a step
    would otherwise fault in (glibc maps blocks of this size anew on every allocation)."""
    rgb = a[:, :3] if rgb is None else rgb
    a_unit = unit_rows(a)
    l_c = content_loss(a_unit, content_target)
    if regions is None:
        # The whole tensors, not views: a view's backward would build a zero (N,D) gradient
        # and copy into it, then be added to the others (~3 ms a step at 1024 x 2179 on CPU).
        style = styles[0]
        if scratch is not None and scratch.shape != (a.shape[0], style.unit.shape[0]):
            scratch = None
        l_r = remd_cosine(a_unit, style.unit, style.unit_t, out=scratch)
        l_m = moment_loss(a, style.mean, style.cov)
        l_p = remd_palette(rgb, style.rgb, out=scratch)
        return LossTerms(total=combine(alpha, l_c, l_r, l_m, l_p), content=l_c, remd=l_r,
                         moment=l_m, palette=l_p)
    groups = [(s, (regions == r).nonzero().squeeze(1)) for r, s in enumerate(styles)]
    groups = [(s, idx) for s, idx in groups if idx.numel() > 0]
    l_r = l_m = l_p = a.new_zeros(())
    for style, idx in groups:
        l_r = l_r + remd_cosine(a_unit[idx], style.unit, style.unit_t)
        l_m = l_m + moment_loss(a[idx], style.mean, style.cov)
        l_p = l_p + remd_palette(rgb[idx], style.rgb)
    n = float(len(groups))
    l_r, l_m, l_p = l_r / n, l_m / n, l_p / n
    return LossTerms(total=combine(alpha, l_c, l_r, l_m, l_p), content=l_c, remd=l_r, moment=l_m,
                     palette=l_p)
