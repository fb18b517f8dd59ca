"""Where is a stylised video's flicker? Its warping error split between the pixels the chain's
mask rejects (they start a warm frame from the fill) and the rest; prints JSON.

The warping error is the evaluator's (``strotss-video evaluate``: Farneback flow on the input,
occlusion + out-of-frame + motion-boundary mask). The chain's mask is recomputed as a warm
frame sees it: DIS (``--dis-preset``) between consecutive input frames at the output's size,
the reliability mask raised by the ``checked`` colour test and (``--neighbour-flow on``, the
chain's default) by the neighbours' vectors, carried onto the evaluator's grid.
A pixel counts as rejected where that mask is below 0.5. Each pair's ``rejected`` error is the
part of its warping error summed over rejected pixels (same denominator), so ``rejected`` <=
``total``.

    python scripts/flicker_split.py ../shared/data/videos/imageio_realshort.mp4 \\
        out/a_default.mp4 out/a_preview.mp4 --end 8

``--box NAME=X0,Y0,X1,Y1`` (output pixels, end exclusive; repeatable) adds each output's share
of its summed error inside the box, and the share of the last output's excess over the first's;
``--map PNG`` writes the summed per-pixel error of every output and the count of pairs each pixel
was rejected in, side by side. ``--flow-scale K`` computes the chain's DIS on the input decoded
at K times the output's size (0: the clip's own size) and scales the flows down, to see whether
a finer flow rejects fewer pixels (``chain_rejected_share``: the mask below 0.5, on its grid).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strotss_video.flow import make_flow  # noqa: E402
from strotss_video.flow.consistency import occlusion_mask  # noqa: E402
from strotss_video.flow.warp import resize_flow, warp  # noqa: E402
from strotss_video.metrics import video_frames  # noqa: E402
from strotss_video.tensorops import resize  # noqa: E402
from strotss_video.temporal.coherence import neighbour_flow, warm_masks  # noqa: E402


Box = tuple[int, int, int, int]


def split(video: Path, outputs: list[Path], end: int, dis_preset: str, flow_scale: float = 1.0,
          boxes: dict[str, Box] | None = None, map_path: Path | None = None,
          neighbours: bool = True) -> dict[str, Any]:
    """Per pair and per output: total warping error and the part in rejected pixels."""
    outs = {str(p): list(video_frames(p, end=end)) for p in outputs}
    h, w = next(iter(outs.values()))[0].shape[-2:]
    inputs = list(video_frames(video, end=end, size=(h, w)))
    if flow_scale == 1.0:
        flow_inputs = inputs
    elif flow_scale == 0.0:
        flow_inputs = list(video_frames(video, end=end))
    else:
        flow_inputs = [resize(f, (round(h * flow_scale), round(w * flow_scale))) for f in
                       video_frames(video, end=end)]
    evaluator, chain_flow = make_flow("farneback"), make_flow("dis", preset=dis_preset)
    sums = {name: torch.zeros(h, w, dtype=torch.float64) for name in outs}
    rejected_count = torch.zeros(h, w)
    pairs = []
    with torch.no_grad():
        for t in range(len(inputs) - 1):
            a, b = inputs[t], inputs[t + 1]
            fw, bw = evaluator(a, b), evaluator(b, a)
            keep = occlusion_mask(fw, bw, motion_boundaries=True, out_of_frame=True)
            count = float(keep.sum())
            # The chain's mask of frame t+1 (its flows to frame t), as a warm frame builds it.
            fa, fb = flow_inputs[t], flow_inputs[t + 1]
            forward = resize_flow(chain_flow(fa, fb), (h, w))
            backward = resize_flow(chain_flow(fb, fa), (h, w))
            mask, _ = warm_masks(a, b, backward, forward, "gaussian", checked=True)
            if neighbours:
                _, mask = neighbour_flow(backward, mask, a, b)
            rejected = (warp(mask, fw) < 0.5).float() * keep  # onto frame t's grid
            rejected_count += rejected[0, 0]
            row: dict[str, Any] = {"pair": t, "rejected_share_of_pixels": float(rejected.sum()) / count,
                                   "chain_rejected_share": float((mask < 0.5).float().mean())}
            for name, frames in outs.items():
                diff = (frames[t] - warp(frames[t + 1], fw)).square().sum(1, keepdim=True)
                sums[name] += (diff * keep)[0, 0].double() / (3 * count)
                row[name] = {"total": float((diff * keep).sum()) / (3 * count),
                             "rejected": float((diff * rejected).sum()) / (3 * count)}
            pairs.append(row)
    summary: dict[str, Any] = {name: {"total": statistics.mean(r[name]["total"] for r in pairs),
                                      "rejected": statistics.mean(r[name]["rejected"] for r in pairs)}
                               for name in outs}
    for s in summary.values():
        s["rejected_share"] = s["rejected"] / s["total"] if s["total"] else None
    result: dict[str, Any] = {
        "video": str(video), "flow_scale": flow_scale, "pairs": pairs, "summary": summary,
        "rejected_share_of_pixels": statistics.mean(r["rejected_share_of_pixels"] for r in pairs),
        "chain_rejected_share": statistics.mean(r["chain_rejected_share"] for r in pairs)}
    if boxes:
        names = list(outs)
        excess = sums[names[-1]] - sums[names[0]]
        for name in names:
            summary[name]["boxes"] = {k: float(sums[name][y0:y1, x0:x1].sum() / sums[name].sum())
                                      for k, (x0, y0, x1, y1) in boxes.items()}
        result["excess_of_last_over_first"] = {
            "total": float(excess.sum()) / len(pairs),
            "boxes": {k: float(excess[y0:y1, x0:x1].sum() / excess.sum())
                      for k, (x0, y0, x1, y1) in boxes.items()}}
    if map_path is not None:
        write_map(map_path, list(sums.values()), rejected_count)
    return result


def write_map(path: Path, sums: list[torch.Tensor], rejected: torch.Tensor) -> None:
    """Heat maps side by side: each output's summed error on one scale (the first output's
    99.5% quantile as full), then the rejected-pair count."""
    import cv2  # scripts may use OpenCV; only for the picture
    import numpy as np

    top = float(torch.quantile(sums[0].flatten().float(), 0.995)) or 1.0
    tiles = [(s.float() / top).clamp(0, 1) for s in sums]
    tiles.append(rejected / max(float(rejected.max()), 1.0))
    image = (torch.cat(tiles, dim=1).numpy() * 255).astype(np.uint8)
    cv2.imwrite(str(path), cv2.applyColorMap(image, cv2.COLORMAP_INFERNO))


def parse_box(text: str) -> tuple[str, Box]:
    """``NAME=X0,Y0,X1,Y1`` -> (name, box)."""
    name, _, coords = text.partition("=")
    values = [int(v) for v in coords.split(",")]
    if not name or len(values) != 4:
        raise argparse.ArgumentTypeError(f"--box wants NAME=X0,Y0,X1,Y1, got {text!r}")
    return name, (values[0], values[1], values[2], values[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", type=Path, help="the input video the outputs were made from")
    parser.add_argument("outputs", type=Path, nargs="+", help="stylised videos (same size)")
    parser.add_argument("--end", type=int, default=8, help="frames read (default 8)")
    parser.add_argument("--dis-preset", default="medium", help="the chain's DIS preset")
    parser.add_argument("--flow-scale", type=float, default=1.0,
                        help="the chain's flow on the input at K x the output size (0: native)")
    parser.add_argument("--box", type=parse_box, action="append", default=[],
                        help="NAME=X0,Y0,X1,Y1: share of the error inside (repeatable)")
    parser.add_argument("--map", type=Path, help="PNG of the per-pixel error sums")
    parser.add_argument("--neighbour-flow", choices=("on", "off"), default="on",
                        help="the chain's temporal.neighbour_flow (default on, as the chain)")
    opts = parser.parse_args()
    print(json.dumps(split(opts.video, opts.outputs, opts.end, opts.dis_preset, opts.flow_scale,
                           dict(opts.box), opts.map, opts.neighbour_flow == "on"), indent=2))


if __name__ == "__main__":
    main()
