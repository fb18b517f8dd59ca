"""Still-image decoding to numpy (no torch here, so inputs can be checked before torch loads).

Any image OpenCV decodes — grey, RGBA, palette, 16-bit, CMYK — comes out as float32 RGB
``(H,W,3)`` in [0,1]; ``io.image.read_image`` turns it into the package's tensor."""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..errors import InputError
from .paths import existing_file

# OpenCV prints its own warnings (e.g. for a truncated PNG) to stderr; our errors say it better.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def to_unit_float(array: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float image data -> float32 in [0,1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def decode_rgb(path: str | os.PathLike[str], what: str = "image") -> np.ndarray:
    """Decode ``path`` -> float32 RGB (H,W,3) in [0,1]; ``what`` names it in errors."""
    p = existing_file(path, what, "an image file")
    try:
        buffer = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}: {exc.strerror}") from None
    # IMREAD_COLOR applies EXIF orientation and converts grey/palette/CMYK to 3 channels.
    color = cv2.imdecode(buffer, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if buffer.size else None
    if color is None:
        raise InputError(f"{what} {p} is not an image OpenCV can decode; pass a PNG, JPEG, TIFF "
                         "or WebP file")
    rgb = to_unit_float(color[..., ::-1])
    raw = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if raw is not None and raw.ndim == 3 and raw.shape[2] == 4 and raw.shape[:2] == rgb.shape[:2]:
        alpha = to_unit_float(raw[..., 3:4])
        rgb = rgb * alpha + (1.0 - alpha)  # transparent areas become white, not garbage RGB
    return np.ascontiguousarray(rgb)
