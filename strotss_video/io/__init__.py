"""Reading and writing media: the only home of PyAV, and of OpenCV's image codecs.

One concern per module: ``probe`` (what a video holds), ``reader`` (decoding frames),
``writer`` (encoding them), ``audio`` (stream copy for the writer), ``encoding`` (encoder
options and checks), ``timeline`` (frame times without pixels), ``timecode`` (the time
grammar), ``image`` / ``decode`` (stills) and ``paths`` (path checks).

Submodules import lazily, and only ``image`` needs torch: the CLI checks inputs, times and the
encoder before it pays for importing torch. ``timecode`` needs no PyAV either."""

from __future__ import annotations

from typing import Any

__all__ = ["read_image", "write_image"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import image

        return getattr(image, name)
    raise AttributeError(name)
