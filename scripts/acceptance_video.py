#!/usr/bin/env python
"""Measure the video pipeline's acceptance figures on real clips; prints JSON.

For each clip: stylise the first N frames with temporal coherence on and off (same preset),
then compute the warping error (`strotss-video evaluate`, a flow method different from the
stylisation's) of the input and both outputs, plus cost and quality ratios from --stats.

    python scripts/acceptance_video.py ../shared/data/videos/*.mp4 \
        --style ../shared/data/styles/udnie.jpg --frames 16 --preset preview --max-size 192
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str]) -> str:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(args)}\n{proc.stderr[-2000:]}")
    return proc.stdout


def _stylise(video: Path, style: Path, out: Path, temporal: str, opts: argparse.Namespace) -> dict[str, Any]:
    stats = out.with_suffix(".json")
    _run([sys.executable, "-m", "strotss_video", str(video), str(style), str(out), "--preset",
          opts.preset, "--max-size", str(opts.max_size), "--end", str(opts.frames), "--temporal",
          temporal, "--stats", str(stats), "--overwrite", "--quiet", *opts.extra])
    return json.loads(stats.read_text())


def evaluate(video: Path, output: Path, frames: int, plot: Path | None = None) -> dict[str, Any]:
    """`strotss-video evaluate --json` of ``output``, made from the first ``frames`` of ``video``."""
    extra = ["--plot", str(plot)] if plot is not None else []
    return json.loads(_run([sys.executable, "-m", "strotss_video", "evaluate", str(output),
                            str(video), "--end", str(frames), "--json", "--quiet", *extra]))


def _mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def measure(video: Path, opts: argparse.Namespace) -> dict[str, Any]:
    name = video.stem
    out_dir = Path(opts.out)
    on = _stylise(video, opts.style, out_dir / f"{name}_on.mp4", "on", opts)
    off_path = Path(opts.off_from or out_dir) / f"{name}_off.mp4"
    off = json.loads(off_path.with_suffix(".json").read_text()) if opts.off_from else \
        _stylise(video, opts.style, off_path, "off", opts)
    warp_on = evaluate(video, out_dir / f"{name}_on.mp4", opts.frames,
                       out_dir / f"{name}_warp.png")
    warp_off = evaluate(video, off_path, opts.frames)
    frames_on = on["frames"]
    warm = [f for f in frames_on if f["kind"] == "warm"]
    cold_off = [f for f in off["frames"] if f["kind"] == "cold"]
    e_in = warp_on["summary"]["input_warping_error"]
    e_on = warp_on["summary"]["warping_error"]
    e_off = warp_off["summary"]["warping_error"]
    warm_style = _mean([f["losses"]["style"] for f in warm])
    cold_style = _mean([f["losses"]["style"] for f in cold_off])
    return {
        "video": name,
        "frames": len(frames_on),
        "warping_error": {"input": e_in, "temporal_on": e_on, "temporal_off": e_off,
                          "on_over_input": e_on / e_in, "off_over_on": e_off / e_on,
                          "flow": warp_on["flow"]},
        "seconds": {"mean_cold": on["summary"]["mean_cold_seconds"],
                    "mean_warm": on["summary"]["mean_warm_seconds"],
                    "mean_cold_off_run": off["summary"]["mean_cold_seconds"],
                    "warm_over_cold": on["summary"]["mean_warm_seconds"] /
                    off["summary"]["mean_cold_seconds"],
                    "flow_mask_warp_share_of_warm": _mean([f["flow_seconds"] / f["seconds"]
                                                           for f in warm])},
        "style_loss": {"mean_warm": warm_style, "mean_cold": cold_style,
                       "warm_over_cold": warm_style / cold_style if warm_style and cold_style
                       else None},
        "reliable_mean": _mean([f["reliable"] for f in warm]),
        "peak_rss_mib": on["summary"]["peak_rss_mib"],
    }


def clip_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """The options shared by the scripts that stylise real clips and compare the results."""
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--style", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--preset", default="preview")
    parser.add_argument("--max-size", type=int, default=192)
    parser.add_argument("--out", default=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    clip_arguments(parser, "out/acceptance")
    parser.add_argument("--extra", default="",
                        help='options passed to strotss-video, e.g. --extra="--warm-iters 10"')
    parser.add_argument("--off-from", metavar="DIR",
                        help="reuse the temporal-off outputs of an earlier run's --out DIR")
    opts = parser.parse_args()
    opts.extra = shlex.split(opts.extra)
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    rows = [measure(v, opts) for v in opts.videos]

    def median(path: tuple[str, str]) -> float:
        return statistics.median(r[path[0]][path[1]] for r in rows)

    print(json.dumps({
        "preset": opts.preset, "max_size": opts.max_size, "frames": opts.frames,
        "style": str(opts.style), "extra_options": opts.extra,
        "medians": {
            "warping_on_over_input": median(("warping_error", "on_over_input")),
            "warping_off_over_on": median(("warping_error", "off_over_on")),
            "warm_over_cold_seconds": median(("seconds", "warm_over_cold")),
            "warm_over_cold_style_loss": median(("style_loss", "warm_over_cold")),
            "flow_mask_warp_share_of_warm": median(("seconds", "flow_mask_warp_share_of_warm")),
        },
        "videos": rows}, indent=2))


if __name__ == "__main__":
    main()
