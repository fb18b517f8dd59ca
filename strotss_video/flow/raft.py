"""torchvision RAFT (Teed & Deng 2020), with weights read only from local files.

torchvision would download the weights at run time; this tool must work offline, so we look for
the file torchvision would have cached and otherwise tell the user how to get it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .base import check_pair

__all__ = ["RAFT_MODELS", "RAFTFlow", "hub_weight_paths", "resolve_raft_weights"]

RAFT_MODELS = ("large", "small")
PAD_MULTIPLE = 8  # RAFT's feature encoder works at 1/8 resolution


def _weights_enum(model: str) -> Any:
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    return Raft_Large_Weights if model == "large" else Raft_Small_Weights


def hub_weight_paths(model: str) -> list[Path]:
    """Cache files torchvision's download would create for ``model``, the DEFAULT one first."""
    enum = _weights_enum(model)
    ordered = [enum.DEFAULT] + [w for w in enum if w != enum.DEFAULT]
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    return [checkpoints / os.path.basename(w.url) for w in ordered]


def _missing(where: Path, model: str) -> UsageError:
    enum = "Raft_Large_Weights" if model == "large" else "Raft_Small_Weights"
    return UsageError(f"RAFT weights not found at {where}; download them on a machine with internet "
                      f"(torchvision.models.optical_flow.{enum}) or use --flow dis")


def resolve_raft_weights(model: str, weights: str | os.PathLike[str] | None) -> Path:
    """An existing weights file: ``weights`` if given, else the first cached torchvision file."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise _missing(path, model)
        return path
    candidates = hub_weight_paths(model)
    for path in candidates:
        if path.is_file():
            return path
    raise _missing(candidates[0], model)


def _load_network(model: str, path: Path) -> nn.Module:
    from torchvision.models.optical_flow import raft_large, raft_small

    network = (raft_large if model == "large" else raft_small)(weights=None, progress=False)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except Exception as exc:  # unpickling, zip, key or shape errors all mean "wrong file"
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise UsageError(f"{path} is not a torchvision raft_{model} state dict ({reason}); "
                         "pass the .pth file torchvision downloads or use --flow dis") from None
    return network


class RAFTFlow:
    """RAFT flow on ``device``. Inputs are padded (replicate) to multiples of 8 at the bottom
    and right, scaled to [-1,1] like torchvision's ``OpticalFlow`` transform, and the result is
    cropped back. Memory grows with (HW/64)²: about 4 GB for the correlation volume at 1080p.

    ``network`` injects a ready module (e.g. a randomly initialised one in tests); then no
    weights file is looked for."""

    def __init__(self, model: str = "large", weights: str | os.PathLike[str] | None = None,
                 device: str | torch.device = "cpu", *, num_flow_updates: int = 12,
                 network: nn.Module | None = None) -> None:
        if model not in RAFT_MODELS:
            raise UsageError(f"unknown RAFT model {model!r}; use one of {', '.join(RAFT_MODELS)}")
        self.name = f"raft-{model}"
        self.device = torch.device(device)
        self.num_flow_updates = num_flow_updates
        self.weights_path: Path | None = None
        if network is None:
            self.weights_path = resolve_raft_weights(model, weights)
            network = _load_network(model, self.weights_path)
        self.network = network.eval().requires_grad_(False).to(self.device)

    def __call__(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W), (B,3,H,W) RGB [0,1] -> (B,2,H,W) float32 pixels, on first's device."""
        check_pair(first, second)
        h, w = first.shape[-2:]
        pad_h = -h % PAD_MULTIPLE
        pad_w = -w % PAD_MULTIPLE
        with torch.inference_mode():
            pair = torch.cat([first, second]).to(self.device, torch.float32)
            pair = pair.clamp(0.0, 1.0) * 2.0 - 1.0
            if pad_h or pad_w:
                pair = F.pad(pair, (0, pad_w, 0, pad_h), mode="replicate")
            img1, img2 = pair.chunk(2)
            predictions = self.network(img1.contiguous(), img2.contiguous(),
                                       num_flow_updates=self.num_flow_updates)
            flow = predictions[-1][..., :h, :w].float()
        return flow.to(first.device).clone()
