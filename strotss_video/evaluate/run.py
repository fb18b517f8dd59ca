"""Evaluate a stylised video against its input: one streaming pass over the matched frames.

Per matched frame: the content distance (output vs input) and, given a style image, the style
distance; per consecutive pair: Lai et al.'s warping error of the output and of the input,
both with the *input's* flow (Farneback by default: a different method from the DIS flow that
stylises, so the measure does not reward agreeing with the stylisation's own flow errors)."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import torch

from ..flow import FlowEstimator, make_flow
from ..io.image import read_image
from ..metrics import WarpingMeter
from ..pipeline.runtime import resolve_device
from ..tensorops import resize_long_side
from .distances import FeatureDistances, vgg_distances
from .frames import matched_frames
from .plan import EvaluationPlan, plan_evaluation
from .report import Evaluation


def _tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H,W,3) -> float32 (1,3,H,W) in [0,1]."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].float().div_(255.0)


def run_evaluation(plan: EvaluationPlan, *, features: FeatureDistances | None = None,
                   flow: FlowEstimator | str = "farneback", device: torch.device | str = "auto",
                   vgg_weights: str | os.PathLike[str] | None = None,
                   progress: bool = False) -> Evaluation:
    """Measure ``plan``'s matched frames. ``features`` defaults to ImageNet VGG16 with LPIPS
    v0.1's heads (:func:`~strotss_video.evaluate.distances.vgg_distances`); ``flow`` is an
    estimator or a ``make_flow`` name; ``device`` runs the features (flows run where their
    method does)."""
    from tqdm import tqdm

    dev = resolve_device(device) if isinstance(device, str) else device
    feats = features if features is not None else vgg_distances(vgg_weights, device=dev,
                                                                 progress=progress)
    estimator = make_flow(flow, device=dev) if isinstance(flow, str) else flow
    size = plan.size
    style_grams = None
    if plan.style is not None:
        style_grams = feats.style_grams(resize_long_side(read_image(plan.style, "style image"),
                                                         max(size)))
    meter = WarpingMeter(estimator)
    content: list[float] = []
    style: list[float] = []
    frames = matched_frames(plan.output, plan.input, plan.matches, size)
    for _, out_image, in_image in tqdm(frames, total=len(plan.matches), desc="evaluate",
                                       unit="frame", disable=not progress, leave=False):
        out_frame, in_frame = _tensor(out_image), _tensor(in_image)
        meter.add({"input": in_frame, "output": out_frame})
        c, s = feats.frame(out_frame, in_frame, style_grams)
        content.append(c)
        if s is not None:
            style.append(s)
    warping = meter.results()
    return Evaluation(
        output=plan.output, input=plan.input, style=plan.style, size=size, matches=plan.matches,
        flow=getattr(estimator, "name", str(flow)), warping=warping["output"],
        input_warping=warping["input"], content_distance=content,
        style_distance=style if plan.style is not None else None,
        content_metric=feats.content_metric, style_layers=feats.style_layers)


def evaluate_video(output: str | os.PathLike[str], input: str | os.PathLike[str],
                   style: str | os.PathLike[str] | None = None, *,
                   start: str | int | Fraction | None = None,
                   end: str | int | Fraction | None = None, frames: int | None = None,
                   max_size: int | None = None, features: FeatureDistances | None = None,
                   flow: FlowEstimator | str = "farneback", device: torch.device | str = "auto",
                   vgg_weights: str | os.PathLike[str] | None = None,
                   progress: bool = False) -> Evaluation:
    """:func:`plan_evaluation` then :func:`run_evaluation` (see both for the arguments)."""
    plan = plan_evaluation(output, input, style=style, start=start, end=end, frames=frames,
                           max_size=max_size)
    return run_evaluation(plan, features=features, flow=flow, device=device,
                          vgg_weights=vgg_weights, progress=progress)
