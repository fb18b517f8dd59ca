"""The whole video pipeline on a generated clip (or --input): cold and warm seconds per frame,
seconds per iteration at each scale, where the time goes, memory, and the floor of one
iteration (bare VGG16 forward+backward + the loss's products at the same shapes, timed alone in
the same process, before and after the run).

    python -m benchmarks.video --device cpu --size 256 --frames 4 --iters 5 --warm-iters 40 \\
        --precision auto
    python -m benchmarks.video --device cuda --size 512 --frames 12 --cuts 1

Iteration counts can be reduced so that a CPU run takes minutes; the per-iteration figures are
then projected onto the configured schedule (``projected_*``: 4 x 250 cold steps and 40 warm
steps unless --preset/--config say otherwise).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from strotss_video.io.video import probe

from benchmarks.common import Timing, add_output_arguments, finish
from benchmarks.image import floor_medians, floor_samples, pattern
from strotss_video.config import Config, StrotssConfig, build_config, flag_overrides
from strotss_video.features import sampling
from strotss_video.pipeline.chain import processing_size
from strotss_video.pipeline.runtime import extractor_for, resolve_device
from strotss_video.pipeline.video import stylize_video
from tests.media import make_clip


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", type=int, default=256, help="long side (--max-size)")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--input", help="a video to use instead of the generated clip")
    ap.add_argument("--style", help="a style image instead of the generated one")
    ap.add_argument("--preset", help="preset whose counts are benchmarked (default: defaults)")
    ap.add_argument("--config", help="YAML config on top of the preset")
    ap.add_argument("--iters", type=int, help="measured cold steps per scale (reduced on CPU)")
    ap.add_argument("--warm-iters", type=int, help="measured warm steps")
    ap.add_argument("--scales", type=int)
    ap.add_argument("--precision", choices=("auto", "float32", "mixed", "fast"))
    ap.add_argument("--cuda-graphs", choices=("on", "off"))
    ap.add_argument("--reads", choices=("gather", "grid_sample"),
                    help="hypercolumn read in CPU and CUDA-graph steps (default: "
                         "features.sampling.DEFAULT_READ); eager CUDA steps use grid_sample")
    ap.add_argument("--allocator", choices=("tuned", "system"),
                    help="runtime.allocator (default: the config's, system)")
    ap.add_argument("--cuts", type=int, default=0,
                    help="hard cuts in the generated clip: each starts a shot with a cold frame, "
                         "so cold frames after the first (one-time set-up, cuDNN autotuning) "
                         "are timed too")
    add_output_arguments(ap)
    return ap.parse_args()


def generated_clip(tmp: Path, args: argparse.Namespace) -> Path:
    """A 16:9 clip with audio, panning 2 px a frame, with ``--cuts`` hard cuts."""
    clip = tmp / "clip.mp4"
    w = max(64, args.size + args.size % 2)
    h = max(48, round(w * 9 / 16) // 2 * 2)
    cuts = tuple(round(args.frames * (k + 1) / (args.cuts + 1)) for k in range(args.cuts))
    make_clip(clip, frames=args.frames, size=(w, h), shift=(2, 1), audio=True, cuts=cuts)
    return clip


def per_iteration(frames: list[dict[str, Any]]) -> tuple[dict[int, list[float]], list[float]]:
    """Seconds per iteration at each scale of the cold frames, and at the final scale of the
    warm frames."""
    per_scale: dict[int, list[float]] = {}
    for f in frames:
        if f["kind"] == "cold":
            for long_side, iters, seconds in f["scales"]:
                per_scale.setdefault(int(long_side), []).append(seconds / max(iters, 1))
    warm = [f["scales"][-1][2] / max(f["scales"][-1][1], 1)
            for f in frames if f["kind"] == "warm"]
    return per_scale, warm


def projection(full: Config, side_times: dict[int, float | None], step: float | None,
               flow_per_warm: float) -> dict[str, Any]:
    """The measured seconds per iteration projected onto ``full``'s schedule."""
    sides = full.strotss.scale_sizes()
    cold = None
    if all(side_times.get(s) for s in sides):
        cold = sum(float(side_times[s] or 0.0) * full.strotss.iters for s in sides)
    warm = step * full.temporal.warm_iters + flow_per_warm if step else None
    shot = 100
    return {
        "projected_schedule": {"cold_iters_per_scale": full.strotss.iters, "scales": sides,
                               "warm_iters": full.temporal.warm_iters},
        "projected_cold_seconds": cold, "projected_warm_seconds": warm,
        "projected_warm_over_cold": warm / cold if cold and warm else None,
        "projected_frames_per_hour_100_frame_shot":
            3600 * shot / (cold + (shot - 1) * warm) if cold and warm else None}


def shares(frames: list[dict[str, Any]], summary: dict[str, Any], wall: float) -> dict[str, float]:
    """Where the wall time went, as shares of it."""
    def share(key: str) -> float:
        return sum(f[key] for f in frames) / wall

    parts = {"extractor_fwd_bwd": share("vgg_seconds"), "losses": share("loss_seconds"),
             "flow_mask_warp": share("flow_seconds"),
             "decode_encode_io": share("io_seconds")
             + (summary["plan_seconds"] + summary["assemble_seconds"]) / wall}
    parts["other_and_idle"] = 1 - sum(parts.values())
    return parts


def configure(args: argparse.Namespace) -> Config:
    """The configuration benchmarked: preset, config file and flags, as the CLI builds it."""
    if args.reads:
        sampling.DEFAULT_READ = args.reads
    base = build_config(args.preset, args.config, flag_overrides({
        "max_size": args.size, "scales": args.scales, "precision": args.precision,
        "cuda_graphs": args.cuda_graphs}))
    if args.allocator:
        base = replace(base, runtime=replace(base.runtime, allocator=args.allocator))
    return base


