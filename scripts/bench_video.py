#!/usr/bin/env python
"""Benchmark the whole video pipeline on a generated clip (or --input): cold and warm seconds per
frame, seconds per iteration at each scale, where the time goes, memory, throughput, and the
measured floor of one iteration (bare VGG16 forward+backward + the loss's products, timed alone
in the same process). Prints JSON.

    python scripts/bench_video.py --device cpu --size 256 --frames 4 --iters 10 --warm-iters 10
    python scripts/bench_video.py --device cuda --size 512 --frames 8

Iteration counts can be reduced so a CPU run takes minutes; the per-iteration figures are then
projected onto the configured schedule (``projected_*``: default 4 x 250 cold steps, 40 warm
steps unless --preset/--config say otherwise)."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))
from bench_image import floor_samples  # noqa: E402
from conftest import pattern_image, save_rgb  # noqa: E402
from media import make_clip  # noqa: E402

from strotss_video.config import build_config, flag_overrides  # noqa: E402
from strotss_video.features import sampling  # noqa: E402
from strotss_video.io.probe import probe  # noqa: E402
from strotss_video.pipeline.chain import processing_size  # noqa: E402
from strotss_video.pipeline.runtime import extractor_for, resolve_device  # noqa: E402
from strotss_video.pipeline.video import stylize_video  # noqa: E402


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def main() -> None:
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
    args = ap.parse_args()

    if args.reads:
        sampling.DEFAULT_READ = args.reads
    base = build_config(args.preset, args.config, flag_overrides({
        "max_size": args.size, "scales": args.scales, "precision": args.precision,
        "cuda_graphs": args.cuda_graphs}))
    if args.allocator:
        base = replace(base, runtime=replace(base.runtime, allocator=args.allocator))
    measured = {"iters": args.iters, "warm_iters": args.warm_iters}
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    if args.input:
        clip = Path(args.input)
    else:
        clip = tmp / "clip.mp4"
        w = max(64, args.size + args.size % 2)
        h = max(48, round(w * 9 / 16) // 2 * 2)
        cuts = tuple(round(args.frames * (k + 1) / (args.cuts + 1)) for k in range(args.cuts))
        make_clip(clip, frames=args.frames, size=(w, h), shift=(2, 1), audio=True, cuts=cuts)
    style = Path(args.style) if args.style else save_rgb(tmp / "style.png",
                                                         pattern_image(512, 512, seed=2))
    device = resolve_device(args.device)
    # The floor is timed before the run and again after it, and the two pooled: a machine
    # whose speed drifts over the minutes of the run then gives a floor from the same window
    # as the steps (a floor timed after the run alone moved by up to 30% between runs of
    # this command on a shared 2-core CPU, session 17).
    from strotss_video.config import StrotssConfig
    # As the pipeline will set it up (precision: bfloat16 VGG16 for mixed; the CPU products
    # for fast), so that the floor before the run times the same arithmetic as after it.
    model, _ = extractor_for(base.runtime, device, None, False)
    info = probe(clip)
    ph, pw = processing_size(info.height, info.width, base.strotss.max_size)
    floor_repeats = 50 if device.type == "cuda" else 5
    before = floor_samples(model, (ph, pw), base.strotss, model.dim, device, floor_repeats)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    result = stylize_video(clip, style, tmp / "out.mp4", config=base, end=args.frames,
                           progress=False, work_dir=tmp / "work",
                           shots="auto" if args.cuts else "none", device=str(device),
                           **({"min_shot_frames": 2} if args.cuts else {}),
                           **{k: v for k, v in measured.items() if v is not None})
    wall = time.perf_counter() - t0
    summary = result.stats["summary"]
    frames = result.stats["frames"]
    cfg = result.stats["config"]
    cold = [f for f in frames if f["kind"] == "cold"]
    warm = [f for f in frames if f["kind"] == "warm"]

    # Seconds per iteration at each scale (cold frames), and at the final scale (warm frames).
    per_scale: dict[int, list[float]] = {}
    for f in cold:
        for long_side, iters, seconds in f["scales"]:
            per_scale.setdefault(int(long_side), []).append(seconds / max(iters, 1))
    warm_iter = [f["scales"][-1][2] / max(f["scales"][-1][1], 1) for f in warm]
    final_side = max(per_scale) if per_scale else args.size

    def share(key: str) -> float:
        return sum(f[key] for f in frames) / wall

    extractor = share("vgg_seconds")
    losses = share("loss_seconds")
    flow = share("flow_seconds")
    io = share("io_seconds") + (summary["plan_seconds"] + summary["assemble_seconds"]) / wall

    assert (pw, ph) == tuple(summary["processing_size"]), "floor sized for another frame size"
    after = floor_samples(model, (ph, pw), StrotssConfig(**cfg["strotss"]), model.dim, device,
                          floor_repeats)

    def medians(samples: dict[str, list[float]]) -> dict[str, float]:
        out = {k: statistics.median(v) for k, v in samples.items()}
        out["total"] = sum(out.values())
        return out
    floor = medians({k: before[k] + after[k] for k in before})
    pipeline_iter = _median(warm_iter) or _median(per_scale.get(final_side, []))

    # Projection onto the configured schedule (the measured run may use fewer steps).
    full = build_config(args.preset, args.config, flag_overrides({"max_size": args.size,
                                                                  "scales": args.scales}))
    sides = full.strotss.scale_sizes()
    side_times = {s: _median(v) for s, v in per_scale.items()}
    projected_cold = None
    if all(side_times.get(s) for s in sides):
        projected_cold = sum(side_times[s] * full.strotss.iters for s in sides)  # type: ignore[operator]
    flow_per_warm = _median([f["flow_seconds"] for f in warm]) or 0.0
    projected_warm = (pipeline_iter * full.temporal.warm_iters + flow_per_warm) \
        if pipeline_iter else None
    shot = 100
    fph = 3600 * shot / (projected_cold + (shot - 1) * projected_warm) \
        if projected_cold and projected_warm else None

    print(json.dumps({
        "benchmark": "bench_video", "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "precision": summary["precision"], "reads": sampling.DEFAULT_READ,
        "allocator": base.runtime.allocator,
        "cuda_graphs": cfg["runtime"]["cuda_graphs"],
        "clip": str(clip), "frames": len(frames), "processing_size": [pw, ph],
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
        "warm_seconds_per_iteration": pipeline_iter,
        "shares_of_wall": {"extractor_fwd_bwd": extractor, "losses": losses,
                           "flow_mask_warp": flow, "decode_encode_io": io,
                           "other_and_idle": 1 - extractor - losses - flow - io},
        "flow_mask_warp_decode_encode_share": flow + io,
        "wall_seconds": wall,
        "peak_rss_mib": summary["peak_rss_mib"],
        "peak_gpu_mib": summary["peak_gpu_mib"],
        "gpu_mib_allocated_and_peak_by_frame": [f.get("gpu_mib") for f in frames]
        if device.type == "cuda" else None,
        "floor_seconds": floor,
        "floor_seconds_before_and_after_run": [medians(before)["total"], medians(after)["total"]],
        "ratio_iteration_to_floor": pipeline_iter / floor["total"] if pipeline_iter else None,
        "projected_schedule": {"cold_iters_per_scale": full.strotss.iters,
                               "scales": sides, "warm_iters": full.temporal.warm_iters},
        "projected_cold_seconds": projected_cold,
        "projected_warm_seconds": projected_warm,
        "projected_warm_over_cold": projected_warm / projected_cold
        if projected_cold and projected_warm else None,
        "projected_frames_per_hour_100_frame_shot": fph,
    }, indent=2, default=str))


if __name__ == "__main__":
    main()
