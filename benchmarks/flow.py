"""The flow backends and the consistency checker against the Sintel ground truth in
../shared/data/flow (frames 2->3 of alley_1 and cave_2); docs/flow.md has the figures.

    python -m benchmarks.flow [--data DIR] [--repeats 7] [--raft-timing]

EPE = mean end-point error over pixels not marked ``invalid``; ``epe_noc`` also excludes the
ground-truth occlusions. Times are wall-clock ms for one flow field (one ordered pair) at
1024x436, median of ``--repeats``; a forward+backward pair costs twice that. Occlusion
precision/recall compare our checker's "unreliable" pixels of frame 2 (flows 2->3 and 3->2)
with ``gt/occlusions`` over valid pixels."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import REPO, add_output_arguments, finish, time_calls
from strotss_video.errors import UsageError
from strotss_video.flow import make_flow, occlusion_mask, read_flo, warp
from strotss_video.flow.consistency import consistency_checks
from strotss_video.io import read_image

SCENES = ("sintel_alley_1", "sintel_cave_2")
PASSES = ("clean", "final")


def timed(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[torch.Tensor, float]:
    """``fn``'s result (an untimed first call) and its median milliseconds over ``repeats``."""
    out = fn()
    return out, round(time_calls(fn, torch.device("cpu"), repeats, warmup=0).median * 1000.0, 1)


def epe(flow: torch.Tensor, gt: torch.Tensor, keep: torch.Tensor) -> float:
    err = (flow - gt).norm(dim=1)[0]
    return round(float(err[keep].mean()), 3)


def mask_png(path: Path) -> torch.Tensor:
    return read_image(path)[0, 0] > 0.5


def precision_recall(pred: torch.Tensor, gt: torch.Tensor, keep: torch.Tensor) -> dict[str, float]:
    p, g = pred[keep], gt[keep]
    tp = float((p & g).sum())
    return {"precision": round(tp / max(float(p.sum()), 1.0), 3),
            "recall": round(tp / max(float(g.sum()), 1.0), 3),
            "predicted_fraction": round(float(p.float().mean()), 4)}


def occlusion_scores(fwd: torch.Tensor, bwd: torch.Tensor, gt_occ: torch.Tensor,
                     valid: torch.Tensor) -> dict[str, dict[str, float]]:
    """Our unreliable pixels of frame 2 for each criterion set, vs the ground truth."""
    checks = consistency_checks(fwd, bwd)
    occ = checks["occluded"][0, 0]
    oof = checks["out_of_frame"][0, 0]
    full = (occlusion_mask(fwd, bwd) < 0.5)[0, 0]
    return {"occlusion_only": precision_recall(occ, gt_occ, valid),
            "occlusion+out_of_frame": precision_recall(occ | oof, gt_occ, valid),
            "full_checker": precision_recall(full, gt_occ, valid)}


def dis_warm_start(preset: str, f1: torch.Tensor, f2: torch.Tensor,
                   f3: torch.Tensor) -> torch.Tensor:
    """Flow 2->3 initialised with flow 1->2 (the experiment that decided against warm starts)."""
    import cv2  # only to reach the raw DIS object for this experiment

    from strotss_video.flow.base import to_gray_u8

    dis = cv2.DISOpticalFlow_create({"ultrafast": 0, "fast": 1, "medium": 2}[preset])
    g1, g2, g3 = (to_gray_u8(f)[0] for f in (f1, f2, f3))
    init = dis.calc(g1, g2, None)
    out = dis.calc(g2, g3, init.copy())
    return torch.from_numpy(out).permute(2, 0, 1)[None]


def measure_scene(root: Path, methods: dict[str, Any], repeats: int) -> dict[str, object]:
    """One Sintel scene, both renderings: each method's EPE, time and photometric error, DIS
    warm-started, and the checker's occlusions against the ground truth."""
    gt = torch.from_numpy(read_flo(root / "gt" / "frame_0002.flo")).permute(2, 0, 1)[None]
    valid = ~mask_png(root / "gt" / "invalid" / "frame_0002.png")
    gt_occ = mask_png(root / "gt" / "occlusions" / "frame_0002.png")
    noc = valid & ~gt_occ
    mag = gt.norm(dim=1)[0][valid]
    scene_out: dict[str, object] = {
        "gt_motion_px": {"mean": round(float(mag.mean()), 2), "max": round(float(mag.max()), 2)},
        "gt_occluded_fraction": round(float(gt_occ[valid].float().mean()), 4)}
    for render in PASSES:
        frames = {i: read_image(root / render / f"frame_{i:04d}.png") for i in (1, 2, 3)}
        f2, f3 = frames[2], frames[3]
        out: dict[str, Any] = {}
        for name, est in methods.items():
            fwd, ms = timed(partial(est, f2, f3), repeats)
            photo = (warp(f3, fwd) - f2).abs().mean(1)[0][noc]
            out[name] = {"epe": epe(fwd, gt, valid), "epe_noc": epe(fwd, gt, noc),
                         "ms_per_flow": ms, "photometric_l1_noc": round(float(photo.mean()), 4)}
        for preset in ("fast", "medium"):
            warm = dis_warm_start(preset, frames[1], f2, f3)
            out[f"dis-{preset}"]["epe_warm_start_from_1to2"] = epe(warm, gt, valid)
        dis = methods["dis-medium"]
        fwd, bwd = dis(f2, f3), dis(f3, f2)
        out["occlusion_dis_medium"] = occlusion_scores(fwd, bwd, gt_occ, valid)
        out["occlusion_gt_forward_dis_backward"] = occlusion_scores(gt, bwd, gt_occ, valid)
        scene_out[render] = out
    return scene_out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "flow")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--raft-timing", action="store_true",
                        help="also time a randomly initialised raft_large on the CPU (speed only)")
    add_output_arguments(parser)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"error: {args.data} not found; pass --data DIR with the Sintel folders",
              file=sys.stderr)
        return 2

    methods: dict[str, Any] = {f"dis-{p}": make_flow("dis", preset=p)
                               for p in ("ultrafast", "fast", "medium")}
    methods["farneback"] = make_flow("farneback")
    try:
        methods["raft-large"] = make_flow("raft")
    except UsageError as exc:
        raft_note = str(exc)
    else:
        raft_note = "weights found"
    report: dict[str, object] = {
        "raft": raft_note,
        "scenes": {scene: measure_scene(args.data / scene, methods, args.repeats)
                   for scene in SCENES}}
    if args.raft_timing:
        from torchvision.models.optical_flow import raft_large

        from strotss_video.flow.raft import RAFTFlow

        raft = RAFTFlow(network=raft_large(weights=None))
        a, b = torch.rand(1, 3, 436, 1024), torch.rand(1, 3, 436, 1024)
        _, ms = timed(partial(raft, a, b), max(1, args.repeats // 2))
        report["raft_large_random_weights_cpu_ms_per_flow"] = ms
    finish("flow", report, args, torch.device("cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
