"""Reading and writing media: the only home of PyAV, and of OpenCV's image codecs.

Submodules import lazily: ``io.video``, ``io.paths`` and ``io.decode`` need no torch, so the
CLI can reject a bad input before it pays for importing torch."""

from __future__ import annotations

from typing import Any

__all__ = ["read_image", "write_image"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import image

        return getattr(image, name)
    raise AttributeError(name)
