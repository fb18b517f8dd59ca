"""Still-image decoding to numpy (no torch here, so inputs can be checked before torch loads).

Any image OpenCV decodes — grey, RGBA, palette, 16-bit, CMYK — comes out as float32 RGB
``(H,W,3)`` in [0,1]; ``io.image.read_image`` turns it into the package's tensor.

A file is bounded before it is decoded: its header (read by Pillow, which parses headers
lazily) gives its size, checked against a pixel limit, since a 31 KB PNG can declare a
16000x16000 image. A caller that needs at most a given long side gets a much larger image
decoded small (JPEG in the DCT domain) instead of holding it as float32."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..config import MAX_INPUT_PIXELS
from ..errors import InputError
from .paths import existing_file

# OpenCV prints its own warnings (e.g. for a truncated PNG) to stderr; our errors say it better.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

REDUCE_MARGIN = 4
"""An image is decoded reduced only when its long side exceeds this many times the caller's
largest use, and then to that many times: the final resize still filters a 4x larger image, so
ordinary inputs (e.g. a 2048 px style at 512 px) are decoded exactly as before."""

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_GREY_MODES = {"1", "L", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"}
_JPEG_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                 (2, cv2.IMREAD_REDUCED_COLOR_2))


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header declares (stored orientation: EXIF may swap the sides)."""

    width: int
    height: int
    format: str  # Pillow's name: PNG, JPEG, TIFF, WEBP, ...
    alpha: bool  # whether the file can carry transparency
    grey: bool  # one channel (bilevel, 8 or 16 bits, float)


def read_header(path: Path) -> ImageHeader | None:
    """The header of ``path``, or None where Pillow does not know the format."""
    # Pillow's own bomb check raises before it tells the size; our limit replaces it.
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:
            alpha = im.mode in _ALPHA_MODES or "transparency" in im.info
            grey = im.mode in _GREY_MODES and not alpha
            return ImageHeader(im.width, im.height, im.format or "", alpha, grey)
    except (OSError, SyntaxError, ValueError, EOFError):  # not an image Pillow can parse
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def megapixels(pixels: int) -> str:
    """``pixels`` in megapixels, short: "1024 MP", "8.3 MP", "0.0033 MP"."""
    mp = pixels / 1e6
    return f"{mp:.0f} MP" if mp >= 10 else f"{mp:.2g} MP"


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """A one-line InputError when ``width`` x ``height`` exceeds ``max_pixels``."""
    if width * height > max_pixels:
        raise InputError(f"{what} is {width}x{height} ({megapixels(width * height)}), more than "
                         f"the {megapixels(max_pixels)} limit; pass a smaller file or raise "
                         "--max-input-pixels")


def to_unit_float(array: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float image data -> float32 in [0,1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def _imdecode(buffer: np.ndarray, flags: int, p: Path, what: str) -> np.ndarray | None:
    """cv2.imdecode, with OpenCV's own failures (its size limit, allocation) as InputError."""
    try:
        return cv2.imdecode(buffer, flags) if buffer.size else None
    except cv2.error as exc:
        # "OpenCV(5.1.0) /path/loadsave.cpp:80: error: (-215:Assertion failed) pixels <= ... in
        # function '...'": the condition is the part worth a user's reading.
        found = re.search(r"\(-?\d+:[^)]*\) (.*?)(?: in function .*)?$", str(exc).strip())
        reason = (found.group(1) if found else str(exc).strip().splitlines()[-1])[:120]
        raise InputError(f"OpenCV cannot decode {what} {p} (failed: {reason}); pass a smaller "
                         "PNG, JPEG, TIFF or WebP file") from None


def _reduced(array: np.ndarray, long_side: int) -> np.ndarray:
    """(H,W[,C]) area-averaged so that its long side is ``long_side`` (C kept, even 1)."""
    h, w = array.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = cv2.resize(array, size, interpolation=cv2.INTER_AREA)
    return out.reshape(out.shape[:2] + array.shape[2:])


def _color_flags(header: ImageHeader | None, target: int | None) -> int:
    """imdecode flags: JPEG above ``target`` decodes at 1/2, 1/4 or 1/8 in the DCT domain, and
    a grey image above it as one channel (a third of the memory), made RGB once reduced."""
    if header is not None and target is not None:
        if header.format == "JPEG":
            for factor, flag in _JPEG_REDUCED:
                if max(header.width, header.height) // factor >= target:
                    return flag
        if header.grey:
            return cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH
    # IMREAD_COLOR applies EXIF orientation and converts grey/palette/CMYK to 3 channels.
    return cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH


def decode_rgb(path: str | os.PathLike[str], what: str = "image", *,
               max_pixels: int = MAX_INPUT_PIXELS, long_side: int | None = None) -> np.ndarray:
    """Decode ``path`` -> float32 RGB (H,W,3) in [0,1]; ``what`` names it in errors.

    Refused (InputError) above ``max_pixels``. ``long_side``: the largest long side the caller
    resizes the image to; a larger image may come out reduced (see :data:`REDUCE_MARGIN`)."""
    p = existing_file(path, what, "an image file")
    header = read_header(p)
    if header is not None:
        check_pixels(header.width, header.height, max_pixels, f"{what} {p}")
    try:
        buffer = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}: {exc.strerror}") from None
    target = REDUCE_MARGIN * long_side if long_side is not None else None
    if header is None or target is None or max(header.width, header.height) <= target:
        target = None
    color = _imdecode(buffer, _color_flags(header, target), p, what)
    if color is None:
        raise InputError(f"{what} {p} is not an image OpenCV can decode; pass a PNG, JPEG, TIFF "
                         "or WebP file")
    if header is None:  # a format only OpenCV reads: its own limit bounded the decode
        check_pixels(color.shape[1], color.shape[0], max_pixels, f"{what} {p}")
    full = color.shape[:2]
    if target is not None and max(full) > target:
        color = _reduced(color, target)  # before the alpha decode: one full image at a time
    if color.ndim == 2:
        color = np.repeat(color[..., None], 3, axis=2)
    rgb = to_unit_float(color[..., ::-1])
    del color
    if header is None or header.alpha:
        alpha = _alpha(buffer, full, p, what)
        if alpha is not None:
            if alpha.shape[:2] != rgb.shape[:2]:
                # Reduced apart from the colour: differs from compositing first only along
                # the edges of transparent areas, and never holds two full-size images.
                alpha = _reduced(alpha, max(rgb.shape[:2]))
            unit = to_unit_float(alpha)
            rgb = rgb * unit + (1.0 - unit)  # transparent areas become white, not garbage RGB
    return np.ascontiguousarray(rgb)


def _alpha(buffer: np.ndarray, shape: tuple[int, ...], p: Path, what: str) -> np.ndarray | None:
    """The alpha channel (H,W,1) of a 4-channel file whose stored size is ``shape``, else None."""
    raw = _imdecode(buffer, cv2.IMREAD_UNCHANGED, p, what)
    if raw is not None and raw.ndim == 3 and raw.shape[2] == 4 and raw.shape[:2] == shape:
        return np.ascontiguousarray(raw[..., 3:4])
    return None
