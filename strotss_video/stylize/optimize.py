"""Coarse-to-fine STROTSS optimisation of one image.

The extractor and the style targets are injected: :class:`StyleBank` computes a style's
per-scale targets once and is reused for every frame of a video; :func:`stylize` takes an
optional initial image and a per-scale plan so a video frame can be warm-started at the final
scale only. The schedule lives in :mod:`.schedule`, one step in :mod:`.step`, the loop over
steps (and CUDA graph replay) in :mod:`.loop`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..config import CudaGraphs, CudnnBenchmark, StrotssConfig
from ..features.sampling import random_pixels, read_nearest
from ..features.vgg import FeatureExtractor
from ..losses import StyleTarget
from ..tensorops import resize, resize_labels, scaled_size
from .guidance import Guidance
from .loop import GRAPH_WARMUP, Clock, EarlyStop, LoopResult, run_steps, side_stream
from .pyramid import laplacian_band
from .schedule import (
    MIN_SCALE_SIDE,
    ScaleStep,
    check_scale_sizes,
    default_plan,
    final_scale_plan,
    fit_scales,
)
from .step import PixelLoss, PyramidImage, ScalePoints, Step, Tap, sample_points

__all__ = ["MIN_SCALE_SIDE", "EarlyStop", "PixelLoss", "ScaleReport", "ScaleStep", "StyleBank",
           "StylizeResult", "check_scale_sizes", "default_plan", "final_scale_plan",
           "fit_scales", "stylize"]


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
    timed_iterations: int = 0
    """Steps with clock marks (vgg/loss seconds cover these); captured steps have none."""
    graphed: bool = False
    """Whether the steps after the warm-up were replayed as a CUDA graph."""


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


@dataclass(frozen=True)
class _Run:
    """What every scale of one :func:`stylize` call shares."""

    extractor: FeatureExtractor
    cfg: StrotssConfig
    gen: torch.Generator
    clock: Clock
    guidance: Guidance | None
    progress: bool
    graphs: CudaGraphs


@dataclass(frozen=True)
class _Extras:
    """The last scale's extra inputs (see :func:`stylize`); none at the other scales."""

    pixel_loss: PixelLoss | None = None
    early_stop: EarlyStop | None = None
    rate: torch.Tensor | None = None


def stylize(content: torch.Tensor, styles: StyleBank, extractor: FeatureExtractor,
            cfg: StrotssConfig, plan: Sequence[ScaleStep] | None = None,
            init: torch.Tensor | None = None, seed: int = 0, progress: bool = True,
            guidance: Guidance | None = None, pixel_loss: PixelLoss | None = None,
            early_stop: EarlyStop | None = None, graphs: CudaGraphs = "off",
            rate: torch.Tensor | None = None,
            autotune: CudnnBenchmark | None = None) -> StylizeResult:
    """Optimise one image.

    content (1,3,H,W) in [0,1] at any size (resized per scale); ``init`` (1,3,h,w) replaces the
    mean-colour initialisation of the first step (resized to it); ``plan`` defaults to the
    reference schedule. ``pixel_loss`` (last step only) is added to the STROTSS loss;
    ``early_stop`` applies to the last step. ``rate`` (1,1,H,W) > 0, last step only (resized
    to it), multiplies the learning rate per pixel: the pyramid optimised holds each level
    divided by the rate (at that level's size), and RMSprop moves each coefficient by about the
    learning rate whatever its gradient's scale, so the image moves about ``rate`` times as
    far per step there (a warm frame's newly visible areas, which its few steps must repaint).
    ``graphs`` = "on" (CUDA only, no guidance)
    replays each scale's step as a CUDA graph after :data:`GRAPH_WARMUP` eager steps; a failed
    capture warns once and the process goes on with eager steps.
    ``autotune`` = "final" lets cuDNN time its algorithms (``torch.backends.cudnn.benchmark``)
    for the last step only, style targets excluded, and restores the flag after each step;
    anything else leaves the flag as the caller set it.
    Returns the clamped result at the last step's size."""
    plan = list(plan) if plan is not None else default_plan(cfg)
    check_scale_sizes(content.shape[-2], content.shape[-1], plan, max(extractor.strides))
    device = content.device
    run = _Run(extractor, cfg, _seeded(seed, 2), Clock(device), guidance, progress, graphs)
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
        with _cudnn_benchmark(False if autotune == "final" else None):
            targets = styles.targets(step.long_side)  # once per scale: not worth timing
        with _cudnn_benchmark(last if autotune == "final" else None):
            extras = _Extras(pixel_loss, early_stop, rate) if last else _Extras()
            image, report = _optimise_scale(run, step, canvas, content_s, targets, desc, extras)
        reports.append(report)
    assert image is not None
    return StylizeResult(image=image.detach().clamp(0.0, 1.0), scales=reports)


