"""OpenCV Farneback flow: a second, independent CPU method (used to evaluate warping error
with a flow different from the one the stylisation used)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from .base import check_pair, flow_from_numpy, to_gray_u8

__all__ = ["FarnebackFlow"]


class FarnebackFlow:
    """Farneback polynomial-expansion flow with parameters for real footage: a 5-level
    pyramid so motions of tens of pixels are reachable (OpenCV stops early on small frames),
    a 21 px box window and poly_n 5 / sigma 1.1. Chosen on Sintel over levels 3-7, windows
    15-31, box vs Gaussian window and poly_n 5 vs 7 (docs/flow.md); still well behind DIS on
    large motion, acceptable for its role as an independent evaluation flow."""

    name = "farneback"

    def __init__(self, *, levels: int = 5, winsize: int = 21, iterations: int = 5,
                 poly_n: int = 5, poly_sigma: float = 1.1) -> None:
        self.params: dict[str, Any] = dict(pyr_scale=0.5, levels=levels, winsize=winsize, iterations=iterations,
                           poly_n=poly_n, poly_sigma=poly_sigma, flags=0)

    def __call__(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W), (B,3,H,W) RGB [0,1] -> (B,2,H,W) float32 pixels, on first's device."""
        check_pair(first, second)
        flows: list[np.ndarray] = []
        for g0, g1 in zip(to_gray_u8(first), to_gray_u8(second)):
            flows.append(cv2.calcOpticalFlowFarneback(g0, g1, None, **self.params))
        return flow_from_numpy(flows, first.device)
