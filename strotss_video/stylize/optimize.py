"""Coarse-to-fine STROTSS optimisation of one image.

The extractor and the style targets are injected: :class:`StyleBank` computes a style's
per-scale targets once and is reused for every frame of a video; :func:`stylize` takes an
optional initial image and a per-scale plan so a video frame can be warm-started at the final
scale only.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from ..config import StrotssConfig
from ..errors import ConfigError, check_stop
from ..features.sampling import (candidate_grid, random_pixels, read_bilinear,
                                 read_bilinear_columns, read_nearest, subset)
from ..features.vgg import FeatureExtractor
from ..losses import LossTerms, StyleTarget, alpha_at, strotss_loss
from ..losses.content import self_similarity, target_from_similarity_
from ..losses.ops import symmetric_product, unit_rows
from ..tensorops import resize, resize_labels, scaled_size
from .guidance import Guidance
from .pyramid import decompose, laplacian_band, level_maps, recompose


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


PRECOMPUTE_SIMILARITY_MAX = 8192
"""Candidate count up to which the content's full similarity matrix (at most 256 MiB in
float32) may be precomputed."""


def _precompute_similarity(rows: int, points: int, iters: int) -> bool:
    """Whether one (rows x rows) similarity product costs no more than ``iters`` per-step
    (points x points) products: a scale's candidates outnumber its points about 4-6 to 1, so
    it pays from ~30 steps on (the default schedules run 40-250)."""
    return rows <= PRECOMPUTE_SIMILARITY_MAX and iters * min(points, rows) ** 2 >= rows ** 2


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
            early_stop: EarlyStop | None = None, graphs: str = "off",
            rate: torch.Tensor | None = None, autotune: str | None = None) -> StylizeResult:
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
        with _cudnn_benchmark(False if autotune == "final" else None):
            targets = styles.targets(step.long_side)  # once per scale: not worth timing
        with _cudnn_benchmark(last if autotune == "final" else None):
            result, report = _optimise_scale(canvas, content_s, targets, step, extractor, cfg,
                                             gen, clock, guidance, progress, desc,
                                             pixel_loss if last else None,
                                             early_stop if last else None, graphs,
                                             rate if last else None)
        image = result
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


def _converged(history: list[torch.Tensor], rule: EarlyStop) -> bool:
    n = len(history)
    if n < 2 * rule.window or n % rule.window:
        return False
    previous = float(torch.stack(history[-2 * rule.window:-rule.window]).mean())
    current = float(torch.stack(history[-rule.window:]).mean())
    return abs(previous - current) <= rule.tol * abs(previous)


GRAPH_WARMUP = 3
"""Eager steps before a scale's step is captured as a CUDA graph: they create the optimiser's
state and the libraries' workspaces and pick the convolution algorithms, which a capture
cannot do."""


_LAST_GRAPH: dict[torch.device, torch.cuda.CUDAGraph] = {}
"""The last graph captured on each device. It is never replayed again, but keeping it alive
keeps its memory pool alive for the next capture to reuse (a pool whose graphs are all gone is
released, and cannot be reused)."""
_SIDE_STREAMS: dict[torch.device, torch.cuda.Stream] = {}


def _side_stream(device: torch.device) -> torch.cuda.Stream:
    """One capture stream per device for the whole process: the allocator reuses a pool's
    freed blocks only for the stream they were allocated on, so a new stream per capture
    made every capture allocate afresh (measured: 34 GiB after 12 frames at 512 px)."""
    if device not in _SIDE_STREAMS:
        _SIDE_STREAMS[device] = torch.cuda.Stream(device)
    return _SIDE_STREAMS[device]


_GRAPHS_FAILED: list[str] = []
"""Set once a capture fails in this process: later scales run eager steps without trying."""


def _capture(body: Callable[[torch.Tensor, torch.Tensor, list[object] | None], LossTerms],
             idx_all: torch.Tensor, crow_all: torch.Tensor, optimiser: torch.optim.Optimizer
             ) -> Callable[[int], LossTerms] | None:
    """Capture one step (forward, loss, backward, optimiser update) as a CUDA graph on the
    current (side) stream. Returns ``replay(it)``, which loads step ``it``'s points into the
    graph's input buffers and replays it, or None when capture failed (eager steps go on)."""
    if _GRAPHS_FAILED:
        return None
    device = idx_all.device
    idx_buf = idx_all[0].clone()
    crow_buf = crow_all[0].clone()
    graph = torch.cuda.CUDAGraph()
    previous = _LAST_GRAPH.get(device)
    try:
        # Not torch.cuda.graph(): it empties the allocator's cache on every capture, and a
        # capture happens per scale of every frame. Each capture reuses the previous one's
        # memory pool (that graph is finished and never replayed again).
        # thread_local: the pipeline's decode/commit threads may touch CUDA meanwhile.
        graph.capture_begin(*(() if previous is None else (previous.pool(),)),
                            capture_error_mode="thread_local")
        try:
            static = body(idx_buf, crow_buf, None)
        finally:
            graph.capture_end()
    except RuntimeError as exc:
        optimiser.zero_grad(set_to_none=True)
        reason = (str(exc).strip().splitlines() or ["unknown error"])[0]
        _GRAPHS_FAILED.append(reason)
        warnings.warn(f"CUDA graph capture failed ({reason}); running eager steps "
                      "(--cuda-graphs off skips the attempt)")
        return None
    _LAST_GRAPH[device] = graph

    def replay(it: int) -> LossTerms:
        idx_buf.copy_(idx_all[it])
        crow_buf.copy_(crow_all[it])
        graph.replay()
        return static

    return replay


