"""Stylise one image: the ``image`` subcommand and :func:`stylize_image`."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..config import Config, apply_overrides, build_config, flag_overrides
from ..errors import InputError
from ..features.vgg import FeatureExtractor
from ..files import atomic_write_bytes
from ..io.image import read_image, write_image
from ..stylize.guidance import Guidance, build_guidance
from ..stylize.optimize import MIN_SCALE_SIDE, StyleBank, StylizeResult, fit_scales, stylize
from .runtime import extractor_for, resolve_device
from .spec import check_image_outputs, check_image_size, check_mask_size

ImageLike = str | os.PathLike[str] | torch.Tensor


@dataclass
class ImageResult:
    """image (1,3,H,W) in [0,1] on the CPU; ``stats`` as written by ``--stats``."""

    image: torch.Tensor
    stats: dict[str, Any] = field(default_factory=dict)


def _load(image: ImageLike, what: str) -> torch.Tensor:
    tensor = image if isinstance(image, torch.Tensor) else read_image(image, what)
    if tensor.ndim != 4 or tensor.shape[:2] != (1, 3):
        raise InputError(f"{what} tensor must be (1,3,H,W), got {tuple(tensor.shape)}")
    check_image_size(tensor.shape[-2], tensor.shape[-1], what)
    return tensor.float()


def _check_mask(mask: torch.Tensor, image: torch.Tensor, what: str) -> None:
    check_mask_size((mask.shape[-2], mask.shape[-1]), (image.shape[-2], image.shape[-1]), what)


def result_stats(result: StylizeResult, weights_source: str, device: torch.device,
                 config: Config, seconds: float) -> dict[str, Any]:
    """The ``--stats`` record of one stylisation."""
    return {
        "seconds": seconds,
        "optimise_seconds": result.seconds,
        "vgg_seconds": result.vgg_seconds,
        "loss_seconds": result.loss_seconds,
        "iterations": result.iterations,
        "scales": [vars(s) for s in result.scales],
        "weights_source": weights_source,
        "device": str(device),
        "config": config.to_dict(),
    }


def stylize_image(content: ImageLike, style: ImageLike, output: str | os.PathLike[str] | None = None,
                  *, config: Config | None = None, preset: str | None = None,
                  config_file: str | os.PathLike[str] | None = None,
                  guide: tuple[ImageLike, ImageLike] | None = None, overwrite: bool = False,
                  progress: bool = True, stats: str | os.PathLike[str] | None = None,
                  extractor: FeatureExtractor | None = None, **settings: Any) -> ImageResult:
    """Stylise ``content`` in the style of ``style``.

    Settings are the CLI's long options with underscores (``max_size=256, iters=100,
    content_weight=0.5, device="cpu", seed=1``); they override ``config`` (or the ``preset`` and
    ``config_file`` resolved as by the CLI). ``output`` (optional) is written atomically.
    ``extractor`` injects a feature extractor (tests use small ones)."""
    start = time.perf_counter()
    if config is None:
        config = build_config(preset, config_file, flag_overrides(settings))
    elif settings:
        config = apply_overrides(config, flag_overrides(settings), "keyword arguments")
    out_path = Path(output) if output is not None else None
    stats_path = Path(stats) if stats is not None else None
    inputs = [Path(p) for p in (content, style, *(guide or ())) if not isinstance(p, torch.Tensor)]
    check_image_outputs(inputs, out_path, overwrite, stats_path)
    content_t = _load(content, "content image")
    style_t = _load(style, "style image")
    # The scales the content's size can hold, fixed once: the stats record what ran.
    config = replace(config, strotss=fit_scales(
        config.strotss, content_t.shape[-2], content_t.shape[-1],
        max(extractor.strides) if extractor is not None else MIN_SCALE_SIDE))
    guidance: Guidance | None = None
    if guide is not None:
        content_mask, style_mask = (_load(guide[0], "content mask"), _load(guide[1], "style mask"))
        _check_mask(content_mask, content_t, "content mask")
        _check_mask(style_mask, style_t, "style mask")
        guidance = build_guidance(content_mask, style_mask, config.strotss.min_region_pixels)

    device = resolve_device(config.runtime.device)
    extractor, weights_source = extractor_for(config.runtime, device, extractor, progress)
    torch.manual_seed(config.runtime.seed)
    bank = StyleBank(extractor, style_t.to(device), config.strotss, seed=config.runtime.seed,
                     guidance=guidance)
    result = stylize(content_t.to(device), bank, extractor, config.strotss,
                     seed=config.runtime.seed, progress=progress, guidance=guidance,
                     graphs=config.runtime.cuda_graphs, autotune=config.runtime.cudnn_benchmark)
    image = result.image.cpu()
    if out_path is not None:
        write_image(out_path, image)
    record = result_stats(result, weights_source, device, config, time.perf_counter() - start)
    if stats_path is not None:
        atomic_write_bytes(stats_path, json.dumps(record, indent=2).encode())
    return ImageResult(image=image, stats=record)
