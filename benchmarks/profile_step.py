"""Where one optimisation step's time goes, by operator; prints JSON.

Runs the image core (one scale, faithful point counts) on a synthetic content/style pair under
the PyTorch profiler and reports each operator's self time per step, grouped by operator and
input shapes, largest first, with the set-up (content features, candidates) included once and
divided over the steps as in a warm frame. The profiler slows the step (~15%) and can charge a
small operator with the wait for the thread pool left by the one before it (a 5-d product of
the palette cost showed 20+ ms here while the whole palette cost takes 4-7 ms timed in the
loop): read it to find where the work is, and time a change with benchmarks.video.

    python -m benchmarks.profile_step --size 256 144 --iters 10 --top 30

On CUDA (``--device cuda``) it also counts the kernels a step launches and lists the kernels
with the most device time: there a step is bound by the number of small kernels.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.common import add_output_arguments, finish
from benchmarks.image import pattern
from strotss_video.config import PRECISIONS, RuntimeConfig, StrotssConfig
from strotss_video.pipeline.runtime import extractor_for, resolve_device
from strotss_video.stylize.optimize import ScaleStep, StyleBank, stylize


def _kernels(prof: profile, iters: int, top: int) -> dict[str, Any]:
    """Kernels launched per step and the ones with the most device time (CUDA only)."""
    from torch.autograd import DeviceType

    by_name: dict[str, list[float]] = {}
    for e in prof.events():
        if e.device_type != DeviceType.CUDA:
            continue
        us = getattr(e, "device_time", None)
        if us is None:
            us = getattr(e, "cuda_time", 0.0)
        entry = by_name.setdefault(e.name[:120], [0.0, 0.0])
        entry[0] += float(us)
        entry[1] += 1
    count = sum(c for _, c in by_name.values())
    busy = sum(t for t, _ in by_name.values())
    ranked = sorted(by_name.items(), key=lambda kv: -kv[1][0])[:top]
    return {"kernels_per_step": round(count / iters, 1),
            "kernel_ms_per_step": round(busy / 1000.0 / iters, 3),
            "top": [{"kernel": k, "ms_per_step": round(t / 1000.0 / iters, 4),
                     "calls_per_step": round(c / iters, 2)} for k, (t, c) in ranked]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, nargs=2, default=[256, 144], metavar=("W", "H"))
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=PRECISIONS, default="float32")
    add_output_arguments(ap)
    args = ap.parse_args()

    device = resolve_device(args.device)
    extractor, _ = extractor_for(RuntimeConfig(precision=args.precision), device, None, False)
    w, h = args.size
    long_side = max(w, h)
    cfg = StrotssConfig(max_size=long_side, scales=1, iters=args.iters)
    content = pattern(h, w, 1, device)
    style = pattern(long_side, long_side, 2, device)
    bank = StyleBank(extractor, style, cfg)
    bank.targets(long_side)
    plan = [ScaleStep(long_side, args.iters, cfg.final_lr, 2.0, add_content_band=False)]
    stylize(content, bank, extractor, cfg, plan=plan, progress=False)  # warm-up
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, record_shapes=True) as prof:
        report = stylize(content, bank, extractor, cfg, plan=plan, progress=False).scales[0]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    kernels = _kernels(prof, args.iters, args.top) if device.type == "cuda" else None
    rows: list[dict[str, Any]] = []
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key.startswith("aten::") or e.key.startswith("mkldnn"):
            rows.append({"op": e.key, "shapes": str(e.input_shapes),
                         "ms_per_step": e.self_cpu_time_total / 1000.0 / args.iters,
                         "calls_per_step": e.count / args.iters})
    rows.sort(key=lambda r: -r["ms_per_step"])
    total = sum(r["ms_per_step"] for r in rows)
    finish("profile-step", {
        "precision": args.precision, "size": [w, h],
        "seconds_per_step_profiled": report.seconds / report.iterations,
        "ops_ms_per_step_total": round(total, 2),
        "ops_calls_per_step": round(sum(r["calls_per_step"] for r in rows), 1),
        "cuda": kernels,
        "top": [{**r, "ms_per_step": round(r["ms_per_step"], 3),
                 "calls_per_step": round(r["calls_per_step"], 2)} for r in rows[:args.top]],
    }, args, device)


if __name__ == "__main__":
    main()
