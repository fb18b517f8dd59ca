#!/usr/bin/env python
"""Is --preset preview a faithful preview? Its warping error and style distance against the
default (faithful) settings at the same output size, on real clips; prints JSON.

For each clip: stylise the first N frames with the defaults and with the preview preset, both
at --max-size S (temporal on), then measure on the decoded outputs
- the warping error (`strotss-video evaluate`: Farneback flow, occlusion/motion-boundary mask);
- the style distance: the STROTSS style terms (REMD + moment + palette) of each output frame
  against the style image, read by one fixed evaluator (VGG16 float32, 1024 output points,
  5000 style points, the mean over 4 point draws) whatever the settings that made the frame;
  and the content distance (self-similarity term against the input frame) likewise.

    python scripts/compare_preview.py ../shared/data/videos/cotracker_bear.mp4 \
        --style ../shared/data/styles/udnie.jpg --frames 8 --max-size 256
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))
from acceptance_video import _run, evaluate  # noqa: E402

from strotss_video.config import RuntimeConfig, StrotssConfig  # noqa: E402
from strotss_video.features.sampling import random_pixels, read_bilinear  # noqa: E402
from strotss_video.io.image import read_image  # noqa: E402
from strotss_video.losses import strotss_loss  # noqa: E402
from strotss_video.losses.content import self_similarity  # noqa: E402
from strotss_video.losses.ops import unit_rows  # noqa: E402
from strotss_video.metrics import video_frames  # noqa: E402
from strotss_video.pipeline.runtime import load_extractor  # noqa: E402
from strotss_video.stylize.optimize import StyleBank  # noqa: E402
from strotss_video.tensorops import resize  # noqa: E402

DRAWS = 4


@torch.no_grad()
def distances(output: torch.Tensor, content: torch.Tensor, bank: StyleBank,
              extractor: Any) -> tuple[float, float]:
    """(style, content) distance of one output frame (1,3,h,w), both terms as in the loss."""
    h, w = output.shape[-2:]
    content = resize(content, (h, w))
    maps, cmaps = extractor(output), extractor(content)
    targets = bank.targets(max(h, w))
    style, cont = [], []
    for draw in range(DRAWS):
        points = random_pixels(h, w, 1024, torch.Generator().manual_seed(draw))
        a = read_bilinear(maps, extractor.strides, points)
        c = unit_rows(read_bilinear(cmaps, extractor.strides, points))
        terms = strotss_loss(a, self_similarity(c), targets, alpha=1.0)
        style.append(float(terms.style))
        cont.append(float(terms.content))
    return statistics.mean(style), statistics.mean(cont)


def measure(video: Path, opts: argparse.Namespace, extractor: Any) -> dict[str, Any]:
    out = Path(opts.out)
    style = read_image(opts.style)
    bank = StyleBank(extractor, style, StrotssConfig(), seed=0)
    preview = ["--preset", "preview"] + (["--config", str(opts.preview_config)]
                                         if opts.preview_config else [])
    settings = {"preview": preview + opts.extra, "default": list(opts.extra)}
    runs: dict[str, dict[str, Any]] = {}
    for name, extra in settings.items():
        path = out / f"{video.stem}_{name}.mp4"
        if not (name == "default" and opts.reuse_default and path.exists()):
            _run([sys.executable, "-m", "strotss_video", str(video), str(opts.style), str(path),
                  *extra, "--max-size", str(opts.max_size), "--end", str(opts.frames),
                  "--stats", str(path.with_suffix(".json")), "--overwrite", "--quiet",
                  "--work-dir", str(out / "work")])
        stats = json.loads(path.with_suffix(".json").read_text())
        pairs = [distances(o, c, bank, extractor) for o, c in
                 zip(video_frames(path), video_frames(video, end=opts.frames))]
        # Precision "auto" resolves per machine (bfloat16 VGG where the CPU has it), and the
        # optimisation's trajectory with it: keep what ran next to the figures.
        runs[name] = {"seconds": stats["summary"]["seconds"],
                      "precision": stats["summary"].get("precision"),
                      "style_distance": statistics.mean(p[0] for p in pairs),
                      "content_distance": statistics.mean(p[1] for p in pairs),
                      "frames": len(pairs)}
    for name in settings:
        warp = evaluate(video, out / f"{video.stem}_{name}.mp4", opts.frames)
        runs[name]["warping_error"] = warp["summary"]["warping_error"]
    d, p = runs["default"], runs["preview"]
    return {"video": video.stem, "runs": runs,
            "preview_over_default": {k: p[k] / d[k] for k in
                                     ("warping_error", "style_distance", "content_distance",
                                      "seconds")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--style", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--max-size", type=int, default=256)
    parser.add_argument("--out", default="out/preview")
    parser.add_argument("--preview-config", type=Path,
                        help="YAML overrides on top of the preview preset (for tuning it)")
    parser.add_argument("--extra", default="",
                        help='options for both runs, e.g. --extra="--fill blur"')
    parser.add_argument("--reuse-default", action="store_true",
                        help="reuse the default run's output already in --out (same clip, "
                             "frames and size)")
    opts = parser.parse_args()
    opts.extra = shlex.split(opts.extra)
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    # The evaluator is float32 whatever this CPU's default precision.
    extractor = load_extractor(RuntimeConfig(), torch.device("cpu"), progress=False).model
    extractor.autocast = None  # type: ignore[attr-defined]
    rows = [measure(v, opts, extractor) for v in opts.videos]
    keys = rows[0]["preview_over_default"].keys()
    print(json.dumps({
        "max_size": opts.max_size, "frames": opts.frames,
        "median_preview_over_default": {k: statistics.median(r["preview_over_default"][k]
                                                             for r in rows) for k in keys},
        "max_preview_over_default": {k: max(r["preview_over_default"][k] for r in rows)
                                     for k in keys},
        "videos": rows}, indent=2))


if __name__ == "__main__":
    main()