@contextlib.contextmanager
def _cudnn_benchmark(enabled: bool | None) -> Any:
    """Set ``torch.backends.cudnn.benchmark`` inside the block and restore it after; None
    leaves it alone. (A process-wide flag: shots never share a GPU across threads.)"""
    if enabled is None:
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def _step_for(run: _Run, step: ScaleStep, points: ScalePoints, pyramid: PyramidImage,
              targets: list[StyleTarget], pixel_loss: PixelLoss | None,
              graph: bool) -> Step:
    """The scale's step, reading the extractor the way that is fastest on its device."""
    device = points.candidates.device
    cfg = run.cfg
    # capturable keeps the optimiser's step count on the device, as graph replay needs.
    optimiser = torch.optim.RMSprop(pyramid.levels, lr=step.lr, alpha=cfg.rmsprop_alpha,
                                    eps=cfg.rmsprop_eps, capturable=graph)
    # On CUDA row gathers pay only inside a graph: they take far less GPU time than
    # grid_sample (H100, 512 px: a step's kernels 4.1 vs 7.8 ms, of which grid_sample 4.0), but
    # launch more kernels (720 vs 513 per step), which eager steps pay for on the host
    # (reads timed eagerly: 7.2 vs 5.7 ms per step; README: GPU).
    read = "grid_sample" if device.type == "cuda" and not graph else None
    # On CPU the extractor reads its own maps as it runs, when it can (TapReader): the
    # gradient then goes back sparsely. CUDA keeps reading the returned maps: not yet measured
    # there.
    tap: Tap | None = getattr(run.extractor, "columns", None) if device.type == "cpu" else None
    # The relaxed EMDs' (N,M) cost matrices, one after the other in one buffer kept for the
    # scale: allocated anew, each (20 MiB at the default counts) is a fresh mapping that every
    # step faults in again on CPU (at 256x144 steps 11.9 ms faster with the buffer, paired
    # median of 8 in one process; docs/tuning.md). CUDA's
    # caching allocator reuses blocks already.
    scratch = torch.empty(min(cfg.output_points, points.candidates.shape[0]),
                          targets[0].unit.shape[0], device=device) \
        if device.type == "cpu" and run.guidance is None else None
    return Step(points, pyramid, targets, step.alpha, run.extractor, optimiser, run.clock,
                pixel_loss, read, tap, scratch)


def _optimise_scale(run: _Run, step: ScaleStep, canvas: torch.Tensor, content: torch.Tensor,
                    targets: list[StyleTarget], desc: str,
                    extras: _Extras) -> tuple[torch.Tensor, ScaleReport]:
    """Optimise one scale from ``canvas`` (1,3,h,w) towards ``content`` (1,3,h,w); returns
    the image (1,3,h,w), unclamped, and the scale's report."""
    h, w = content.shape[-2:]
    device = content.device
    start = time.perf_counter()
    points = sample_points(content, step, run.cfg, run.extractor, run.gen, run.guidance)
    pyramid = PyramidImage.of(canvas, run.cfg.pyramid_levels, extras.rate)
    graph = run.graphs == "on" and device.type == "cuda" and run.guidance is None \
        and step.iters >= GRAPH_WARMUP + 2
    body = _step_for(run, step, points, pyramid, targets, extras.pixel_loss, graph)
    bar = tqdm(total=step.iters, desc=desc, disable=not run.progress, leave=False, unit="it")
    loop_start = time.perf_counter()
    # A graph is captured on a side stream, and the eager steps before it run there too, so
    # the libraries' per-stream workspaces exist before the capture.
    side = side_stream(device) if graph else None
    if side is not None:
        side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
        loop = run_steps(body, points.idx_all, points.crow_all, body.optimiser, step.iters,
                         graph, extras.early_stop, run.progress, bar)
    if side is not None:
        torch.cuda.current_stream(device).wait_stream(side)
    run.clock.sync()
    loop_seconds = time.perf_counter() - loop_start
    bar.close()
    with torch.no_grad():
        result = pyramid.image()
    return result, _report(run.clock, step, (h, w), loop, time.perf_counter() - start,
                           loop_seconds)


def _report(clock: Clock, step: ScaleStep, size: tuple[int, int], loop: LoopResult,
            seconds: float, loop_seconds: float) -> ScaleReport:
    # Captured steps have no clock marks: their time is in loop_seconds only.
    vgg = sum(clock.span(m[0], m[1]) + clock.span(m[2], m[3]) for m in loop.spans)
    loss = sum(clock.span(m[1], m[2]) for m in loop.spans)
    return ScaleReport(long_side=step.long_side, height=size[0], width=size[1],
                       iterations=loop.done, seconds=seconds, loop_seconds=loop_seconds,
                       vgg_seconds=vgg, loss_seconds=loss, losses=loop.final,
                       initial_losses=loop.initial, timed_iterations=len(loop.spans),
                       graphed=loop.graphed)
