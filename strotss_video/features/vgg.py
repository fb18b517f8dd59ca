"""VGG16 hypercolumn extractor.

Tensor convention (package-wide): images are float32 RGB ``(B,3,H,W)`` in [0,1].
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from .sampling import TapReader

# ReLU outputs used by STROTSS: relu1_1, relu1_2, relu2_1, relu2_2, relu3_1, relu3_2, relu3_3,
# relu4_3, relu5_3 (indices into torchvision's vgg16().features).
STROTSS_LAYERS: tuple[int, ...] = (1, 3, 6, 8, 11, 13, 15, 22, 29)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureExtractor(Protocol):
    """What the optimiser needs from an extractor (tests inject small ones).

    ``forward(image (1,3,H,W))`` returns maps ``[(1,C_k,H_k,W_k)]``, the first being the raw
    image; ``strides[k]`` is the power-of-two downsampling of map k (1 for full resolution).
    An extractor may also offer ``columns(image, points)`` (as :class:`VGGHypercolumns` does):
    the optimiser then reads through it on CPU, so the gradient goes back sparsely."""

    strides: tuple[int, ...]
    channels: tuple[int, ...]

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]: ...


class VGGHypercolumns(nn.Module):
    """Frozen VGG16 features, run only up to the last requested layer.

    Returns ``[image, relu_a, relu_b, ...]``; the hypercolumn at a point is the concatenation of
    all maps read there (3 + 64*2 + 128*2 + 256*3 + 512*2 = 2179 channels by default)."""

    def __init__(self, features: nn.Sequential, layers: Sequence[int] = STROTSS_LAYERS) -> None:
        super().__init__()
        self.layers = tuple(sorted(layers))
        last = self.layers[-1]
        body = nn.Sequential(*list(features.children())[: last + 1])
        for m in body.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False  # the outputs are kept as hypercolumn sources
        body.eval().requires_grad_(False)
        self.body = body
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        strides, channels, stride, ch = [1], [3], 1, 3
        for i, m in enumerate(body):
            if isinstance(m, nn.MaxPool2d):
                stride *= 2
            if isinstance(m, nn.Conv2d):
                ch = m.out_channels
            if i in self.layers:
                strides.append(stride)
                channels.append(ch)
        self.strides: tuple[int, ...] = tuple(strides)
        self.channels: tuple[int, ...] = tuple(channels)
        self.autocast: torch.dtype | None = None
        """Run the convolutions in this dtype (e.g. bfloat16); the maps are returned as
        float32, so distances, REMD and covariances stay float32."""
        self._low: dict[tuple[torch.dtype, torch.device], nn.Sequential] = {}

    @property
    def dim(self) -> int:
        return sum(self.channels)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """image (1,3,H,W) in [0,1] -> [image, relu maps...]."""
        body, x = self._prepared(image)
        maps = self._walk(body, x)
        return [image] + (maps if self.autocast is None else [m.float() for m in maps])

    def columns(self, image: torch.Tensor, points: torch.Tensor) -> list[torch.Tensor]:
        """Bilinear reads of ``[image, relu maps...]`` at ``points`` (N,2) -> ``[(N,C_k)]``
        float32: the values of ``read_bilinear_columns(self(image), self.strides, points)``,
        with the gradient added into each layer's sparsely (:class:`TapReader`) and no float32
        copy of the bfloat16 maps. image (1,3,H,W) in [0,1]."""
        reader = TapReader(points)
        image, first = reader.read(image, 1)
        body, x = self._prepared(image)
        out = [first]
        strides = iter(self.strides[1:])
        for i, m in enumerate(body):
            x = m(x)
            if i in self.layers:
                x, rows = reader.read(x, next(strides))
                out.append(rows)
        return out

    def _prepared(self, image: torch.Tensor) -> tuple[nn.Sequential, torch.Tensor]:
        """The body to run (the bfloat16 copy under ``autocast``) and its normalised input."""
        x = self._normalised(image)
        if self.autocast is None:
            return self.body, x
        # What autocast would compute (bit for bit: the same casts of input, weights and
        # biases, the same kernels), without casting every weight at every forward: ~10%
        # of a bfloat16 forward+backward at 256x144 on an AMX CPU (README: Performance).
        return self._low_precision_body(self.autocast, image.device), x.to(self.autocast)

    def _normalised(self, image: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised, channels-last (1,3,H,W)."""
        # channels_last: oneDNN (CPU) and cuDNN (GPU) convolutions are faster in NHWC.
        return ((image - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def _walk(self, body: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
        """The requested layers' maps of ``body`` run on ``x``."""
        out: list[torch.Tensor] = []
        for i, m in enumerate(body):
            x = m(x)
            if i in self.layers:
                out.append(x)
        return out

    def _low_precision_body(self, dtype: torch.dtype, device: torch.device) -> nn.Sequential:
        """A copy of the body with weights in ``dtype``, made once per (dtype, device): built on
        the first (eager) forward, so a CUDA graph captured later only reads it."""
        key = (dtype, device)
        if key not in self._low:
            self._low[key] = copy.deepcopy(self.body).to(device=device, dtype=dtype)
        return self._low[key]


def forward_under_autocast(model: VGGHypercolumns, image: torch.Tensor,
                           dtype: torch.dtype = torch.bfloat16) -> list[torch.Tensor]:
    """``model``'s maps with its float32 body run under ``torch.autocast(dtype)``, maps returned
    as float32: the reference its low-precision copy must equal bit for bit (tests, and
    ``benchmarks.precision speed`` times both). image (1,3,H,W) -> [image, relu maps...]."""
    with torch.autocast(image.device.type, dtype=dtype, cache_enabled=False):
        maps = model._walk(model.body, model._normalised(image))
    return [image] + [m.float() for m in maps]


def build_vgg_hypercolumns(state_dict: dict[str, torch.Tensor], device: torch.device | str = "cpu",
                           layers: Sequence[int] = STROTSS_LAYERS) -> VGGHypercolumns:
    """Build the extractor from a ``vgg16().features`` state dict (see ``features.weights``)."""
    from torchvision.models.vgg import cfgs, make_layers

    # Only the convolutional part: building all of vgg16() would also initialise its
    # 120M-parameter classifier, about a second of wasted work per load.
    features = make_layers(cfgs["D"], batch_norm=False)
    features.load_state_dict(state_dict, strict=True)
    model = VGGHypercolumns(features, layers)
    return model.to(device).to(memory_format=torch.channels_last)
