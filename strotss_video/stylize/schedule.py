"""The coarse-to-fine schedule: its stages, and the scales a frame size can hold."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..config import StrotssConfig
from ..errors import ConfigError, Notice
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


def fit_scales(cfg: StrotssConfig, height: int, width: int,
               min_side: int = MIN_SCALE_SIDE) -> StrotssConfig:
    """``cfg`` for frames of (height, width): the coarsest scales whose frame would have a side
    below ``min_side`` are dropped, with one :class:`~strotss_video.errors.Notice` naming them.

    The kept scales keep their sizes and weights: alpha halves from one scale to the next
    starting at the coarsest, so ``alpha_base`` halves once per dropped scale (exact in
    floating point). Raises ConfigError when not even the final scale fits."""
    sizes = cfg.scale_sizes()
    dropped = [s for s in sizes if _too_small(height, width, s, min_side)]
    kept = [s for s in sizes if s not in dropped]
    if not dropped:
        return cfg
    if not kept:
        raise ConfigError(f"at --max-size {cfg.max_size} the frame would be "
                          f"{_frame(height, width, cfg.max_size)}, below the {min_side} px VGG "
                          "needs; use a larger --max-size")
    one = len(dropped) == 1
    frames = ", ".join(_frame(height, width, s) for s in dropped)
    warnings.warn(f"dropped the {_sides(dropped)} px {'scale' if one else 'scales'}: "
                  f"{'its frame' if one else 'their frames'} ({frames}) would be below the "
                  f"{min_side} px VGG needs; running the {_sides(kept)} px "
                  f"{'scale' if len(kept) == 1 else 'scales'}", Notice, stacklevel=2)
    return replace(cfg, scales=len(kept), alpha_base=cfg.alpha_base / 2 ** len(dropped))


def _sides(sizes: list[int]) -> str:
    return ", ".join(str(s) for s in sizes)
