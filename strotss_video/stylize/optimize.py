"""Coarse-to-fine STROTSS optimisation of one image.

The extractor and the style targets are injected: :class:`StyleBank` computes a style's
per-scale targets once and is reused for every frame of a video; :func:`stylize` takes an
optional initial image and a per-scale plan so a video frame can be warm-started at the final
scale only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from ..config import StrotssConfig
from ..errors import ConfigError
from ..features.sampling import (candidate_grid, random_pixels, read_bilinear,
                                 read_bilinear_columns, read_nearest, subset)
from ..features.vgg import FeatureExtractor
from ..losses import LossTerms, StyleTarget, alpha_at, strotss_loss
from ..losses.content import normalise_columns, self_similarity
from ..losses.ops import unit_rows
from ..tensorops import resize, resize_labels, scaled_size
from .guidance import Guidance
from .pyramid import decompose, laplacian_band, recompose


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
"""VGG16 halves the image four times before relu5_3 (coarsest stride 16): a smaller side vanishes."""

def check_scale_sizes(height: int, width: int, plan: Sequence[ScaleStep],
                      min_side: int = MIN_SCALE_SIDE) -> None:
    """Refuse a schedule whose smallest scale is too small for the extractor (ConfigError).

    ``min_side`` is the extractor's coarsest stride (16 for VGG16 up to relu5_3)."""
    for step in plan:
        h, w = scaled_size(height, width, step.long_side)
        if min(h, w) < min_side:
            raise ConfigError(f"the {step.long_side} px scale would be {w}x{h}, below the "
                              f"{min_side} px VGG needs; use fewer --scales or a larger "
                              "--max-size")


def _seeded(seed: int, *salt: int) -> torch.Generator:
    g = torch.Generator()
    value = seed
    for s in salt:
        value = (value * 1_000_003 + s) % (2 ** 63)
    return g.manual_seed(value)


class StyleBank:
    """Style targets per scale, computed once on first use and then reused.

    style (1,3,Hs,Ws) in [0,1] on the extractor's device; ``guidance`` optional."""

    def __init__(self, extractor: FeatureExtractor, style: torch.Tensor, cfg: StrotssConfig,
                 seed: int = 0, guidance: Guidance | None = None) -> None:
        self.extractor = extractor
        self.style = style
        self.cfg = cfg
        self.seed = seed
        self.guidance = guidance
        self._targets: dict[int, list[StyleTarget]] = {}
        self.mean_color = style.mean(dim=(2, 3), keepdim=True)  # (1,3,1,1)

    def targets(self, long_side: int) -> list[StyleTarget]:
        """One :class:`StyleTarget` per region (one without guidance) for this output size."""
        if long_side not in self._targets:
            self._targets[long_side] = self._compute(long_side)
        return self._targets[long_side]

    @torch.no_grad()
    def _compute(self, long_side: int) -> list[StyleTarget]:
        h, w = scaled_size(self.style.shape[-2], self.style.shape[-1], long_side)
        image = resize(self.style, (h, w))
        maps = self.extractor(image)
        gen = _seeded(self.seed, 1, long_side)
        if self.guidance is None:
            masks: list[torch.Tensor | None] = [None]
        else:
            labels = resize_labels(self.guidance.style_labels, (h, w))
            masks = [labels == r for r in range(self.guidance.regions)]
        targets = []
        for mask in masks:
            if mask is not None and not bool(mask.any()):
                raise ValueError(f"style region vanishes at {long_side} px")
            points = random_pixels(h, w, self.cfg.style_points, gen, mask)
            targets.append(StyleTarget.from_hypercolumns(read_nearest(maps, self.extractor.strides,
                                                                      points)))
        return targets


@dataclass
class ScaleReport:
    long_side: int
    height: int
    width: int
    iterations: int
    seconds: float
    """Wall time of the scale, set-up (content features, candidates) included."""
    loop_seconds: float
    """Wall time of the optimisation loop alone."""
    vgg_seconds: float
    loss_seconds: float
    losses: dict[str, float] = field(default_factory=dict)
    """Loss terms at the last step."""
    initial_losses: dict[str, float] = field(default_factory=dict)
    """Loss terms at the first step (before any update)."""


@dataclass
class StylizeResult:
    image: torch.Tensor
    """(1,3,H,W) in [0,1], float32, on the working device."""
    scales: list[ScaleReport]

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.scales)

    @property
    def vgg_seconds(self) -> float:
        return sum(s.vgg_seconds for s in self.scales)

    @property
    def loss_seconds(self) -> float:
        return sum(s.loss_seconds for s in self.scales)

    @property
    def iterations(self) -> int:
        return sum(s.iterations for s in self.scales)


