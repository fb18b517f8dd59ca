"""strotss-video: STROTSS style transfer for images and temporally stable video.

Tensor convention, everywhere in the package: float32 RGB ``(B,3,H,W)`` in [0,1] (B is 1 for
a single image or frame); masks are ``(H,W)``; point sets are ``(N,2)`` (x, y).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "stylize_image", "stylize_video", "Config", "build_config"]


def __getattr__(name: str) -> Any:
    # Lazy, so `strotss-video --help` does not pay for importing torch.
    if name == "stylize_image":
        from .pipeline.image import stylize_image

        return stylize_image
    if name == "stylize_video":
        from .pipeline.video import stylize_video

        return stylize_video
    if name in ("Config", "build_config"):
        from . import config

        return getattr(config, name)
    raise AttributeError(name)