def run(args: argparse.Namespace, base: Config, device: torch.device
        ) -> tuple[dict[str, Any], float, dict[str, float], dict[str, float]]:
    """The pipeline on the clip, with the floor timed before and after it: the run's stats,
    its wall seconds, the pooled floor and each half's floor."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    clip = Path(args.input) if args.input else generated_clip(tmp, args)
    style: Path | torch.Tensor = Path(args.style) if args.style else pattern(512, 512, seed=2)
    # The extractor as the pipeline sets it up (bfloat16 VGG16 for mixed, the CPU products for
    # fast), so that the floor before the run times the same arithmetic as after it. The floor
    # is timed before and after the run and the two pooled: on a machine whose speed drifts
    # over the minutes of the run, a floor timed once moves by far more than the steps do.
    model, _ = extractor_for(base.runtime, device, None, False)
    info = probe(clip)
    ph, pw = processing_size(info.height, info.width, base.strotss.max_size)
    floor_repeats = 50 if device.type == "cuda" else 5
    before = floor_samples(model, (ph, pw), base.strotss, device, floor_repeats)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    settings: dict[str, Any] = {k: v for k, v in (("iters", args.iters),
                                                   ("warm_iters", args.warm_iters))
                                if v is not None}
    if args.cuts:
        settings["min_shot_frames"] = 2
    t0 = time.perf_counter()
    result = stylize_video(clip, style, tmp / "out.mp4", config=base, end=args.frames,
                           progress=False, work_dir=tmp / "work",
                           shots="auto" if args.cuts else "none", device=str(device),
                           **settings)
    wall = time.perf_counter() - t0
    stats = dict(result.stats, clip=str(clip))
    if [pw, ph] != list(stats["summary"]["processing_size"]):
        raise SystemExit(f"error: the floor was sized for {pw}x{ph}, the run processed "
                         f"{stats['summary']['processing_size']}")
    after = floor_samples(model, (ph, pw), StrotssConfig(**stats["config"]["strotss"]), device,
                          floor_repeats)
    floor = floor_medians({k: Timing(before[k].samples + after[k].samples) for k in before})
    return stats, wall, floor, {"before": floor_medians(before)["total"],
                                "after": floor_medians(after)["total"]}


def report(args: argparse.Namespace, stats: dict[str, Any], wall: float,
           floor: dict[str, float], halves: dict[str, float],
           device: torch.device) -> dict[str, Any]:
    """The run's figures: frames, steps, shares, memory, floor, ratio and projection."""
    summary, frames, cfg = stats["summary"], stats["frames"], stats["config"]
    cold = [f for f in frames if f["kind"] == "cold"]
    warm = [f for f in frames if f["kind"] == "warm"]
    per_scale, warm_iter = per_iteration(frames)
    final_side = max(per_scale) if per_scale else args.size
    step = _median(warm_iter) or _median(per_scale.get(final_side, []))
    side_times = {s: _median(v) for s, v in per_scale.items()}
    full = build_config(args.preset, args.config, flag_overrides({"max_size": args.size,
                                                                  "scales": args.scales}))
    parts = shares(frames, summary, wall)
    return {
        "precision": summary["precision"], "reads": sampling.DEFAULT_READ,
        "allocator": cfg["runtime"]["allocator"], "cuda_graphs": cfg["runtime"]["cuda_graphs"],
        "clip": stats["clip"], "frames": len(frames),
        "processing_size": summary["processing_size"],
        "measured_iters": {"cold_per_scale": cfg["strotss"]["iters"],
                           "warm": cfg["temporal"]["warm_iters"]},
        "cold_seconds_median": _median([f["seconds"] for f in cold]),
        "cold_seconds_each": [f["seconds"] for f in cold],
        "cold_seconds_after_first": _median([f["seconds"] for f in cold[1:]]),
        # Per cold frame: [long side, steps, loop seconds] per scale; the rest of the frame's
        # time is set-up outside the loops (style targets, content reads): where a first
        # frame's one-time costs sit.
        "cold_scale_loops": [f["scales"] for f in cold],
        "final_losses_median": {k: _median([f["losses"][k] for f in frames])
                                for k in ("total", "style", "content")},
        "warm_seconds_median": _median([f["seconds"] for f in warm]),
        "seconds_per_iteration_by_scale": {str(s): v for s, v in sorted(side_times.items())},
        "warm_seconds_per_iteration": step,
        "warm_seconds_per_iteration_each": warm_iter,
        "shares_of_wall": parts,
        "flow_mask_warp_decode_encode_share":
            parts["flow_mask_warp"] + parts["decode_encode_io"],
        "wall_seconds": wall,
        "peak_rss_mib": summary["peak_rss_mib"], "peak_gpu_mib": summary["peak_gpu_mib"],
        "gpu_mib_allocated_and_peak_by_frame": [f.get("gpu_mib") for f in frames]
        if device.type == "cuda" else None,
        "floor_seconds": floor,
        "floor_seconds_before_and_after_run": [halves["before"], halves["after"]],
        "ratio_iteration_to_floor": step / floor["total"] if step else None,
        **projection(full, side_times, step, _median([f["flow_seconds"] for f in warm]) or 0.0),
    }


def main() -> None:
    args = parse_args()
    base = configure(args)
    device = resolve_device(args.device)
    stats, wall, floor, halves = run(args, base, device)
    finish("video", report(args, stats, wall, floor, halves, device), args, device)


if __name__ == "__main__":
    main()
