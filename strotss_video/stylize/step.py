"""One scale's optimisation step: the points it samples, the pyramid it optimises, and the
step itself (forward, loss, backward, update) as a capturable callable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ..config import StrotssConfig
from ..features.sampling import candidate_grid, read_bilinear, read_bilinear_columns, subset
from ..features.vgg import FeatureExtractor
from ..losses import LossTerms, StyleTarget, strotss_loss
from ..losses.content import self_similarity, target_from_similarity_
from ..losses.ops import symmetric_product, unit_rows
from ..tensorops import resize, resize_labels
from .guidance import Guidance
from .loop import Clock
from .pyramid import decompose, level_maps, recompose
from .schedule import ScaleStep

PixelLoss = Callable[[torch.Tensor], torch.Tensor]
"""A weighted scalar loss of the whole image (1,3,h,w), e.g. the temporal term."""

Tap = Callable[[torch.Tensor, torch.Tensor], list[torch.Tensor]]
"""An extractor's ``columns(image, points)``: the hypercolumns (per layer, (N,C_k)) read as
it runs."""

PRECOMPUTE_SIMILARITY_MAX = 8192
"""Candidate count up to which the content's full similarity matrix (at most 256 MiB in
float32) may be precomputed."""


def precompute_similarity(rows: int, points: int, iters: int) -> bool:
    """Whether one (rows x rows) similarity product costs no more than ``iters`` per-step
    (points x points) products: a scale's candidates outnumber its points about 4-6 to 1, so
    it pays from ~30 steps on (the default schedules run 40-250)."""
    return rows <= PRECOMPUTE_SIMILARITY_MAX and iters * min(points, rows) ** 2 >= rows ** 2


@dataclass(frozen=True)
class ScalePoints:
    """The constant inputs of one scale's steps, on the working device."""

    candidates: torch.Tensor
    """(C,2) long (x, y): the points steps may sample."""
    regions: torch.Tensor | None
    """(C,) long: each candidate's guidance region (None without guidance)."""
    idx_all: torch.Tensor
    """(iters,N) long: step ``it`` samples candidates ``idx_all[it]``."""
    crow_all: torch.Tensor
    """(iters,N) long: those candidates' rows in ``content_unit``."""
    content_unit: torch.Tensor
    """(R,D) the content's unit hypercolumns at the candidates some step samples."""
    content_sim: torch.Tensor | None
    """(R,R) their pairwise similarities, when precomputing them is less work."""

    def content_target(self, crow: torch.Tensor) -> torch.Tensor:
        """The content's self-similarity (N,N) at content rows ``crow`` (N,)."""
        if self.content_sim is not None:
            return target_from_similarity_(self.content_sim[crow][:, crow])
        return self_similarity(self.content_unit[crow])


def sample_points(content: torch.Tensor, step: ScaleStep, cfg: StrotssConfig,
                  extractor: FeatureExtractor, gen: torch.Generator,
                  guidance: Guidance | None) -> ScalePoints:
    """Draw the candidates and every step's points of one scale from ``gen`` (the same draws,
    in the same order, as one per step) and read the content (1,3,h,w) there."""
    h, w = content.shape[-2:]
    device = content.device
    mask = labels = None
    if guidance is not None:
        labels = resize_labels(guidance.content_labels, (h, w))
        mask = labels >= 0
    candidates = candidate_grid(h, w, cfg.grid_side, gen, mask)
    if candidates.shape[0] == 0:
        raise ValueError(f"no sample points at {w}x{h}")
    regions = labels[candidates[:, 1], candidates[:, 0]].to(device) if labels is not None \
        else None
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
        content_unit = unit_rows(read_bilinear(extractor(content), extractor.strides, read_at,
                                               "grid_sample"))
        # When it is less work than a product per step, all the pairwise similarities are
        # computed once and each step's target is a gather.
        content_sim = symmetric_product(content_unit, rows=True, exact=False) \
            if precompute_similarity(content_unit.shape[0], cfg.output_points, step.iters) \
            else None
    candidates_dev = candidates.to(device)
    # Every step's point indices on the device at once: no host-to-device copy per step.
    order = torch.stack(subsets) if subsets else torch.zeros(0, 0, dtype=torch.long)
    idx_all = order.to(device)
    crow_all = rows[order].to(device) if rows is not None else idx_all
    return ScalePoints(candidates_dev, regions, idx_all, crow_all, content_unit, content_sim)