class _Clock:
    """Stage timestamps; CUDA events on GPU so timing adds no sync inside the loop."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def mark(self) -> object:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def span(self, start: object, end: object) -> float:
        if self.cuda:
            return start.elapsed_time(end) / 1000.0  # type: ignore[attr-defined]
        return float(end) - float(start)  # type: ignore[arg-type]

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


PRECOMPUTE_SIMILARITY_MAX = 4096
"""Candidate count up to which the content's full similarity matrix (64 MiB) is precomputed."""


PixelLoss = Callable[[torch.Tensor], torch.Tensor]
"""A weighted scalar loss of the whole image (1,3,h,w), e.g. the temporal term."""


@dataclass(frozen=True)
class EarlyStop:
    """Stop when the mean loss of the last ``window`` steps differs from the previous
    window's by less than ``tol`` (relative). Checked once per window (one sync)."""

    tol: float
    window: int


def stylize(content: torch.Tensor, styles: StyleBank, extractor: FeatureExtractor,
            cfg: StrotssConfig, plan: Sequence[ScaleStep] | None = None,
            init: torch.Tensor | None = None, seed: int = 0, progress: bool = True,
            guidance: Guidance | None = None, pixel_loss: PixelLoss | None = None,
            early_stop: EarlyStop | None = None) -> StylizeResult:
    """Optimise one image.

    content (1,3,H,W) in [0,1] at any size (resized per scale); ``init`` (1,3,h,w) replaces the
    mean-colour initialisation of the first step (resized to it); ``plan`` defaults to the
    reference schedule. ``pixel_loss`` (last step only) is added to the STROTSS loss;
    ``early_stop`` applies to the last step. Returns the clamped result at the last step's size."""
    plan = list(plan) if plan is not None else default_plan(cfg)
    check_scale_sizes(content.shape[-2], content.shape[-1], plan, max(extractor.strides))
    device = content.device
    clock = _Clock(device)
    gen = _seeded(seed, 2)
    image = init
    reports = []
    for k, step in enumerate(plan):
        h, w = scaled_size(content.shape[-2], content.shape[-1], step.long_side)
        content_s = resize(content, (h, w))
        if image is None:
            canvas = styles.mean_color.expand(1, 3, h, w).to(device)
        else:
            canvas = resize(image.detach(), (h, w))
        if step.add_content_band:
            canvas = canvas + laplacian_band(content_s)
        desc = f"scale {k + 1}/{len(plan)} {w}x{h}"
        last = k == len(plan) - 1
        result, report = _optimise_scale(canvas, content_s, styles.targets(step.long_side), step,
                                         extractor, cfg, gen, clock, guidance, progress, desc,
                                         pixel_loss if last else None, early_stop if last else None)
        image = result
        reports.append(report)
    assert image is not None
    return StylizeResult(image=image.detach().clamp(0.0, 1.0), scales=reports)


def _converged(history: list[torch.Tensor], rule: EarlyStop) -> bool:
    n = len(history)
    if n < 2 * rule.window or n % rule.window:
        return False
    previous = float(torch.stack(history[-2 * rule.window:-rule.window]).mean())
    current = float(torch.stack(history[-rule.window:]).mean())
    return abs(previous - current) <= rule.tol * abs(previous)


