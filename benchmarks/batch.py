"""Shots in parallel: a batch manifest run with one and two workers (``workers``), and what
optimising several shots as one batch could gain on one device (``batched``).

    python -m benchmarks.batch workers --frames 24 --preset preview --max-size 64 --scales 2
    python -m benchmarks.batch batched --device cuda --size 512 288 --batches 1 2 4 8

``workers``: two generated videos with one cut each (four shots), run with ``--workers 1`` and
``--workers 2``. Each worker gets cores / workers threads (the default), so one worker uses
every core for one shot at a time and two run two shots at once with half the threads each.
Frame identity is checked between runs with the same per-task thread count (PyTorch's CPU
reductions depend on it); the largest pixel difference between the default-thread runs is
reported.

``batched``: a step is one VGG16 forward+backward of the image plus the loss's work on ~1000
sampled points. Shots optimised together would share the forward+backward as one batch; the
loss work is per image. This times the forward+backward at batch 1, 2, 4, ... (eagerly, and on
CUDA also replayed as a CUDA graph, as the pipeline's steps are) and the loss products of one
image, and projects the seconds per image-step two ways::

    per_image_step(b)      = vgg(b) / b + products(1)          (floor terms only)
    per_image_full_step(b) = step(1) - vgg(1) + vgg(b) / b     (a real step, measured)

``gain_*`` is the batch-1 figure over the batch-b one: the most a batched optimiser could raise
throughput by. Near 1, the device is already busy at batch 1.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from benchmarks.common import Timing, add_output_arguments, finish, time_calls
from benchmarks.image import floor_medians, floor_samples, one_scale_setup, pattern, timed_runs
from strotss_video.config import PRECISIONS, RuntimeConfig, StrotssConfig
from strotss_video.features.vgg import FeatureExtractor
from strotss_video.io.image import read_png_rgb, write_image
from strotss_video.pipeline.batch import run_batch
from strotss_video.pipeline.runtime import extractor_for, resolve_device
from tests.media import make_clip


def _frames_of(root: Path) -> dict[str, np.ndarray]:
    """Every finished frame of a batch's work directory, by job and frame name."""
    return {f"{p.parent.parent.name}/{p.name}": read_png_rgb(p)  # type: ignore[misc]
            for p in sorted(root.glob("*/frames/*.png"))}


def workers(args: argparse.Namespace) -> dict[str, Any]:
    """The same four-shot manifest with one and two workers, ``--repeats`` times in turn."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    n, (cw, ch) = args.frames, args.clip_size
    make_clip(tmp / "a.mp4", frames=n, size=(cw, ch), cuts=(n // 2,), shift=(1, 0))
    make_clip(tmp / "b.mp4", frames=n, size=(cw - 16, ch), cuts=(n // 2,), shift=(1, 0), seed=5)
    write_image(tmp / "style.png", pattern(128, 128, seed=2))

    def run(tag: str, count: int, **extra: object) -> tuple[float, dict[str, np.ndarray]]:
        (tmp / tag).mkdir()
        manifest = tmp / f"{tag}.yaml"
        manifest.write_text(yaml.safe_dump({
            "defaults": {"preset": args.preset, "max_size": args.max_size, "scales": args.scales,
                         "min_shot_frames": 5, "crf": 0, "device": args.device, **extra},
            "jobs": [{"input": "a.mp4", "style": "style.png", "output": f"{tag}/a.mp4"},
                     {"input": "b.mp4", "style": "style.png", "output": f"{tag}/b.mp4"}]}))
        t0 = time.perf_counter()
        result = run_batch(manifest, workers=count, work_dir=tmp / f"{tag}-work",
                           keep_work=True, progress=False)
        if result.shots_run != 4:
            raise SystemExit(f"error: expected 4 shots, ran {result.shots_run}")
        return time.perf_counter() - t0, _frames_of(tmp / f"{tag}-work")

    times: dict[int, list[float]] = {1: [], 2: []}
    frames: dict[int, dict[str, np.ndarray]] = {}
    for r in range(args.repeats):
        for count in (1, 2):
            seconds, frames[count] = run(f"w{count}-r{r}", count)
            times[count].append(seconds)
    single1 = single2 = identical = None
    if not args.skip_thread_runs:
        single1, same1 = run("w1-t1", 1, threads=1)
        single2, same2 = run("w2-t1", 2, threads=1)
        identical = sorted(same1) == sorted(same2) and all(
            np.array_equal(same1[k], same2[k]) for k in same1)
    a, b = frames[1], frames[2]
    med = {w: statistics.median(t) for w, t in times.items()}
    return {
        "frames_total": 2 * n, "shots": 4, "max_size": args.max_size, "preset": args.preset,
        "clip_size": [cw, ch], "seconds_workers_1": Timing(tuple(times[1])).to_dict(),
        "seconds_workers_2": Timing(tuple(times[2])).to_dict(),
        "speedup": med[1] / med[2],
        "seconds_workers_1_threads_1": single1, "seconds_workers_2_threads_1": single2,
        "speedup_one_thread_per_worker": single1 / single2 if single1 and single2 else None,
        "identical_frames_same_threads": identical,
        "max_pixel_diff_default_threads": max(
            int(np.abs(a[k].astype(int) - b[k].astype(int)).max()) for k in a),
        "work": str(tmp)}


def _fwd_bwd(extractor: FeatureExtractor, image: torch.Tensor) -> Callable[[], torch.Tensor]:
    """One forward+backward of ``image`` (B,3,H,W), every map's gradient all ones."""
    def run() -> torch.Tensor:
        maps = extractor(image)
        (grad,) = torch.autograd.grad(maps, image, [torch.ones_like(m) for m in maps])
        return grad
    return run


