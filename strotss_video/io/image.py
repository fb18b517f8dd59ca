"""Still-image reading and writing (OpenCV lives here and in ``flow/`` only).

Reads any image OpenCV decodes — grey, RGBA, palette, 16-bit, CMYK — as float32 RGB
``(1,3,H,W)`` in [0,1]; writes atomically so a failed run leaves no partial file."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from ..config import MAX_INPUT_PIXELS
from ..errors import OutputError
from ..files import atomic_write_bytes
from .decode import decode_rgb


def read_image(path: str | os.PathLike[str], what: str = "image", *,
               max_pixels: int = MAX_INPUT_PIXELS, long_side: int | None = None) -> torch.Tensor:
    """Decode ``path`` -> float32 RGB (1,3,H,W) in [0,1]; ``what`` names it in errors.
    ``max_pixels`` and ``long_side`` as for :func:`~.decode.decode_rgb`."""
    rgb = decode_rgb(path, what, max_pixels=max_pixels, long_side=long_side)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()


def to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) in [0,1] -> uint8 RGB (H,W,3)."""
    array = image.detach()[0].clamp(0, 1).mul(255).round().to(torch.uint8)
    return array.permute(1, 2, 0).cpu().numpy()


def encode_image(image: torch.Tensor, extension: str) -> bytes:
    """(1,3,H,W) in [0,1] -> encoded file bytes for ``extension`` (e.g. ".png")."""
    bgr = np.ascontiguousarray(to_uint8_hwc(image)[..., ::-1])
    try:
        ok, encoded = cv2.imencode(extension, bgr)
    except cv2.error:
        ok = False
    if not ok:
        raise OutputError(f"OpenCV cannot encode {extension} images; use .png or .jpg")
    return encoded.tobytes()


def write_image(path: str | os.PathLike[str], image: torch.Tensor) -> None:
    """Atomically write (1,3,H,W) in [0,1] to ``path`` (format from its extension)."""
    p = Path(path)
    data = encode_image(image, p.suffix.lower())
    atomic_write_bytes(p, data)


def _pad_rows(image: np.ndarray, height: int) -> np.ndarray:
    """``image`` (H,W,3) padded with black rows below to ``height``."""
    return cv2.copyMakeBorder(image, 0, height - image.shape[0], 0, 0, cv2.BORDER_CONSTANT)


def write_contact_sheet(path: Path, pairs: list[tuple[np.ndarray, np.ndarray]],
                        gap: int = 4) -> None:
    """Rows of (input | output) uint8 RGB (H,W,3) pairs, written atomically as one image."""
    rows = []
    for left, right in pairs:
        h = max(left.shape[0], right.shape[0])
        spacer = np.full((h, gap, 3), 255, np.uint8)
        rows.append(np.concatenate([_pad_rows(left, h), spacer, _pad_rows(right, h)], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [cv2.copyMakeBorder(r, 0, gap, 0, width - r.shape[1], cv2.BORDER_CONSTANT,
                               value=(255, 255, 255)) for r in rows]
    sheet = np.ascontiguousarray(np.concatenate(rows, axis=0)[..., ::-1])
    ok, encoded = cv2.imencode(path.suffix.lower() or ".png", sheet)
    if not ok:
        raise OutputError(f"cannot encode the preview sheet as {path.suffix}; use .png")
    atomic_write_bytes(path, encoded.tobytes())


def write_png_rgb(path: Path, rgb: np.ndarray) -> None:
    """Atomically write uint8 RGB (H,W,3) as a lossless PNG (fast compression: work files)."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]),
                               [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OutputError(f"cannot encode {path} as PNG")
    atomic_write_bytes(path, encoded.tobytes())


def intact_png_size(path: Path) -> tuple[int, int] | None:
    """(H, W) of the PNG at ``path`` if every chunk is whole and matches its CRC, else None
    (missing, truncated, zeroed, not a PNG). Reads the file once and decodes no pixel."""
    try:
        with Image.open(path, formats=["PNG"]) as im:
            size = (im.height, im.width)
            im.verify()
    except (OSError, SyntaxError, EOFError, ValueError, struct.error):
        return None
    return size


def read_png_rgb(path: Path) -> np.ndarray | None:
    """uint8 RGB (H,W,3) written by :func:`write_png_rgb`; None when missing or undecodable."""
    try:
        buffer = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    return None if bgr is None else np.ascontiguousarray(bgr[..., ::-1])
