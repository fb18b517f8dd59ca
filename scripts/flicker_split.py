"""Where is a stylised video's flicker? Its warping error split between the pixels the chain's
mask rejects (they start a warm frame from the fill) and the rest; prints JSON.

The warping error is the evaluator's (``scripts/evaluate.py``: Farneback flow on the input,
occlusion + out-of-frame + motion-boundary mask). The chain's mask is recomputed as a warm
frame sees it: DIS (``--dis-preset``) between consecutive input frames at the output's size,
the reliability mask raised by the ``checked`` colour test, carried onto the evaluator's grid.
A pixel counts as rejected where that mask is below 0.5. Each pair's ``rejected`` error is the
part of its warping error summed over rejected pixels (same denominator), so ``rejected`` <=
``total``.

    python scripts/flicker_split.py ../shared/data/videos/imageio_realshort.mp4 \\
        out/a_default.mp4 out/a_preview.mp4 --end 8
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
from strotss_video.flow.warp import warp  # noqa: E402
from strotss_video.metrics import video_frames  # noqa: E402
from strotss_video.temporal.coherence import warm_masks  # noqa: E402


def split(video: Path, outputs: list[Path], end: int, dis_preset: str) -> dict[str, Any]:
    """Per pair and per output: total warping error and the part in rejected pixels."""
    outs = {str(p): list(video_frames(p, end=end)) for p in outputs}
    h, w = next(iter(outs.values()))[0].shape[-2:]
    inputs = list(video_frames(video, end=end, size=(h, w)))
    evaluator, chain_flow = make_flow("farneback"), make_flow("dis", preset=dis_preset)
    pairs = []
    with torch.no_grad():
        for t in range(len(inputs) - 1):
            a, b = inputs[t], inputs[t + 1]
            fw, bw = evaluator(a, b), evaluator(b, a)
            keep = occlusion_mask(fw, bw, motion_boundaries=True, out_of_frame=True)
            count = float(keep.sum())
            # The chain's mask of frame t+1 (its flows to frame t), as a warm frame builds it.
            forward, backward = chain_flow(a, b), chain_flow(b, a)
            mask, _ = warm_masks(a, b, backward, forward, "gaussian", checked=True)
            rejected = (warp(mask, fw) < 0.5).float() * keep  # onto frame t's grid
            row: dict[str, Any] = {"pair": t, "rejected_share_of_pixels": float(rejected.sum()) / count}
            for name, frames in outs.items():
                diff = (frames[t] - warp(frames[t + 1], fw)).square().sum(1, keepdim=True)
                row[name] = {"total": float((diff * keep).sum()) / (3 * count),
                             "rejected": float((diff * rejected).sum()) / (3 * count)}
            pairs.append(row)
    summary = {name: {"total": statistics.mean(r[name]["total"] for r in pairs),
                      "rejected": statistics.mean(r[name]["rejected"] for r in pairs)}
               for name in outs}
    for s in summary.values():
        s["rejected_share"] = s["rejected"] / s["total"] if s["total"] else None
    return {"video": str(video), "pairs": pairs, "summary": summary,
            "rejected_share_of_pixels": statistics.mean(r["rejected_share_of_pixels"]
                                                        for r in pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", type=Path, help="the input video the outputs were made from")
    parser.add_argument("outputs", type=Path, nargs="+", help="stylised videos (same size)")
    parser.add_argument("--end", type=int, default=8, help="frames read (default 8)")
    parser.add_argument("--dis-preset", default="medium", help="the chain's DIS preset")
    opts = parser.parse_args()
    print(json.dumps(split(opts.video, opts.outputs, opts.end, opts.dis_preset), indent=2))


if __name__ == "__main__":
    main()