def _graphed(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """``fn`` captured once as a CUDA graph (warm-up on a side stream first, as torch asks)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def batched(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Per-image step time at each batch size, projected from measured pieces."""
    extractor, _ = extractor_for(RuntimeConfig(precision=args.precision), device, None, False)
    w, h = args.size
    products = floor_medians(floor_samples(extractor, (h, w), StrotssConfig(), device,
                                           args.repeats))
    loss_products = products["total"] - products["vgg_forward_backward"]
    # One real step at batch 1: a one-scale optimisation at this size, run as warm frames run.
    step_cfg = StrotssConfig(max_size=max(w, h), scales=1, iters=args.step_iters)
    graphs = "on" if device.type == "cuda" else "off"
    content, bank, plan = one_scale_setup(extractor, (h, w), step_cfg, args.step_iters, device)
    step_1 = statistics.median(r.loop_seconds / r.iterations for r in
                               timed_runs(content, bank, extractor, step_cfg, plan, graphs, 3))
    modes = ["eager", "graph"] if device.type == "cuda" else ["eager"]
    rows: list[dict[str, Any]] = []
    for b in sorted(set(args.batches) | {1}):
        image = torch.rand(b, 3, h, w, device=device, requires_grad=True)
        row: dict[str, Any] = {"batch": b}
        for mode in modes:
            fn = _fwd_bwd(extractor, image)
            seconds = time_calls(_graphed(fn) if mode == "graph" else fn, device,
                                 args.repeats).median
            row[f"vgg_seconds_{mode}"] = seconds
            row[f"per_image_step_{mode}"] = seconds / b + loss_products
        mode = modes[-1]  # the way the pipeline's steps run on this device
        vgg_1 = (rows[0] if rows else row)[f"vgg_seconds_{mode}"]
        row["per_image_full_step"] = step_1 - vgg_1 + row[f"vgg_seconds_{mode}"] / b
        if device.type == "cuda":
            row["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
            torch.cuda.reset_peak_memory_stats(device)
        rows.append(row)
    for row in rows:
        for mode in modes:
            row[f"gain_over_batch_1_{mode}"] = (rows[0][f"per_image_step_{mode}"]
                                                / row[f"per_image_step_{mode}"])
        row["gain_full_step"] = step_1 / row["per_image_full_step"]
    return {"precision": args.precision, "size": [w, h],
            "loss_products_seconds_one_image": loss_products,
            "step_seconds_one_image": step_1, "step_mode": graphs,
            "floor_one_image": products, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    wk = sub.add_parser("workers", help="a four-shot manifest with 1 and 2 workers")
    wk.add_argument("--frames", type=int, default=24, help="frames per video (one cut each)")
    wk.add_argument("--max-size", type=int, default=64)
    wk.add_argument("--preset", default="preview")
    wk.add_argument("--scales", type=int, default=2, help="2 at 64 px (VGG needs 16 px)")
    wk.add_argument("--repeats", type=int, default=1)
    wk.add_argument("--clip-size", type=int, nargs=2, default=(96, 64), metavar=("W", "H"),
                    help="first clip's size (the second is 16 px narrower)")
    wk.add_argument("--device", default="auto", help="auto | cpu | cuda (one GPU: the workers "
                    "share it, i.e. shots optimised concurrently on one device)")
    wk.add_argument("--skip-thread-runs", action="store_true",
                    help="skip the one-thread-per-worker pair (identity check)")
    bt = sub.add_parser("batched", help="what one batched optimisation of several shots "
                                        "could gain")
    bt.add_argument("--device", default="auto")
    bt.add_argument("--size", type=int, nargs=2, default=[512, 288], metavar=("W", "H"))
    bt.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    bt.add_argument("--precision", choices=PRECISIONS, default="auto")
    bt.add_argument("--repeats", type=int, default=20)
    bt.add_argument("--step-iters", type=int, default=50, help="steps of the real batch-1 run")
    for p in (wk, bt):
        add_output_arguments(p)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.mode == "workers":
        finish("batch-workers", workers(args), args, device)
    else:
        finish("batch-batched", batched(args, device), args, device)


if __name__ == "__main__":
    main()
