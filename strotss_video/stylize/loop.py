"""The optimisation loop of one scale: eager steps with clock marks, then (on CUDA) the same
step replayed as a CUDA graph, and the early-stop rule."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..errors import check_stop
from ..losses import LossTerms

StepBody = Callable[[torch.Tensor, torch.Tensor, list[object] | None], LossTerms]
"""One step at point indices ``idx`` (N,) and content rows ``crow`` (N,); collects clock marks
into the list when given one. No host sync, so it can be captured."""


class Clock:
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


@dataclass(frozen=True)
class EarlyStop:
    """Stop when the mean loss of the last ``window`` steps differs from the previous
    window's by less than ``tol`` (relative). Checked once per window (one sync)."""

    tol: float
    window: int


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


def side_stream(device: torch.device) -> torch.cuda.Stream:
    """One capture stream per device for the whole process: the allocator reuses a pool's
    freed blocks only for the stream they were allocated on, so a new stream per capture
    made every capture allocate afresh (measured: 34 GiB after 12 frames at 512 px)."""
    if device not in _SIDE_STREAMS:
        _SIDE_STREAMS[device] = torch.cuda.Stream(device)
    return _SIDE_STREAMS[device]


_GRAPHS_FAILED: list[str] = []
"""Set once a capture fails in this process: later scales run eager steps without trying."""


def _capture(body: StepBody, idx_all: torch.Tensor, crow_all: torch.Tensor,
             optimiser: torch.optim.Optimizer) -> Callable[[int], LossTerms] | None:
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
        graph.capture_begin(pool=None if previous is None else previous.pool(),
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
                      "(--cuda-graphs off skips the attempt)", stacklevel=2)
        return None
    _LAST_GRAPH[device] = graph

    def replay(it: int) -> LossTerms:
        idx_buf.copy_(idx_all[it])
        crow_buf.copy_(crow_all[it])
        graph.replay()
        return static

    return replay


@dataclass
class LoopResult:
    """What :func:`run_steps` did."""

    final: dict[str, float]
    """Loss terms at the last step."""
    done: int
    """Steps run (fewer than asked when stopped early)."""
    initial: dict[str, float]
    """Loss terms at the first step."""
    spans: list[list[object]]
    """Four clock marks per eager step (replayed steps have none)."""
    graphed: bool


def run_steps(body: StepBody, idx_all: torch.Tensor, crow_all: torch.Tensor,
              optimiser: torch.optim.Optimizer, iters: int, graph: bool,
              early_stop: EarlyStop | None, progress: bool, bar: tqdm) -> LoopResult:
    """Run ``iters`` steps, step ``it`` at ``idx_all[it]`` (iters,N) / ``crow_all[it]``: eager
    (with clock marks), then graph replays once captured. The host reads loss values only at
    the first step, for the progress bar, and once per early-stop window."""
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
    return LoopResult(final, done, initial, spans, replay is not None)