def _optimise_scale(canvas: torch.Tensor, content: torch.Tensor, targets: list[StyleTarget],
                    step: ScaleStep, extractor: FeatureExtractor, cfg: StrotssConfig,
                    gen: torch.Generator, clock: _Clock, guidance: Guidance | None,
                    progress: bool, desc: str, pixel_loss: PixelLoss | None,
                    early_stop: EarlyStop | None) -> tuple[torch.Tensor, ScaleReport]:
    h, w = content.shape[-2:]
    device = content.device
    strides = extractor.strides
    start = time.perf_counter()

    # Constant per scale: candidate points and the content's hypercolumns there.
    mask = labels = None
    if guidance is not None:
        labels = resize_labels(guidance.content_labels, (h, w))
        mask = labels >= 0
    candidates = candidate_grid(h, w, cfg.grid_side, gen, mask)
    if candidates.shape[0] == 0:
        raise ValueError(f"no sample points at {w}x{h}")
    point_regions = labels[candidates[:, 1], candidates[:, 0]].to(device) if labels is not None \
        else None
    # Every step's points, drawn up front (the same draws, in the same order, as one per step).
    subsets = [subset(candidates.shape[0], cfg.output_points, gen) for _ in range(step.iters)]
    with torch.no_grad():
        # The content's hypercolumns are needed only where some step samples: a short (warm)
        # schedule reads a fraction of the candidates. Row lookup maps candidate -> row.
        used = torch.unique(torch.cat(subsets)) if subsets else torch.zeros(0, dtype=torch.long)
        if used.numel() < candidates.shape[0] // 2:
            rows = torch.full((candidates.shape[0],), -1, dtype=torch.long)
            rows[used] = torch.arange(used.numel())
            content_unit = unit_rows(read_bilinear(extractor(content), strides, candidates[used]))
        else:
            rows = None
            content_unit = unit_rows(read_bilinear(extractor(content), strides, candidates))
        # With few candidates, all their pairwise similarities cost less memory than a GEMM
        # per step; each step's target is then a gather.
        content_sim = torch.mm(content_unit, content_unit.t()) \
            if content_unit.shape[0] <= PRECOMPUTE_SIMILARITY_MAX else None
    candidates_dev = candidates.to(device)

    pyramid = [p.detach().clone().requires_grad_(True)
               for p in decompose(canvas.detach(), cfg.pyramid_levels)]
    optimiser = torch.optim.RMSprop(pyramid, lr=step.lr, alpha=cfg.rmsprop_alpha,
                                    eps=cfg.rmsprop_eps)
    spans: list[tuple[object, object, object, object]] = []
    terms: LossTerms | None = None
    initial: dict[str, float] = {}
    bar = tqdm(total=step.iters, desc=desc, disable=not progress, leave=False, unit="it")
    loop_start = time.perf_counter()
    history: list[torch.Tensor] = []
    done = 0
    for it in range(step.iters):
        idx = subsets[it].to(device)
        # Rows of the content tables for these points (the same points when all were read).
        crow = rows[subsets[it]].to(device) if rows is not None else idx
        image = recompose(pyramid)
        t0 = clock.mark()
        maps = extractor(image)
        t1 = clock.mark()
        leaves = [m.detach().requires_grad_(True) for m in maps]
        columns = read_bilinear_columns(leaves, strides, candidates_dev[idx])
        a = torch.cat(columns, dim=1)
        with torch.no_grad():
            if content_sim is not None:
                target = normalise_columns(1.0 - content_sim[crow][:, crow])
            else:
                target = self_similarity(content_unit[crow])
        terms = strotss_loss(a, target, targets, step.alpha,
                             point_regions[idx] if point_regions is not None else None,
                             rgb=columns[0])
        terms.total.backward()
        extra = pixel_loss(image) if pixel_loss is not None else None
        t2 = clock.mark()
        # Second half of the backward pass: through VGG into the pyramid.
        roots: list[torch.Tensor] = list(maps)
        grads: list[torch.Tensor | None] = [leaf.grad for leaf in leaves]
        if extra is not None:
            roots.append(extra)
            grads.append(None)
            terms = replace(terms, total=terms.total.detach() + extra.detach(),
                            temporal=extra.detach())
        torch.autograd.backward(roots, grads)
        t3 = clock.mark()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        spans.append((t0, t1, t2, t3))
        done = it + 1
        if it == 0:
            initial = terms.as_floats()
        if progress and (it % 10 == 0 or it == step.iters - 1):
            bar.set_postfix(loss=f"{float(terms.total.detach()):.4f}", refresh=False)
        bar.update(1)
        if early_stop is not None:
            history.append(terms.total.detach())
            if _converged(history, early_stop):
                break
    clock.sync()
    loop_seconds = time.perf_counter() - loop_start
    bar.close()
    with torch.no_grad():
        result = recompose(pyramid)
    vgg = sum(clock.span(t0, t1) + clock.span(t2, t3) for t0, t1, t2, t3 in spans)
    loss = sum(clock.span(t1, t2) for _, t1, t2, _ in spans)
    report = ScaleReport(long_side=step.long_side, height=h, width=w, iterations=done,
                         seconds=time.perf_counter() - start, loop_seconds=loop_seconds, vgg_seconds=vgg, loss_seconds=loss,
                         losses=terms.as_floats() if terms is not None else {},
                         initial_losses=initial)
    return result, report
