"""The temporal chain of one shot: cold first frame, then flow-warped warm starts.

Only a few frames are ever held (the previous input and output, plus ``long_term`` older ones),
so memory does not grow with the shot's length. The chain's state round-trips through plain
arrays so a work directory can resume it exactly."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from ..config import Config
from ..features.vgg import FeatureExtractor
from ..flow.base import FlowEstimator
from ..stylize.optimize import EarlyStop, StyleBank, final_scale_plan, stylize
from ..temporal.coherence import (
    TemporalTerm,
    long_term_weights,
    neighbour_flow,
    warm_masks,
    warm_start,
)
from ..tensorops import scaled_size


@dataclass
class FrameRecord:
    """One line of the ``--stats`` frame list."""

    index: int
    pts: int
    kind: str
    iterations: int
    seconds: float
    vgg_seconds: float
    flow_seconds: float
    losses: dict[str, float]
    reliable: float | None
    cold_reason: str | None = None
    """Why a cold frame was cold: "shot start", "flow collapsed" or "temporal off"."""
    loss_seconds: float = 0.0
    scales: list[list[float]] | None = None
    """Per scale: [long side, iterations, loop seconds] (the optimisation loops alone)."""
    io_seconds: float = 0.0
    """Decoding this frame and committing it to the work directory (filled by the shot task)."""
    flow_ahead_seconds: float = 0.0
    """Input flows computed ahead in the decode thread, overlapped with the previous frame's
    optimisation (filled by the shot task); ``flow_seconds`` is the rest (masks, warps)."""
    gpu_mib: list[float] | None = None
    """On CUDA: [memory allocated after the frame, peak allocated so far] in MiB, so that
    growth from frame to frame and one-off peaks (e.g. during the first frame) can be told
    apart."""


def _gpu_mib(device: torch.device) -> list[float] | None:
    if device.type != "cuda":
        return None
    return [round(torch.cuda.memory_allocated(device) / 2**20, 1),
            round(torch.cuda.max_memory_allocated(device) / 2**20, 1)]


def processing_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """(H, W) with long side ``max_size`` (rounded down to even), both even for yuv420p."""
    h, w = scaled_size(height, width, max_size - max_size % 2)
    return max(2, h - h % 2), max(2, w - w % 2)


def to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 RGB (H,W,3) -> float32 (1,3,H,W) in [0,1] on ``device``."""
    return torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) in [0,1] -> uint8 RGB (H,W,3) on the CPU."""
    return image[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


Flows = dict[int, tuple[torch.Tensor, torch.Tensor]]
"""Input flows per distance d: (forward: frame-d -> frame, backward: frame -> frame-d),
each (1,2,h,w)."""

F = TypeVar("F")


def flows_ahead(frames: Iterable[F], image_of: Callable[[F], torch.Tensor],
                flow: FlowEstimator, distances: Sequence[int],
                history: Sequence[torch.Tensor] = ()) -> Iterator[tuple[F, Flows, float]]:
    """Each frame with the flows between its input and the inputs ``d`` frames back, and the
    seconds they took.

    Input flows do not depend on the stylised frames, so this generator can run in the decode
    thread (e.g. under :class:`~.overlap.Prefetch`) while the current frame is optimised.
    ``history``: the inputs already in the chain, newest first (after a resume). The chain
    holds consecutive frames of one shot, so its frame ``d`` back is always this ``d`` back
    (after a restart it holds fewer, and the extra flows go unused)."""
    past: deque[torch.Tensor] = deque(history, maxlen=max(distances))
    for item in frames:
        image = image_of(item)
        start = time.perf_counter()
        flows: Flows = {}
        for d in distances:
            if d <= len(past):
                flows[d] = (flow(past[d - 1], image), flow(image, past[d - 1]))
        past.appendleft(image)
        yield item, flows, time.perf_counter() - start


class _Chain:
    """The temporal chain's memory: the last few input/output frames of the current shot."""

    def __init__(self, depth: int) -> None:
        self.inputs: deque[torch.Tensor] = deque(maxlen=depth)
        self.outputs: deque[torch.Tensor] = deque(maxlen=depth)

    def push(self, content: torch.Tensor, output: torch.Tensor) -> None:
        self.inputs.appendleft(content)
        self.outputs.appendleft(output)

    def past(self, distance: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(input, output) ``distance`` frames back (1 = previous), if held."""
        if distance > len(self.inputs):
            return None
        return self.inputs[distance - 1], self.outputs[distance - 1]

    def __bool__(self) -> bool:
        return bool(self.inputs)


class VideoStylizer:
    """Per-frame logic of the temporal chain, independent of decoding and encoding."""

    def __init__(self, config: Config, bank: StyleBank, extractor: FeatureExtractor,
                 flow: FlowEstimator | None) -> None:
        self.config = config
        self.bank = bank
        self.extractor = extractor
        self.flow = flow
        self.temporal = config.temporal
        self.chain = _Chain(max((1, *config.temporal.long_term)))

    def reset(self) -> None:
        """Start a new chain (a new shot): the next frame is cold."""
        self.chain = _Chain(self.chain.inputs.maxlen or 1)

    def state(self) -> dict[str, np.ndarray]:
        """The chain as arrays: ``in_k`` uint8 (3,h,w) inputs, ``out_k`` float32 (1,3,h,w)."""
        arrays: dict[str, np.ndarray] = {}
        for k, (inp, out) in enumerate(zip(self.chain.inputs, self.chain.outputs)):
            # Inputs are decoded uint8 / 255, so uint8 stores them exactly.
            arrays[f"in_{k}"] = inp[0].mul(255).round().to(torch.uint8).cpu().numpy()
            arrays[f"out_{k}"] = out.detach().float().cpu().numpy()
        return arrays

    def restore(self, arrays: dict[str, np.ndarray], device: torch.device) -> None:
        """Rebuild the chain saved by :meth:`state` (newest first)."""
        self.reset()
        depth = sum(1 for k in arrays if k.startswith("in_"))
        for k in reversed(range(depth)):
            inp = torch.from_numpy(arrays[f"in_{k}"]).to(device)[None].float().div_(255.0)
            out = torch.from_numpy(arrays[f"out_{k}"]).to(device)
            self.chain.push(inp, out)

    @property
    def flow_distances(self) -> tuple[int, ...]:
        """How many frames back the temporal term looks (1 = the previous frame)."""
        return tuple(sorted({1, *self.temporal.long_term}))

    def _warm_inputs(self, content: torch.Tensor, flows: Flows | None = None
                     ) -> tuple[torch.Tensor, float, TemporalTerm | None, torch.Tensor]:
        """Warm start, reliable fraction (previous frame), temporal term and the previous
        frame's mask (1,1,h,w) for ``content``; no term when the previous frame's flow is below
        the reliable floor (a restart)."""
        warped, masks, init, reliable = [], [], None, 0.0
        smoothing = None if self.temporal.mask_smoothing == "none" else self.temporal.mask_smoothing
        for distance in self.flow_distances:
            past = self.chain.past(distance)
            if past is None:
                continue
            past_input, past_output = past
            if flows is not None and distance in flows:
                forward, backward = (f.to(content.device) for f in flows[distance])
            else:
                forward = self.flow(past_input, content)  # type: ignore[misc]
                backward = self.flow(content, past_input)  # type: ignore[misc]
            fill = self.temporal.fill
            # With "checked", vectors the colour check vouches for are trusted like reliable
            # ones: kept by the warm start and held by the temporal term.
            mask, flow_reliable = warm_masks(past_input, content, backward, forward, smoothing,
                                             checked=fill == "checked")
            if fill == "checked":
                if self.temporal.neighbour_flow:
                    backward, mask = neighbour_flow(backward, mask, past_input, content)
                fill = "blur"
            start_image, warped_output = warm_start(past_output, backward, mask, content,
                                                    fill, self.bank.mean_color)
            if init is None:
                init, reliable = start_image, float(flow_reliable.mean())
                if reliable < self.config.shots.reliable_floor:
                    return init, reliable, None, mask  # the chain restarts: nothing else matters
            warped.append(warped_output)
            masks.append(mask)
        term = TemporalTerm(tuple(warped), tuple(long_term_weights(masks)), self.temporal.weight)
        assert init is not None
        return init, reliable, term, masks[0]

    def _repaint_rate(self, mask: torch.Tensor) -> torch.Tensor | None:
        """Per-pixel learning-rate multiplier (1,1,h,w) of a warm frame: ``repaint_rate``
        where ``mask`` is 0 (the fill, to be repainted), 1 where it is 1; None when uniform."""
        if self.temporal.repaint_rate == 1.0:
            return None
        return 1.0 + (self.temporal.repaint_rate - 1.0) * (1.0 - mask)

    def frame(self, content: torch.Tensor, index: int, flows: Flows | None = None
              ) -> tuple[torch.Tensor, FrameRecord]:
        """Stylise one frame (1,3,h,w); returns the output and its record (pts filled later).

        ``flows`` (from :func:`flows_ahead`, optional) are the input flows to the frames
        ``distance`` back, computed ahead in another thread; missing ones are computed here.

        Cold when the chain is empty (a shot starts), when temporal coherence is off, or when
        the flow from the previous frame is mostly unreliable (a missed cut, a whip-pan)."""
        start = time.perf_counter()
        seed = self.config.runtime.seed * 1_000_003 + index
        cfg = self.config.strotss
        flow_seconds = 0.0
        reliable: float | None = None
        cold_reason: str | None = None
        result = None
        if not self.temporal.enabled:
            cold_reason = "temporal off"
        elif not self.chain:
            cold_reason = "shot start"
        else:
            t0 = time.perf_counter()
            init, reliable, term, mask = self._warm_inputs(content, flows)
            flow_seconds = time.perf_counter() - t0
            if term is None:
                cold_reason = "flow collapsed"
                self.reset()
            else:
                early = EarlyStop(self.temporal.early_stop_tol, self.temporal.early_stop_window) \
                    if self.temporal.early_stop_tol > 0 else None
                iters = max(1, round(self.temporal.warm_iters *
                                     (1 + self.temporal.adaptive_iters * (1 - reliable))))
                result = stylize(content, self.bank, self.extractor, cfg,
                                 plan=final_scale_plan(cfg, iters, self.temporal.warm_lr),
                                 init=init,
                                 seed=seed, progress=False, pixel_loss=term, early_stop=early,
                                 graphs=self.config.runtime.cuda_graphs,
                                 rate=self._repaint_rate(mask),
                                 autotune=self.config.runtime.cudnn_benchmark)
        if result is None:
            result = stylize(content, self.bank, self.extractor, cfg, seed=seed, progress=False,
                             graphs=self.config.runtime.cuda_graphs,
                             autotune=self.config.runtime.cudnn_benchmark)
        output = result.image
        self.chain.push(content, output)
        record = FrameRecord(index=index, pts=0, kind="cold" if cold_reason else "warm",
                             iterations=result.iterations,
                             seconds=time.perf_counter() - start, vgg_seconds=result.vgg_seconds,
                             flow_seconds=flow_seconds, losses=result.scales[-1].losses,
                             reliable=reliable, cold_reason=cold_reason,
                             loss_seconds=result.loss_seconds,
                             scales=[[s.long_side, s.iterations, s.loop_seconds]
                                     for s in result.scales],
                             gpu_mib=_gpu_mib(output.device))
        return output, record
