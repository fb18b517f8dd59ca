"""OpenCV DIS optical flow (Kroeger et al. 2016): fast, CPU, 8-bit grey input."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import UsageError
from .base import check_pair, flow_from_numpy, to_gray_u8

__all__ = ["DIS_PRESETS", "DISFlow"]

DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class DISFlow:
    """DIS flow with an OpenCV preset. One cv2 object per instance (not thread-safe: use one
    instance per thread). OpenCV's global thread count is left untouched.

    No warm start from the previous flow: initialising flow 2->3 with flow 1->2 on Sintel
    changed EPE by -2 % to +2 % with no consistent sign (docs/flow.md). cv2 treats a same-sized
    flow argument as an initial guess, so we always pass ``None``."""

    def __init__(self, preset: str = "medium") -> None:
        if preset not in DIS_PRESETS:
            raise UsageError(f"unknown DIS preset {preset!r}; use one of {', '.join(DIS_PRESETS)}")
        self.preset = preset
        self.name = f"dis-{preset}"
        self._dis = cv2.DISOpticalFlow.create(DIS_PRESETS[preset])

    def __call__(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W), (B,3,H,W) RGB [0,1] -> (B,2,H,W) float32 pixels, on first's device."""
        check_pair(first, second)
        flows: list[np.ndarray] = []
        for g0, g1 in zip(to_gray_u8(first), to_gray_u8(second)):
            # The stubs want a flow array; None asks OpenCV for a new one.
            flows.append(self._dis.calc(g0, g1, None))  # type: ignore[call-overload]
        return flow_from_numpy(flows, first.device)