@dataclass
class PyramidImage:
    """The optimised image (1,3,h,w) as Laplacian-pyramid leaves, fine to coarse, each divided
    by its level's learning-rate map when there is one."""

    levels: list[torch.Tensor]
    rates: list[torch.Tensor] | None

    @classmethod
    def of(cls, canvas: torch.Tensor, levels: int, rate: torch.Tensor | None) -> PyramidImage:
        """Leaves holding ``canvas`` (1,3,h,w); ``rate`` (1,1,H,W) > 0 is resized to (h,w)."""
        h, w = canvas.shape[-2:]
        bands = decompose(canvas.detach(), levels)
        rates = level_maps(resize(rate.to(canvas.device), (h, w)), bands) \
            if rate is not None else None
        if rates is not None:
            bands = [b / r for b, r in zip(bands, rates)]
        return cls([b.clone().requires_grad_(True) for b in bands], rates)

    def image(self) -> torch.Tensor:
        """The image (1,3,h,w) the pyramid holds."""
        if self.rates is None:
            return recompose(self.levels)
        return recompose([p * r for p, r in zip(self.levels, self.rates)])


@dataclass
class _Columns:
    """One step's hypercolumns ``a`` (N,D), leaf of the loss's graph, and how their gradient
    goes on into the extractor."""

    a: torch.Tensor
    rgb: torch.Tensor
    """(N,3) the colours: columns of ``a``, or (tapped) a leaf of their own."""
    roots: list[torch.Tensor]
    """The extractor's outputs the second half of the backward pass starts from."""
    leaves: list[torch.Tensor] | None
    """Per map, the detached leaf the columns were read from (None when tapped)."""

    def extractor_grads(self) -> list[torch.Tensor | None]:
        """The gradients of ``roots``, once the loss's backward pass has run."""
        if self.leaves is not None:
            return [leaf.grad for leaf in self.leaves]
        grad_a = self.a.grad
        assert grad_a is not None and self.rgb.grad is not None
        grad_a[:, :self.rgb.shape[1]] += self.rgb.grad
        return list(torch.split(grad_a, [c.shape[1] for c in self.roots], dim=1))


def _tapped_columns(live: list[torch.Tensor]) -> _Columns:
    # The hypercolumns as one leaf, and the colours as their own (the palette's gradient then
    # skips the (N,D) matrix): the loss's gradient arrives as one (N,D) tensor whose column
    # blocks go to the taps as they are, with no concatenation backward and no copies into
    # per-layer leaves.
    with torch.no_grad():
        a = torch.cat(live, dim=1)
    a.requires_grad_(True)
    rgb = live[0].detach().requires_grad_(True)
    return _Columns(a, rgb, list(live), None)


@dataclass
class Step:
    """One optimisation step at points ``idx`` (N,) (content rows ``crow``): forward, STROTSS
    loss (plus ``pixel_loss``), backward into the pyramid, optimiser update. No host sync, so
    it can be captured as a CUDA graph; ``marks`` collects four clock marks when given."""

    points: ScalePoints
    pyramid: PyramidImage
    targets: list[StyleTarget]
    alpha: float
    extractor: FeatureExtractor
    optimiser: torch.optim.Optimizer
    clock: Clock
    pixel_loss: PixelLoss | None
    read: str | None
    """How the returned maps are read (see :func:`read_bilinear_columns`)."""
    tap: Tap | None
    """The extractor's own reads as it runs, used instead of its returned maps when given."""
    scratch: torch.Tensor | None
    """A buffer for the relaxed EMDs' cost matrices, reused by every step."""

    def _mark(self, marks: list[object] | None) -> None:
        if marks is not None:
            marks.append(self.clock.mark())

    def __call__(self, idx: torch.Tensor, crow: torch.Tensor,
                 marks: list[object] | None) -> LossTerms:
        image = self.pyramid.image()
        self._mark(marks)
        columns: _Columns
        if self.tap is not None:
            live = self.tap(image, self.points.candidates[idx])
            self._mark(marks)
            columns = _tapped_columns(live)
        else:
            maps = self.extractor(image)
            self._mark(marks)
            leaves = [m.detach().requires_grad_(True) for m in maps]
            read = read_bilinear_columns(leaves, self.extractor.strides,
                                         self.points.candidates[idx], self.read)
            columns = _Columns(torch.cat(read, dim=1), read[0], list(maps), leaves)
        with torch.no_grad():
            target = self.points.content_target(crow)
        regions = self.points.regions[idx] if self.points.regions is not None else None
        terms = strotss_loss(columns.a, target, self.targets, self.alpha, regions,
                             rgb=columns.rgb, scratch=self.scratch)
        terms.total.backward()
        extra = self.pixel_loss(image) if self.pixel_loss is not None else None
        self._mark(marks)
        # Second half of the backward pass: through the extractor into the pyramid.
        roots, grads = list(columns.roots), columns.extractor_grads()
        if extra is not None:
            roots.append(extra)
            grads.append(None)
            terms = replace(terms, total=terms.total.detach() + extra.detach(),
                            temporal=extra.detach())
        torch.autograd.backward(roots, grads)
        self._mark(marks)
        self.optimiser.step()
        return terms