def _loop(body: Callable[[torch.Tensor, torch.Tensor, list[object] | None], LossTerms],
          idx_all: torch.Tensor, crow_all: torch.Tensor, optimiser: torch.optim.Optimizer,
          iters: int, graph: bool, early_stop: EarlyStop | None, progress: bool,
          bar: tqdm) -> tuple[dict[str, float], int, dict[str, float], list[list[object]], bool]:
    """Run ``iters`` steps: eager (with clock marks), then graph replays once captured.
    Returns (last step's terms, steps done, first step's terms, clock marks per eager step, graphed).
    The host reads loss values only at the first step, for the progress bar, and once per
    early-stop window."""
    terms: LossTerms | None = None
    initial: dict[str, float] = {}
    spans: list[list[object]] = []
    history: list[torch.Tensor] = []
    replay: Callable[[int], LossTerms] | None = None
    done = 0
    for it in range(iters):
        check_stop()
        if replay is not None:
            terms = replay(it)
        else:
            marks: list[object] = []
            terms = body(idx_all[it], crow_all[it], marks)
            optimiser.zero_grad(set_to_none=True)
            spans.append(marks)
        done = it + 1
        if it == 0:
            initial = terms.as_floats()
        if progress and (it % 10 == 0 or it == iters - 1):
            bar.set_postfix(loss=f"{float(terms.total.detach()):.4f}", refresh=False)
        bar.update(1)
        if early_stop is not None:
            # A replayed graph overwrites its outputs: keep a copy.
            history.append(terms.total.detach().clone())
            if _converged(history, early_stop):
                break
        if graph and replay is None and it + 1 == GRAPH_WARMUP and it + 1 < iters:
            replay = _capture(body, idx_all, crow_all, optimiser)
    final = terms.as_floats() if terms is not None else {}
    if replay is not None:
        # The next capture reuses this graph's pool: let its last replay finish first.
        torch.cuda.current_stream().synchronize()
    return final, done, initial, spans, replay is not None


