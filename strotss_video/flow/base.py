"""The flow-estimator protocol and the conversions every backend shares.

Inside the package a flow is torch float32 ``(B,2,H,W)`` in pixels, channel 0 = u (x),
channel 1 = v (y), mapping ``first(x) ≈ second(x + flow(x))``. NumPy ``(H,W,2)`` exists only at
the OpenCV boundary (``to_gray_u8`` / ``flow_from_numpy``)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["FlowEstimator", "check_pair", "estimate_pair", "flow_from_numpy", "to_gray_u8"]


@runtime_checkable
class FlowEstimator(Protocol):
    """Dense optical flow between two RGB frames."""

    name: str

    def __call__(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """first, second (1,3,H,W) float RGB in [0,1] -> flow (1,2,H,W) in pixels from first to
        second (``first(x) ≈ second(x + flow(x))``), on ``first``'s device."""
        ...


def estimate_pair(est: FlowEstimator, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(flow a->b, flow b->a), each (1,2,H,W): what the consistency checker needs."""
    return est(a, b), est(b, a)


def check_pair(first: torch.Tensor, second: torch.Tensor) -> None:
    """Raise ValueError unless first/second are equal-shaped (B,3,H,W) images."""
    if first.ndim != 4 or first.shape[1] != 3:
        raise ValueError(f"flow input must be (B,3,H,W) RGB, got {tuple(first.shape)}")
    if first.shape != second.shape:
        raise ValueError(f"flow inputs differ in shape: {tuple(first.shape)} vs {tuple(second.shape)}")


# ITU-R BT.601 luma, the weights OpenCV's RGB2GRAY uses, so results match cv2.cvtColor.
_LUMA = (0.299, 0.587, 0.114)


def to_gray_u8(image: torch.Tensor) -> list[np.ndarray]:
    """(B,3,H,W) RGB in [0,1] -> B contiguous uint8 grey (H,W) arrays for OpenCV."""
    rgb = image.detach().to("cpu", torch.float32).clamp(0.0, 1.0)
    grey = rgb[:, 0] * _LUMA[0] + rgb[:, 1] * _LUMA[1] + rgb[:, 2] * _LUMA[2]
    u8 = grey.mul(255.0).round().to(torch.uint8).numpy()
    return [np.ascontiguousarray(frame) for frame in u8]


def flow_from_numpy(flows: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """B float (H,W,2) arrays -> (B,2,H,W) float32 tensor on ``device``."""
    stacked = torch.from_numpy(np.stack(flows).astype(np.float32, copy=False))
    return stacked.permute(0, 3, 1, 2).contiguous().to(device)
