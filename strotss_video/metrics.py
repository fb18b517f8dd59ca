"""Temporal-stability metrics for stylised video: Lai et al.'s warping error.

    E_warp = 1/(T-1) Σ_t  Σ M_t ⊙ (V_t − W(V_{t+1}))²  /  Σ M_t

* ``V_t`` RGB in [0,1], ``(1,3,H,W)``; squared differences are summed over the 3 channels and
  the denominator counts channels too (``3 · Σ_pixels M_t``), i.e. the value is a masked mean
  squared error per channel value.
* ``W(V_{t+1})`` = bilinear backward warp of frame t+1 with the forward flow t -> t+1
  (``strotss_video.flow.warp``) — the flow is computed on the *input* video (``reference``),
  never on the frames being evaluated, so every output of one input is measured with the same
  flows and masks.
* ``M_t`` = 1 − occlusion, binary and unsmoothed, from the forward–backward checker of
  ``strotss_video.flow.occlusion_mask`` with Ruder's/Lai's constants, called for frame t as
  ``occlusion_mask(flow(t->t+1), flow(t+1->t))``.

Mask choice (reported as :attr:`WarpingError.mask`, e.g. ``"occluded+out_of_frame+motion_boundary"``):
the spec says "M_t = 1 − occlusion with the checker above", and the checker above has three
tests, so the default excludes pixels that fail *any* of them — forward–backward occlusion,
out of frame (x + f(x) outside the image) and motion boundary. ``motion_boundaries=False``
keeps only occlusion + out of frame. Out of frame is always included: ``warp`` blends in zeros
outside the image, so those pixels would otherwise count a meaningless difference (Lai's code
clamps at the border instead; excluding them is the cleaner equivalent).

A pair whose mask is empty (everything unreliable, e.g. a shot cut) has no defined value; it is
reported as NaN and left out of the mean (:attr:`WarpingError.empty_pairs` counts them).

Streaming: only two frames of each video (and one flow pair) are held at a time, so long
videos at full size are fine. Pure torch; decoding goes through ``strotss_video.io.reader`` and
flow through ``strotss_video.flow``."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch

from .flow import FlowEstimator, make_flow, occlusion_mask, warp

__all__ = ["WarpingError", "WarpingMeter", "mask_name", "video_frames", "warping_error",
           "warping_errors"]

_CHANNELS = 3


def mask_name(motion_boundaries: bool = True) -> str:
    """The tests that zero ``M_t``, joined by '+' (what the JSON output reports as "mask")."""
    return "occluded+out_of_frame" + ("+motion_boundary" if motion_boundaries else "")


@dataclass(frozen=True)
class WarpingError:
    """Warping error of one video against an input.

    ``per_frame[t]`` is E for the pair (t, t+1), t = 0..T-2 (NaN where the mask was empty);
    ``coverage[t]`` the fraction of pixels with M_t = 1 (the same for every video measured
    against one input); ``mean`` the average of the finite ``per_frame`` values (NaN if none)."""

    per_frame: list[float]
    coverage: list[float]
    mask: str
    mean: float = field(init=False)
    empty_pairs: int = field(init=False)

    def __post_init__(self) -> None:
        finite = [v for v in self.per_frame if math.isfinite(v)]
        object.__setattr__(self, "mean", math.fsum(finite) / len(finite) if finite else math.nan)
        object.__setattr__(self, "empty_pairs", len(self.per_frame) - len(finite))

    @property
    def pairs(self) -> int:
        return len(self.per_frame)

    @property
    def frames(self) -> int:
        return len(self.per_frame) + 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None."""
        def clean(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {"mean": clean(self.mean), "per_frame": [clean(v) for v in self.per_frame],
                "empty_pairs": self.empty_pairs}


# --------------------------------------------------------------------------- frames


def _as_frame(image: torch.Tensor, what: str, index: int) -> torch.Tensor:
    """(1,3,H,W) or (3,H,W) float in [0,1] (or uint8 0..255) -> (1,3,H,W) float32."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{what} frame {index} must be a torch.Tensor, not {type(image).__name__}")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != _CHANNELS:
        raise ValueError(f"{what} frame {index} must be (1,3,H,W) RGB, got {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image.float().div_(255.0)
    return image.detach().float()


def video_frames(path: str | os.PathLike[str], start: int | Fraction | None = None,
                 end: int | Fraction | None = None, *, size: tuple[int, int] | None = None,
                 device: str | torch.device = "cpu") -> Iterator[torch.Tensor]:
    """Decode ``path`` (frames ``[start, end)``, optionally scaled to ``size=(H, W)``) as a
    stream of (1,3,H,W) float32 RGB tensors in [0,1]: the input of :func:`warping_error`."""
    from .io.reader import read_frames  # PyAV lives in io/; imported on use

    for frame in read_frames(path, start, end, size=size):
        yield torch.from_numpy(frame.image).to(device).permute(2, 0, 1)[None].float().div_(255.0)


# --------------------------------------------------------------------------- core


def _pair_error(first: torch.Tensor, second: torch.Tensor, flow_fw: torch.Tensor,
                mask: torch.Tensor, count: float) -> float:
    """Σ M ⊙ (V_t − W(V_{t+1}))² / (3 Σ M) for one pair; NaN for an empty mask."""
    if count == 0:
        return math.nan
    second = second.to(flow_fw.device)
    diff = (first.to(flow_fw.device) - warp(second, flow_fw)).square_()
    total = (diff * mask).sum(dtype=torch.float64).item()
    return total / (_CHANNELS * count)


def _streams(named: Mapping[str, Iterable[torch.Tensor]]) -> Iterator[dict[str, torch.Tensor]]:
    """Zip several frame streams, raising ValueError if they differ in length or frame size."""
    iters = {name: iter(frames) for name, frames in named.items()}
    index = 0
    while True:
        row: dict[str, torch.Tensor] = {}
        for name, it in iters.items():
            try:
                row[name] = _as_frame(next(it), name, index)
            except StopIteration:
                pass
        if not row:
            return
        if len(row) != len(iters):
            ended = sorted(set(iters) - set(row))
            raise ValueError(f"videos differ in length: {', '.join(ended)} ended after {index} "
                             f"frames while {', '.join(sorted(row))} went on; evaluate the same "
                             "frame range of the input that the outputs were made from")
        shapes = {name: tuple(t.shape[-2:]) for name, t in row.items()}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"frame {index} differs in size between videos: {shapes}; decode "
                             "the input at the outputs' size")
        yield row
        index += 1


def _resolve_flow(flow: FlowEstimator | str) -> FlowEstimator:
    return make_flow(flow) if isinstance(flow, str) else flow


class WarpingMeter:
    """Lai's warping error accumulated frame by frame, for several videos against one input.

    Feed one row per frame with :meth:`add` (``{"input": (1,3,H,W), name: (1,3,H,W), ...}``,
    the same names every time); each input pair (t, t+1) costs two flow fields, shared by all
    videos. Holds the previous row only."""

    def __init__(self, flow: FlowEstimator | str = "farneback", *,
                 motion_boundaries: bool = True) -> None:
        self.flow = _resolve_flow(flow)
        self.motion_boundaries = motion_boundaries
        self._values: dict[str, list[float]] = {}
        self._coverage: list[float] = []
        self._prev: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def add(self, row: Mapping[str, torch.Tensor]) -> None:
        """Take the next frame of every video (keys as in the first row, ``"input"`` among them)."""
        if self._prev is None:
            self._values = {k: [] for k in row}
        elif set(row) != set(self._prev):
            raise ValueError(f"frame rows changed from {sorted(self._prev)} to {sorted(row)}")
        if self._prev is not None:
            a, b = self._prev["input"], row["input"]
            flow_fw = self.flow(a, b)  # t -> t+1: warps frame t+1 onto frame t
            flow_bw = self.flow(b, a)  # t+1 -> t: only for the consistency check
            mask = occlusion_mask(flow_fw, flow_bw, motion_boundaries=self.motion_boundaries,
                                  out_of_frame=True)
            count = mask.sum(dtype=torch.float64).item()
            self._coverage.append(count / mask[0, 0].numel())
            for key, values in self._values.items():
                values.append(_pair_error(self._prev[key], row[key], flow_fw, mask, count))
        self._prev = dict(row)

    def results(self) -> dict[str, WarpingError]:
        """``{"input": ..., name: ...}`` in the first row's order; ValueError before 2 frames."""
        if not self._coverage:
            got = 0 if self._prev is None else 1
            raise ValueError(f"warping error needs at least 2 frames, got {got}")
        name = mask_name(self.motion_boundaries)
        return {k: WarpingError(per_frame=list(v), coverage=list(self._coverage), mask=name)
                for k, v in self._values.items()}


def warping_errors(input_frames: Iterable[torch.Tensor],
                   outputs: Mapping[str, Iterable[torch.Tensor]], *,
                   flow: FlowEstimator | str = "farneback",
                   motion_boundaries: bool = True) -> dict[str, WarpingError]:
    """Warping error of the input and of every output in ONE pass over the input.

    ``input_frames`` and each ``outputs[name]`` are iterables of (1,3,H,W) RGB frames in [0,1]
    (float, or uint8 0..255), all of the same length and size. For each input pair (t, t+1)
    the flows t->t+1 and t+1->t are computed once with ``flow`` (an estimator or a
    ``make_flow`` name; default Farneback, independent of the stylisation's DIS) and reused for
    every video: 2·(T−1) flow calls whatever the number of outputs. Returns
    ``{"input": ..., name: ...}`` in that order. Holds two frames per video at a time."""
    if "input" in outputs:
        raise ValueError("'input' is reserved for the input video; rename that output")
    meter = WarpingMeter(flow, motion_boundaries=motion_boundaries)
    for row in _streams({"input": input_frames, **outputs}):
        meter.add(row)
    return meter.results()


def warping_error(frames: Iterable[torch.Tensor],
                  reference: Iterable[torch.Tensor] | None = None, *,
                  flow: FlowEstimator | str = "farneback",
                  motion_boundaries: bool = True) -> WarpingError:
    """Lai et al.'s warping error of ``frames`` (see the module docstring).

    ``reference`` is the input video the flows and masks are computed on (same length and
    frame size as ``frames``); ``None`` means ``frames`` is itself the input. ``flow`` is a
    :class:`~strotss_video.flow.FlowEstimator` or a ``make_flow`` name. For several outputs of
    one input use :func:`warping_errors`, which computes the flows only once."""
    if reference is None:
        return warping_errors(frames, {}, flow=flow, motion_boundaries=motion_boundaries)["input"]
    return warping_errors(reference, {"output": frames}, flow=flow,
                          motion_boundaries=motion_boundaries)["output"]
