"""The coarse-to-fine schedule: its stages, and whether a frame size can hold them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..config import StrotssConfig
from ..errors import ConfigError
from ..losses import alpha_at
from ..tensorops import scaled_size


@dataclass(frozen=True)
class ScaleStep:
    """One stage of the schedule."""

    long_side: int
    iters: int
    lr: float
    alpha: float
    add_content_band: bool
    """Add the content's finest Laplacian band to the initial image of this stage."""


def default_plan(cfg: StrotssConfig) -> list[ScaleStep]:
    """The reference schedule: every scale, the content band added at all but the final one."""
    sizes = cfg.scale_sizes()
    last = len(sizes) - 1
    return [ScaleStep(long_side=s, iters=cfg.iters, lr=cfg.final_lr if k == last else cfg.lr,
                      alpha=alpha_at(cfg.content_weight, cfg.alpha_base, k),
                      add_content_band=k != last)
            for k, s in enumerate(sizes)]


def final_scale_plan(cfg: StrotssConfig, iters: int, lr: float | None = None) -> list[ScaleStep]:
    """Warm-start schedule: the final scale only, ``iters`` steps (at ``lr``, default the
    final scale's), no content band."""
    step = default_plan(cfg)[-1]
    return [ScaleStep(step.long_side, iters, step.lr if lr is None else lr, step.alpha,
                      add_content_band=False)]


MIN_SCALE_SIDE = 16
"""VGG16 halves the image four times before relu5_3 (coarsest stride 16): a smaller side
vanishes."""


def _too_small(height: int, width: int, long_side: int, min_side: int) -> bool:
    return min(scaled_size(height, width, long_side)) < min_side


def _frame(height: int, width: int, long_side: int) -> str:
    h, w = scaled_size(height, width, long_side)
    return f"{w}x{h}"


def check_scale_sizes(height: int, width: int, plan: Sequence[ScaleStep],
                      min_side: int = MIN_SCALE_SIDE) -> None:
    """Refuse a schedule whose smallest scale is too small for the extractor (ConfigError).

    ``min_side`` is the extractor's coarsest stride (16 for VGG16 up to relu5_3)."""
    for step in plan:
        if _too_small(height, width, step.long_side, min_side):
            raise ConfigError(f"the {step.long_side} px scale would be "
                              f"{_frame(height, width, step.long_side)}, below the {min_side} px "
                              "VGG needs; use fewer --scales or a larger --max-size")
