"""Stylise one image: the ``image`` subcommand and :func:`stylize_image`."""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..config import MAX_INPUT_PIXELS, Config, apply_overrides, build_config, flag_overrides
from ..errors import InputError
from ..features.vgg import FeatureExtractor
from ..files import atomic_write_bytes
from ..io.image import read_image, write_image
from ..stylize.guidance import Guidance, build_guidance
from ..stylize.optimize import MIN_SCALE_SIDE, StyleBank, StylizeResult, fit_scales, stylize
from ..tensorops import scaled_size
from . import budget
from .runtime import extractor_for, resolve_device
from .spec import check_image_outputs, check_image_size, check_mask_size

ImageLike = str | os.PathLike[str] | torch.Tensor


@dataclass
class ImageResult:
    """image (1,3,H,W) in [0,1] on the CPU; ``stats`` as written by ``--stats``."""

    image: torch.Tensor
    stats: dict[str, Any] = field(default_factory=dict)


def _load(image: ImageLike, what: str, *, max_pixels: int = MAX_INPUT_PIXELS,
          long_side: int | None = None) -> torch.Tensor:
    """A checked (1,3,H,W) float32 image: a tensor as given, or a file decoded within
    ``max_pixels`` (and reduced towards ``long_side`` when much larger, see
    :func:`~strotss_video.io.decode.decode_rgb`)."""
    tensor = image if isinstance(image, torch.Tensor) else \
        read_image(image, what, max_pixels=max_pixels, long_side=long_side)
    if tensor.ndim != 4 or tensor.shape[:2] != (1, 3):
        raise InputError(f"{what} tensor must be (1,3,H,W), got {tuple(tensor.shape)}")
    check_image_size(tensor.shape[-2], tensor.shape[-1], what)
    return tensor.float()


def _check_mask(mask: torch.Tensor, image: torch.Tensor, what: str) -> None:
    check_mask_size((mask.shape[-2], mask.shape[-1]), (image.shape[-2], image.shape[-1]), what)


def peak_memory_mib(device: torch.device) -> dict[str, float | None]:
    """This process's peak RSS and, on CUDA, peak allocated GPU memory, in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"peak_rss_mib": rss, "peak_gpu_mib": gpu}


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
    inputs = [Path(p) for p in (content, style, *(guide or ()))]
    check_image_outputs(inputs, out_path, overwrite, stats_path)
    # An allocation failure anywhere (decoding, VGG16, the optimisation) ends as one line.
    with budget.out_of_memory_as_error(config.strotss.max_size):
        image, record = _stylize(content, style, guide, config, extractor, progress)
    if out_path is not None:
        write_image(out_path, image)
    record["seconds"] = time.perf_counter() - start
    if stats_path is not None:
        atomic_write_bytes(stats_path, json.dumps(record, indent=2).encode())
    return ImageResult(image=image, stats=record)


def _stylize(content: ImageLike, style: ImageLike, guide: tuple[ImageLike, ImageLike] | None,
             config: Config, extractor: FeatureExtractor | None,
             progress: bool) -> tuple[torch.Tensor, dict[str, Any]]:
    """The stylised image (1,3,H,W) on the CPU and its stats record (seconds left to fill)."""
    limit = config.runtime.max_input_pixels
    # The result's long side is max_size whatever the inputs' sizes, so a much larger file may
    # be decoded reduced; guided images keep their sizes (their masks must match them).
    side = None if guide is not None else config.strotss.max_size
    content_t = _load(content, "content image", max_pixels=limit, long_side=side)
    style_t = _load(style, "style image", max_pixels=limit, long_side=side)
    # The scales the content's size can hold, fixed once: the stats record what ran.
    config = replace(config, strotss=fit_scales(
        config.strotss, content_t.shape[-2], content_t.shape[-1],
        max(extractor.strides) if extractor is not None else MIN_SCALE_SIDE))
    guidance: Guidance | None = None
    if guide is not None:
        content_mask, style_mask = (_load(guide[0], "content mask", max_pixels=limit),
                                    _load(guide[1], "style mask", max_pixels=limit))
        _check_mask(content_mask, content_t, "content mask")
        _check_mask(style_mask, style_t, "style mask")
        guidance = build_guidance(content_mask, style_mask, config.strotss.min_region_pixels)

    device = resolve_device(config.runtime.device)
    estimate = _check_memory(config, content_t, style_t, device)
    extractor, weights_source = extractor_for(config.runtime, device, extractor, progress)
    torch.manual_seed(config.runtime.seed)
    bank = StyleBank(extractor, style_t.to(device), config.strotss, seed=config.runtime.seed,
                     guidance=guidance)
    result = stylize(content_t.to(device), bank, extractor, config.strotss,
                     seed=config.runtime.seed, progress=progress, guidance=guidance,
                     graphs=config.runtime.cuda_graphs, autotune=config.runtime.cudnn_benchmark)
    record = result_stats(result, weights_source, device, config, 0.0)
    record.update(peak_memory_mib(device), memory_estimate_mib=estimate / 2**20)
    return result.image.cpu(), record


def _check_memory(config: Config, content: torch.Tensor, style: torch.Tensor,
                  device: torch.device) -> int:
    """Refuse a stylisation that would not fit in memory (see :mod:`.budget`); returns the
    estimated bytes (host, or the GPU's on CUDA) for the stats."""
    cfg = config.strotss
    shape = (content.shape[-2], content.shape[-1])
    decoded = (shape, (style.shape[-2], style.shape[-1]))

    def at(side: int) -> budget.Workload:
        return budget.Workload(strotss=replace(cfg, max_size=side),
                               size=scaled_size(shape[0], shape[1], side),
                               device=device.type, inputs=decoded)

    need = budget.check_memory(at(cfg.max_size), at)
    return need.device if device.type == "cuda" else need.host
