"""Middlebury ``.flo`` files (the format of Sintel's ground truth): float32 202021.25, int32
width, int32 height, then height·width·(u, v) float32, all little-endian."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["FLO_MAGIC", "read_flo", "write_flo"]

FLO_MAGIC = 202021.25
_MAX_SIDE = 1 << 16  # a corrupt header must not make us allocate gigabytes


def read_flo(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a .flo file -> float32 (H,W,2) (u, v) in pixels."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read flow file {p}: {exc.strerror or exc}; check the path") from None
    if len(data) < 12 or np.frombuffer(data, "<f4", 1, 0)[0] != np.float32(FLO_MAGIC):
        raise InputError(f"{p} is not a Middlebury .flo file (bad magic number); pass a .flo flow file")
    width, height = (int(v) for v in np.frombuffer(data, "<i4", 2, 4))
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise InputError(f"{p} has an invalid .flo size {width}x{height}; the file is corrupt")
    expected = 12 + 8 * width * height
    if len(data) != expected:
        raise InputError(f"{p} holds {len(data)} bytes but a {width}x{height} .flo needs {expected}; "
                         "the file is truncated or corrupt")
    return np.frombuffer(data, "<f4", 2 * width * height, 12).reshape(height, width, 2).astype(np.float32)


def write_flo(path: str | os.PathLike[str], flow: np.ndarray) -> None:
    """Write float (H,W,2) (u, v) to a .flo file."""
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H,W,2), got {flow.shape}")
    height, width = flow.shape[:2]
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    Path(path).write_bytes(header + np.ascontiguousarray(flow, "<f4").tobytes())
