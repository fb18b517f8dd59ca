"""Stylise a video: shots planned into a work directory, each shot a resumable temporal chain
(cold first frame, flow-warped warm starts), then one encoder pass with the source's timing.

Public entry point: :func:`stylize_video`. The per-frame logic lives in :mod:`.chain`, the job
and shot tasks in :mod:`.job`, the executors in :mod:`.executors`."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config, apply_overrides, build_config, flag_overrides
from ..errors import Interrupted
from ..features.vgg import FeatureExtractor
from ..files import atomic_write_bytes
from ..flow.base import FlowEstimator
from ..io.paths import VIDEO_EXTENSIONS
from ..stylize.optimize import MIN_SCALE_SIDE
from .chain import FrameRecord, VideoStylizer, processing_size, to_tensor, to_uint8
from .executors import run_tasks, start_progress
from .image import ImageLike
from .job import SHEET_FRAMES, JobPlan, assemble, finish_job, job_records, plan_job
from .runtime import resolve_device, resolve_precision
from .spec import JobSpec, check_video_outputs, parse_bound
from .workdir import default_work_root

__all__ = ["FrameRecord", "SHEET_FRAMES", "VideoResult", "VideoStylizer", "processing_size",
           "stylize_video", "to_tensor", "to_uint8", "VIDEO_EXTENSIONS"]


@dataclass
class VideoResult:
    output: Path | None
    frames: list[FrameRecord] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    work_dir: Path | None = None


def _peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return own / 1024.0


def summarise(records: list[dict[str, Any]], seconds: float, plan: JobPlan,
              device: torch.device, weights_source: str) -> dict[str, Any]:
    """The ``--stats`` summary of one job."""
    cold = [r["seconds"] for r in records if r["kind"] == "cold"]
    warm = [r["seconds"] for r in records if r["kind"] == "warm"]
    reasons: dict[str, int] = {}
    for r in records:
        if r.get("cold_reason"):
            reasons[r["cold_reason"]] = reasons.get(r["cold_reason"], 0) + 1
    ph, pw = plan.size
    oh, ow = plan.out_size
    return {
        "frames": len(records),
        "seconds": seconds,
        "cold_frames": len(cold), "warm_frames": len(warm),
        "cold_reasons": reasons,
        "mean_cold_seconds": float(np.mean(cold)) if cold else None,
        "mean_warm_seconds": float(np.mean(warm)) if warm else None,
        "shots": [s.to_dict() for s in plan.shots],
        "resumed_frames": plan.resumed_frames,
        "peak_rss_mib": _peak_rss_mib(),
        "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda" else None,
        "processing_size": [pw, ph], "output_size": [ow, oh],
        "weights_source": weights_source, "device": str(device),
        "work_dir": str(plan.work.path),
    }


def stylize_video(input: str | os.PathLike[str], style: ImageLike,
                  output: str | os.PathLike[str] | None, *, config: Config | None = None,
                  preset: str | None = None, config_file: str | os.PathLike[str] | None = None,
                  start: str | int | Fraction | None = None, end: str | int | Fraction | None = None,
                  overwrite: bool = False, progress: bool = True,
                  stats: str | os.PathLike[str] | None = None,
                  preview_sheet: str | os.PathLike[str] | None = None,
                  extractor: FeatureExtractor | None = None, flow: FlowEstimator | None = None,
                  work_dir: str | os.PathLike[str] | None = None, fresh: bool = False,
                  keep_work: bool = False, workers: int = 1, executor: str = "local",
                  address: str | None = None, **settings: Any) -> VideoResult:
    """Stylise ``input`` (any video PyAV decodes) in the style of ``style``.

    Settings are the CLI's long options with underscores (``max_size=192, warm_iters=30,
    temporal=False, crf=20, audio=False, shots="none", ...``). ``start``/``end`` select a range
    (frame index, seconds as Fraction, or the CLI's text forms; end exclusive). Finished frames go
    to a work directory under ``work_dir`` (default: the user cache), so an interrupted run
    continues where it stopped (``fresh`` discards them). The output is encoded to a temporary
    file beside ``output`` and moved into place when complete (never onto an output that
    appeared meanwhile, unless ``overwrite``). The job and its output are locked while it
    runs: another run of either refuses at once. ``workers``/``executor`` run the shots in
    parallel (local processes or Ray)."""
    t_start = time.perf_counter()
    if config is None:
        config = build_config(preset, config_file, flag_overrides(settings))
    elif settings:
        config = apply_overrides(config, flag_overrides(settings), "keyword arguments")
    in_path = Path(input)
    out_path = Path(output) if output is not None else None
    inputs = [in_path] + ([Path(style)] if not isinstance(style, torch.Tensor) else [])
    root = Path(work_dir) if work_dir is not None else default_work_root()
    check_video_outputs(inputs, out_path, overwrite, Path(stats) if stats is not None else None,
                        Path(preview_sheet) if preview_sheet is not None else None,
                        reads=[Path(config_file)] if config_file is not None else [],
                        work_root=root)
    spec = JobSpec(input=in_path, style=style if isinstance(style, torch.Tensor) else Path(style),
                   output=out_path, config=config, start=parse_bound(start, "start"),
                   end=parse_bound(end, "end"), name=in_path.name)
    resolve_device(config.runtime.device)  # --device cuda without a GPU fails before planning
    t_plan = time.perf_counter()
    plan = plan_job(spec, root, fresh=fresh, progress=progress,
                    min_scale_side=max(extractor.strides) if extractor is not None
                    else MIN_SCALE_SIDE, workers=workers if executor == "local" else 1)
    try:
        return _run_plan(plan, t_start, time.perf_counter() - t_plan, overwrite=overwrite,
                         progress=progress, stats=stats, preview_sheet=preview_sheet,
                         extractor=extractor, flow=flow, keep_work=keep_work, workers=workers,
                         executor=executor, address=address)
    finally:
        plan.release()


def _run_plan(plan: JobPlan, t_start: float, plan_seconds: float, *, overwrite: bool,
              progress: bool, stats: str | os.PathLike[str] | None,
              preview_sheet: str | os.PathLike[str] | None,
              extractor: FeatureExtractor | None, flow: FlowEstimator | None, keep_work: bool,
              workers: int, executor: str, address: str | None) -> VideoResult:
    """Stylise the pending shots of a planned (and locked) job, encode it, write its stats."""
    config = plan.spec.config
    device = resolve_device(config.runtime.device)
    if plan.resumed_frames and progress:
        print(f"resuming: {plan.resumed_frames} of {plan.total_frames} frames already done in "
              f"{plan.work.path} (--fresh starts over)", file=sys.stderr)
    tasks = plan.tasks()
    bar = start_progress(tasks, plan.resumed_frames, plan.total_frames, progress,
                         slots=min(workers, len(tasks)) if executor == "local" else 4)
    try:
        outcomes = run_tasks(tasks, executor=executor, workers=workers, address=address, progress=bar,
                  extractor=extractor, flow=flow)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {plan.done_frames()} of {plan.total_frames} frames are "
                          f"kept in {plan.work.path}", work_dir=str(plan.work.path)) from None
    finally:
        bar.close()
    t_assemble = time.perf_counter()
    try:
        assemble(plan, overwrite=overwrite, progress=progress,
                 preview_sheet=Path(preview_sheet) if preview_sheet is not None else None)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while encoding; all {plan.total_frames} frames are kept "
                          f"in {plan.work.path}", work_dir=str(plan.work.path)) from None
    assemble_seconds = time.perf_counter() - t_assemble
    records = job_records(plan)
    weights_source = next((o.weights_source for o in outcomes if o.weights_source),
                          "none needed (every frame was already done)")
    summary = summarise(records, time.perf_counter() - t_start, plan, device, weights_source)
    summary.update(plan_seconds=plan_seconds, assemble_seconds=assemble_seconds,
                   precision=resolve_precision(config.runtime.precision, device))
    record_dict = {"summary": summary, "frames": records, "config": plan.config.to_dict()}
    finish_job(plan, keep_work)
    if stats is not None:
        atomic_write_bytes(Path(stats), json.dumps(record_dict, indent=2).encode())
    return VideoResult(output=plan.spec.output, frames=[FrameRecord(**r) for r in records],
                       stats=record_dict, work_dir=plan.work.path)
