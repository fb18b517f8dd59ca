"""Per-frame style and content distances, read from one feature extractor's maps.

Style distance: for each style layer l with map F_l reshaped to (C, H·W), the Gram matrix
normalised by pixel count is ``G_l = F_l F_lᵀ / (H·W)`` and the layer's distance is
``‖G_l(output) − G_l(style)‖_F / ‖G_l(style)‖_F``; a frame's style distance is the mean over
the layers (VGG16 relu1_2, relu2_2, relu3_3, relu4_3). It is 0 for the style image itself, and
relative per layer, so deep layers with large activations do not outweigh the others.

Content distance: LPIPS v0.1 (Zhang et al. 2018) with VGG16, between an output frame and its
input frame at the same size: ``Σ_l mean_hw Σ_c w_lc (f̂_0 − f̂_1)²`` over relu1_2 … relu5_3,
where ``f̂ = f / (‖f‖_channels + 1e-10)`` and ``w_l`` are LPIPS's linear heads. LPIPS feeds
VGG ``(2x − 1 − shift) / scale`` for x in [0,1]; with its constants that is exactly the ImageNet
normalisation the extractor applies, so the backbone is the one the stylisation uses.

Extractors follow :class:`~strotss_video.features.vgg.FeatureExtractor`: ``(1,3,H,W)`` in
[0,1] -> ``[image, map_1, map_2, ...]``; tests inject small ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

VGG_LAYER_NAMES: dict[int, str] = {3: "relu1_2", 8: "relu2_2", 15: "relu3_3", 22: "relu4_3",
                                   29: "relu5_3"}
"""Module indices in ``vgg16().features`` of the layers read here, and their names."""
VGG_STYLE_LAYERS: tuple[int, ...] = (3, 8, 15, 22)
VGG_CONTENT_LAYERS: tuple[int, ...] = (3, 8, 15, 22, 29)
LPIPS_EPS = 1e-10

Extractor = Callable[[torch.Tensor], list[torch.Tensor]]


def gram(fmap: torch.Tensor) -> torch.Tensor:
    """(1,C,H,W) -> (C,C) Gram matrix divided by the pixel count H·W."""
    flat = fmap[0].reshape(fmap.shape[1], -1).float()
    return flat @ flat.T / flat.shape[1]


def style_distance(grams: Sequence[torch.Tensor], style_grams: Sequence[torch.Tensor]) -> float:
    """Mean over layers of ``‖G − G_style‖_F / ‖G_style‖_F`` (0 when the Grams are equal)."""
    if len(grams) != len(style_grams) or not grams:
        raise ValueError(f"need one Gram per style layer, got {len(grams)} and {len(style_grams)}")
    ratios = [torch.linalg.matrix_norm((g - s).double()) / torch.linalg.matrix_norm(s.double())
              for g, s in zip(grams, style_grams)]
    return float(torch.stack(ratios).mean())


def _unit_channels(fmap: torch.Tensor) -> torch.Tensor:
    """(1,C,H,W) with every pixel's channel vector scaled to unit length (LPIPS's eps)."""
    return fmap / (fmap.square().sum(dim=1, keepdim=True).sqrt() + LPIPS_EPS)


def lpips_distance(maps_a: Sequence[torch.Tensor], maps_b: Sequence[torch.Tensor],
                   heads: Sequence[torch.Tensor]) -> float:
    """LPIPS between two images from their maps ``[(1,C_l,H_l,W_l)]`` and heads ``[(C_l,)]``."""
    if not len(maps_a) == len(maps_b) == len(heads):
        raise ValueError(f"need one head per map, got {len(maps_a)}, {len(maps_b)} and {len(heads)}")
    total = torch.zeros((), dtype=torch.float64)
    for a, b, w in zip(maps_a, maps_b, heads):
        diff = (_unit_channels(a.float()) - _unit_channels(b.float())).square()
        weighted = (diff * w.to(diff.device).view(1, -1, 1, 1)).sum(dim=1)
        total += weighted.mean(dtype=torch.float64).cpu()
    return float(total)


@dataclass(frozen=True)
class FeatureDistances:
    """An extractor and which of its maps the two distances read.

    ``style_maps`` and ``content_maps`` are positions in the extractor's output list;
    ``heads[k]`` weighs the channels of ``content_maps[k]``."""

    extractor: Extractor
    style_maps: tuple[int, ...]
    content_maps: tuple[int, ...]
    heads: tuple[torch.Tensor, ...]
    content_metric: str = "lpips-vgg16-v0.1"
    style_layers: tuple[str, ...] = ()
    device: torch.device = torch.device("cpu")

    @torch.no_grad()
    def style_grams(self, style: torch.Tensor) -> list[torch.Tensor]:
        """The style image's Grams (1,3,H,W), computed once per evaluation."""
        maps = self.extractor(style.to(self.device))
        return [gram(maps[k]) for k in self.style_maps]

    @torch.no_grad()
    def frame(self, output: torch.Tensor, input: torch.Tensor,
              style_grams: Sequence[torch.Tensor] | None) -> tuple[float, float | None]:
        """(content distance, style distance or None) of one output frame and its input frame,
        both (1,3,H,W) in [0,1] at the same size."""
        out_maps = self.extractor(output.to(self.device))
        in_maps = self.extractor(input.to(self.device))
        content = lpips_distance([out_maps[k] for k in self.content_maps],
                                 [in_maps[k] for k in self.content_maps], self.heads)
        if style_grams is None:
            return content, None
        return content, style_distance([gram(out_maps[k]) for k in self.style_maps], style_grams)


def vgg_distances(vgg_weights: str | os.PathLike[str] | None = None, *,
                  device: torch.device | str = "cpu", progress: bool = True) -> FeatureDistances:
    """The real evaluator: ImageNet VGG16 (resolved as for stylising) and LPIPS v0.1's heads."""
    from ..features.vgg import build_vgg_hypercolumns
    from ..features.weights import resolve_lpips_heads, resolve_vgg16_weights

    weights = resolve_vgg16_weights(vgg_weights, progress=progress)
    heads = resolve_lpips_heads(progress=progress)
    model = build_vgg_hypercolumns(weights.state_dict, device, layers=VGG_CONTENT_LAYERS)
    position = {layer: k + 1 for k, layer in enumerate(VGG_CONTENT_LAYERS)}  # 0 is the image
    return FeatureDistances(
        extractor=model,
        style_maps=tuple(position[layer] for layer in VGG_STYLE_LAYERS),
        content_maps=tuple(position[layer] for layer in VGG_CONTENT_LAYERS),
        heads=tuple(h.to(device) for h in heads.heads),
        style_layers=tuple(VGG_LAYER_NAMES[layer] for layer in VGG_STYLE_LAYERS),
        device=torch.device(device),
    )