def _optimise_scale(canvas: torch.Tensor, content: torch.Tensor, targets: list[StyleTarget],
                    step: ScaleStep, extractor: FeatureExtractor, cfg: StrotssConfig,
                    gen: torch.Generator, clock: _Clock, guidance: Guidance | None,
                    progress: bool, desc: str, pixel_loss: PixelLoss | None,
                    early_stop: EarlyStop | None, graphs: str = "off",
                    rate: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, ScaleReport]:
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
        # schedule reads a fraction of the candidates (40 steps of 1024 points, ~2/3 of 37k).
        # Row lookup maps candidate -> row. Tens of thousands of reads without gradient:
        # grid_sample is the faster read there.
        used = torch.unique(torch.cat(subsets)) if subsets else torch.zeros(0, dtype=torch.long)
        if used.numel() < candidates.shape[0]:
            rows = torch.full((candidates.shape[0],), -1, dtype=torch.long)
            rows[used] = torch.arange(used.numel())
            read_at = candidates[used]
        else:
            rows = None
            read_at = candidates
        content_unit = unit_rows(read_bilinear(extractor(content), strides, read_at, "grid_sample"))
        # When it is less work than a product per step, all the pairwise similarities are
        # computed once and each step's target is a gather.
        content_sim = symmetric_product(content_unit, rows=True, exact=False) \
            if _precompute_similarity(content_unit.shape[0], cfg.output_points, step.iters) \
            else None
    candidates_dev = candidates.to(device)
    # Every step's point indices on the device at once: no host-to-device copy per step.
    order = torch.stack(subsets) if subsets else torch.zeros(0, 0, dtype=torch.long)
    idx_all = order.to(device)
    crow_all = rows[order].to(device) if rows is not None else idx_all

    bands = decompose(canvas.detach(), cfg.pyramid_levels)
    rates = level_maps(resize(rate.to(device), (h, w)), bands) if rate is not None else None
    if rates is not None:
        bands = [b / r for b, r in zip(bands, rates)]
    pyramid = [b.clone().requires_grad_(True) for b in bands]

    def image_of() -> torch.Tensor:
        """The image (1,3,h,w) the pyramid holds."""
        if rates is None:
            return recompose(pyramid)
        return recompose([p * r for p, r in zip(pyramid, rates)])
    graph = graphs == "on" and device.type == "cuda" and guidance is None \
        and step.iters >= GRAPH_WARMUP + 2
    # capturable keeps the optimiser's step count on the device, as graph replay needs.
    optimiser = torch.optim.RMSprop(pyramid, lr=step.lr, alpha=cfg.rmsprop_alpha,
                                    eps=cfg.rmsprop_eps, capturable=graph)
    # On CUDA row gathers pay only inside a graph: they take far less GPU time than
    # grid_sample (H100, 512 px: a step's kernels 4.1 vs 7.8 ms, of which grid_sample 4.0), but
    # launch more kernels (720 vs 513 per step), which eager steps pay for on the host
    # (reads timed eagerly: 7.2 vs 5.7 ms per step; README: GPU).
    read = "grid_sample" if device.type == "cuda" and not graph else None
    # On CPU the extractor reads its own maps as it runs, when it can (TapReader): the
    # gradient then goes back sparsely. CUDA keeps reading the returned maps: not yet measured
    # there.
    tapped: Callable[[torch.Tensor, torch.Tensor], list[torch.Tensor]] | None = \
        getattr(extractor, "columns", None) if device.type == "cpu" else None

    # The relaxed EMDs' (N,M) cost matrices, one after the other in one buffer kept for the
    # scale: allocated anew, each (20 MiB at the default counts) is a fresh mapping that every
    # step faults in again on CPU (at 256x144 steps 11.9 ms faster with the buffer, paired
    # median of 8 in one process; docs/tuning.md). CUDA's
    # caching allocator reuses blocks already.
    scratch = torch.empty(min(cfg.output_points, candidates.shape[0]), targets[0].unit.shape[0],
                          device=device) if device.type == "cpu" and guidance is None else None

    def body(idx: torch.Tensor, crow: torch.Tensor,
             marks: list[object] | None) -> LossTerms:
        """One optimisation step at points ``idx`` (content rows ``crow``); no host sync, so
        it can be captured. ``marks`` collects four clock marks when given."""
        image = image_of()
        if marks is not None:
            marks.append(clock.mark())
        roots: list[torch.Tensor]
        if tapped:
            live = tapped(image, candidates_dev[idx])
            if marks is not None:
                marks.append(clock.mark())
            # The hypercolumns as one leaf, and the colours as their own (the palette's
            # gradient then skips the (N,D) matrix): the loss's gradient arrives as one (N,D)
            # tensor whose column blocks go to the taps as they are, with no concatenation
            # backward and no copies into per-layer leaves.
            with torch.no_grad():
                a = torch.cat(live, dim=1)
            a.requires_grad_(True)
            rgb = live[0].detach().requires_grad_(True)
            roots = list(live)
        else:
            maps = extractor(image)
            if marks is not None:
                marks.append(clock.mark())
            leaves = [m.detach().requires_grad_(True) for m in maps]
            columns = read_bilinear_columns(leaves, strides, candidates_dev[idx], read)
            roots = list(maps)
            a = torch.cat(columns, dim=1)
            rgb = columns[0]
        with torch.no_grad():
            if content_sim is not None:
                target = target_from_similarity_(content_sim[crow][:, crow])
            else:
                target = self_similarity(content_unit[crow])
        terms = strotss_loss(a, target, targets, step.alpha,
                             point_regions[idx] if point_regions is not None else None,
                             rgb=rgb, scratch=scratch)
        terms.total.backward()
        extra = pixel_loss(image) if pixel_loss is not None else None
        if marks is not None:
            marks.append(clock.mark())
        # Second half of the backward pass: through VGG into the pyramid.
        grads: list[torch.Tensor | None]
        if tapped:
            grad_a = a.grad
            assert grad_a is not None and rgb.grad is not None
            grad_a[:, :rgb.shape[1]] += rgb.grad
            grads = list(torch.split(grad_a, [c.shape[1] for c in live], dim=1))
        else:
            grads = [leaf.grad for leaf in leaves]
        if extra is not None:
            roots.append(extra)
            grads.append(None)
            terms = replace(terms, total=terms.total.detach() + extra.detach(),
                            temporal=extra.detach())
        torch.autograd.backward(roots, grads)
        if marks is not None:
            marks.append(clock.mark())
        optimiser.step()
        return terms

    bar = tqdm(total=step.iters, desc=desc, disable=not progress, leave=False, unit="it")
    loop_start = time.perf_counter()
    # A graph is captured on a side stream, and the eager steps before it run there too, so
    # the libraries' per-stream workspaces exist before the capture.
    side = _side_stream(device) if graph else None
    if side is not None:
        side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
        run = _loop(body, idx_all, crow_all, optimiser, step.iters, graph, early_stop,
                    progress, bar)
    if side is not None:
        torch.cuda.current_stream(device).wait_stream(side)
    final, done, initial, spans, graphed = run
    clock.sync()
    loop_seconds = time.perf_counter() - loop_start
    bar.close()
    with torch.no_grad():
        result = image_of()
    # Captured steps have no clock marks: their time is in loop_seconds only.
    vgg = sum(clock.span(m[0], m[1]) + clock.span(m[2], m[3]) for m in spans)
    loss = sum(clock.span(m[1], m[2]) for m in spans)
    report = ScaleReport(long_side=step.long_side, height=h, width=w, iterations=done,
                         seconds=time.perf_counter() - start, loop_seconds=loop_seconds,
                         vgg_seconds=vgg, loss_seconds=loss,
                         losses=final, initial_losses=initial, timed_iterations=len(spans), graphed=graphed)
    return result, report
