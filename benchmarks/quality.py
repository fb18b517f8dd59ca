"""Video quality on real clips: temporal coherence on against off (``temporal``), and the
preview preset against the default settings at the same size (``preview``).

    python -m benchmarks.quality temporal ../shared/data/videos/*.mp4 \\
        --style ../shared/data/styles/udnie.jpg --frames 16 --preset preview --max-size 192
    python -m benchmarks.quality preview ../shared/data/videos/*.mp4 \\
        --style ../shared/data/styles/udnie.jpg --frames 8 --max-size 256

Each clip's first N frames are stylised by the CLI (fresh work directory, ``--stats``) into
``--outputs DIR``; the warping error is Lai et al.'s (``strotss_video.metrics.warping_errors``:
Farneback flow on the input, a different method from the stylisation's DIS, with the occlusion,
out-of-frame and motion-boundary mask).

``temporal``: temporal on and off with the same preset; the warping error of the input and of
both outputs, and cost and style-loss ratios of warm frames against cold ones from the stats.

``preview``: the defaults and ``--preset preview``, both at ``--max-size``; besides the warping
error, the style distance (the STROTSS style terms of each output frame against the style
image) and the content distance (the self-similarity term against the input frame), both read
by one fixed evaluator (VGG16 float32, 1024 output points, 5000 style points, the mean over 4
point draws) whatever the settings that made the frame.
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

import torch
from strotss_video.io.video import probe

from benchmarks.common import REPO, add_output_arguments, finish
from strotss_video.config import RuntimeConfig, StrotssConfig
from strotss_video.features.sampling import random_pixels, read_bilinear
from strotss_video.io.image import read_image
from strotss_video.losses import strotss_loss
from strotss_video.losses.content import self_similarity
from strotss_video.losses.ops import unit_rows
from strotss_video.metrics import video_frames, warping_errors
from strotss_video.pipeline.runtime import load_extractor, resolve_device
from strotss_video.stylize.optimize import StyleBank
from strotss_video.tensorops import resize

DRAWS = 4


def clip_arguments(parser: argparse.ArgumentParser, outputs: str, frames: int, preset: str | None,
                   max_size: int) -> None:
    """The options shared by the benchmarks that stylise real clips and compare the results."""
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--style", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=frames)
    if preset is not None:
        parser.add_argument("--preset", default=preset)
    parser.add_argument("--max-size", type=int, default=max_size)
    parser.add_argument("--outputs", type=Path, default=Path(outputs),
                        help=f"where the stylised videos and their stats go (default {outputs})")
    parser.add_argument("--extra", default="", type=shlex.split,
                        help='options for every run, e.g. --extra="--seed 1"')
    add_output_arguments(parser)


def stylise(video: Path, style: Path, out: Path, flags: list[str],
            frames: int | str) -> dict[str, Any]:
    """Stylise ``video`` up to ``frames`` (a frame count, or the CLI's time form like '2s')
    into ``out`` with the CLI, in a fresh work directory beside it: the run's ``--stats``."""
    stats = out.with_suffix(".json")
    command = [sys.executable, "-m", "strotss_video", str(video), str(style), str(out),
               "--end", str(frames), *flags, "--stats", str(stats), "--overwrite", "--quiet",
               "--fresh", "--work-dir", str(out.parent / "work")]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: exit {proc.returncode} from {shlex.join(command)}: "
                         f"{proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(stats.read_text())


def warping(video: Path, outputs: dict[str, Path], frames: int) -> dict[str, float]:
    """Mean warping error of the input (``"input"``) and of each output, flows computed once
    on the input decoded at the outputs' size."""
    info = probe(next(iter(outputs.values())))
    errors = warping_errors(video_frames(video, end=frames, size=(info.height, info.width)),
                            {name: video_frames(path) for name, path in outputs.items()})
    return {name: e.mean for name, e in errors.items()}


def _mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def temporal_clip(video: Path, opts: argparse.Namespace) -> dict[str, Any]:
    """One clip, temporal on and off: warping errors, warm/cold cost and style loss."""
    base = ["--preset", opts.preset, "--max-size", str(opts.max_size), *opts.extra]
    on_path = opts.outputs / f"{video.stem}_on.mp4"
    off_path = (opts.off_from or opts.outputs) / f"{video.stem}_off.mp4"
    on = stylise(video, opts.style, on_path, [*base, "--temporal", "on"], opts.frames)
    off = json.loads(off_path.with_suffix(".json").read_text()) if opts.off_from else \
        stylise(video, opts.style, off_path, [*base, "--temporal", "off"], opts.frames)
    e = warping(video, {"on": on_path, "off": off_path}, opts.frames)
    warm = [f for f in on["frames"] if f["kind"] == "warm"]
    warm_style = _mean([f["losses"]["style"] for f in warm])
    cold_style = _mean([f["losses"]["style"] for f in off["frames"] if f["kind"] == "cold"])
    return {
        "video": video.stem, "frames": len(on["frames"]),
        "warping_error": {"input": e["input"], "temporal_on": e["on"], "temporal_off": e["off"],
                          "on_over_input": e["on"] / e["input"], "off_over_on": e["off"] / e["on"]},
        "seconds": {"mean_cold": on["summary"]["mean_cold_seconds"],
                    "mean_warm": on["summary"]["mean_warm_seconds"],
                    "mean_cold_off_run": off["summary"]["mean_cold_seconds"],
                    "warm_over_cold": on["summary"]["mean_warm_seconds"]
                    / off["summary"]["mean_cold_seconds"],
                    "flow_mask_warp_share_of_warm": _mean([f["flow_seconds"] / f["seconds"]
                                                           for f in warm])},
        "style_loss": {"mean_warm": warm_style, "mean_cold": cold_style,
                       "warm_over_cold": warm_style / cold_style if warm_style and cold_style
                       else None},
        "reliable_mean": _mean([f["reliable"] for f in warm]),
        "peak_rss_mib": on["summary"]["peak_rss_mib"]}


def temporal(opts: argparse.Namespace) -> dict[str, Any]:
    rows = [temporal_clip(v, opts) for v in opts.videos]

    def median(group: str, key: str) -> float:
        return statistics.median(r[group][key] for r in rows)

    return {"preset": opts.preset, "max_size": opts.max_size, "frames": opts.frames,
            "style": str(opts.style), "extra_options": opts.extra,
            "medians": {
                "warping_on_over_input": median("warping_error", "on_over_input"),
                "warping_off_over_on": median("warping_error", "off_over_on"),
                "warm_over_cold_seconds": median("seconds", "warm_over_cold"),
                "warm_over_cold_style_loss": median("style_loss", "warm_over_cold"),
                "flow_mask_warp_share_of_warm": median("seconds",
                                                       "flow_mask_warp_share_of_warm")},
            "videos": rows}


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


def preview_clip(video: Path, opts: argparse.Namespace, extractor: Any) -> dict[str, Any]:
    """One clip with the defaults and the preview preset: the preview's figures over the
    default's."""
    bank = StyleBank(extractor, read_image(opts.style), StrotssConfig(), seed=0)
    preview = ["--preset", "preview"] + (["--config", str(opts.preview_config)]
                                         if opts.preview_config else [])
    paths = {name: opts.outputs / f"{video.stem}_{name}.mp4" for name in ("preview", "default")}
    runs: dict[str, dict[str, Any]] = {}
    for name, flags in (("preview", preview), ("default", [])):
        path = paths[name]
        reuse = name == "default" and opts.reuse_default and path.exists()
        stats = json.loads(path.with_suffix(".json").read_text()) if reuse else stylise(
            video, opts.style, path, [*flags, "--max-size", str(opts.max_size), *opts.extra],
            opts.frames)
        pairs = [distances(o, c, bank, extractor) for o, c in
                 zip(video_frames(path), video_frames(video, end=opts.frames))]
        # Precision "auto" resolves per machine, and the optimisation's trajectory with it:
        # keep what ran next to the figures.
        runs[name] = {"seconds": stats["summary"]["seconds"],
                      "precision": stats["summary"].get("precision"),
                      "style_distance": statistics.mean(p[0] for p in pairs),
                      "content_distance": statistics.mean(p[1] for p in pairs),
                      "frames": len(pairs)}
    for name, error in warping(video, paths, opts.frames).items():
        if name != "input":
            runs[name]["warping_error"] = error
    d, p = runs["default"], runs["preview"]
    return {"video": video.stem, "runs": runs,
            "preview_over_default": {k: p[k] / d[k] for k in ("warping_error", "style_distance",
                                                              "content_distance", "seconds")}}


def preview(opts: argparse.Namespace) -> dict[str, Any]:
    extractor = load_extractor(RuntimeConfig(), torch.device("cpu"), progress=False).model
    # The evaluator is float32 whatever this CPU's default precision.
    extractor.autocast = None  # type: ignore[attr-defined]
    rows = [preview_clip(v, opts, extractor) for v in opts.videos]
    keys = rows[0]["preview_over_default"].keys()
    return {"max_size": opts.max_size, "frames": opts.frames, "style": str(opts.style),
            "extra_options": opts.extra,
            "median_preview_over_default": {k: statistics.median(r["preview_over_default"][k]
                                                                 for r in rows) for k in keys},
            "max_preview_over_default": {k: max(r["preview_over_default"][k] for r in rows)
                                         for k in keys},
            "videos": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    tp = sub.add_parser("temporal", help="temporal coherence on against off")
    clip_arguments(tp, "out/quality-temporal", frames=16, preset="preview", max_size=192)
    tp.add_argument("--off-from", type=Path, metavar="DIR",
                    help="reuse the temporal-off outputs of an earlier run's --outputs DIR")
    pv = sub.add_parser("preview", help="--preset preview against the defaults")
    clip_arguments(pv, "out/quality-preview", frames=8, preset=None, max_size=256)
    pv.add_argument("--preview-config", type=Path,
                    help="YAML overrides on top of the preview preset (for tuning it)")
    pv.add_argument("--reuse-default", action="store_true",
                    help="reuse the default run's output already in --outputs (same clip, "
                         "frames and size)")
    opts = parser.parse_args()
    opts.outputs.mkdir(parents=True, exist_ok=True)
    results = temporal(opts) if opts.mode == "temporal" else preview(opts)
    # The CLI runs on its default device: name that one.
    finish(f"quality-{opts.mode}", results, opts, resolve_device("auto"))


if __name__ == "__main__":
    main()
