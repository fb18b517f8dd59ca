"""Optical flow, warping and the reliability mask for temporally coherent video stylisation.

Flows are torch float32 ``(B,2,H,W)`` in pixels (channel 0 = u/x, 1 = v/y) with
``first(x) ≈ second(x + flow(x))``. OpenCV lives here (DIS, Farneback) and in ``io/`` only."""

from __future__ import annotations

import os

import torch

from ..errors import UsageError
from .base import FlowEstimator, estimate_pair
from .consistency import occlusion_mask, reliability
from .flo import read_flo, write_flo
from .warp import in_frame, resize_flow, warp, warp_with_validity

__all__ = [
    "FLOW_NAMES", "FlowEstimator", "estimate_pair", "in_frame", "make_flow", "occlusion_mask",
    "read_flo", "reliability", "resize_flow", "warp", "warp_with_validity", "write_flo",
]

FLOW_NAMES = ("dis", "raft", "farneback")


def make_flow(name: str, *, preset: str = "medium", device: str | torch.device = "cpu",
              raft_weights: str | os.PathLike[str] | None = None) -> FlowEstimator:
    """A flow estimator by name: "dis" (``preset`` = ultrafast|fast|medium), "raft" (raft_large
    on ``device``, local weights only) or "farneback". DIS and Farneback run on the CPU."""
    if name == "dis":
        from .dis import DISFlow

        return DISFlow(preset)
    if name == "raft":
        from .raft import RAFTFlow

        return RAFTFlow("large", raft_weights, device)
    if name == "farneback":
        from .farneback import FarnebackFlow

        return FarnebackFlow()
    raise UsageError(f"unknown flow method {name!r}; use one of {', '.join(FLOW_NAMES)}")
