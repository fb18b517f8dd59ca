#!/usr/bin/env python
"""Quality and speed of --precision mixed against float32 on real clips; prints JSON.

For each clip: stylise the first N frames (temporal on) with each precision, then compare the
final loss terms (mean over frames) and the warping error (scripts/evaluate.py), and the time.

    python scripts/compare_precision.py ../shared/data/videos/*.mp4 \
        --style ../shared/data/styles/udnie.jpg --frames 16 --preset preview --max-size 192

``--noise`` also stylises each clip in float32 with one thread instead of two: the same
arithmetic summed in another order. Its change against float32 ("noise_change") is how much
these figures move from rounding alone, the floor under which a precision change cannot be
told from noise on 16 frames.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from acceptance_video import _run, clip_arguments  # noqa: E402

TERMS = ("total", "style", "content", "temporal")


def measure(video: Path, opts: argparse.Namespace) -> dict[str, Any]:
    out = Path(opts.out)
    runs: dict[str, dict[str, Any]] = {}
    variants = {"float32": ["--precision", "float32"], "mixed": ["--precision", "mixed"]}
    if opts.noise:
        variants["float32_1thread"] = ["--precision", "float32", "--threads", "1"]
    for precision, flags in variants.items():
        path = out / f"{video.stem}_{precision}.mp4"
        _run([sys.executable, "-m", "strotss_video", str(video), str(opts.style), str(path),
              "--preset", opts.preset, "--max-size", str(opts.max_size), "--end",
              str(opts.frames), *flags, "--stats",
              str(path.with_suffix(".json")), "--overwrite", "--quiet", "--fresh",
              "--work-dir", str(out / "work")])
        stats = json.loads(path.with_suffix(".json").read_text())
        frames = stats["frames"]
        runs[precision] = {
            "seconds": stats["summary"]["seconds"],
            "mean_warm_seconds": stats["summary"]["mean_warm_seconds"],
            "mean_cold_seconds": stats["summary"]["mean_cold_seconds"],
            "losses": {t: statistics.mean(f["losses"][t] for f in frames if t in f["losses"])
                       for t in TERMS if any(t in f["losses"] for f in frames)},
        }
    warp = json.loads(_run([sys.executable, "scripts/evaluate.py", str(video),
                            *(str(out / f"{video.stem}_{v}.mp4") for v in variants),
                            "--names", *variants, "--end", str(opts.frames)]))
    f32 = runs["float32"]

    def change(name: str) -> dict[str, float]:
        other = runs[name]
        return {**{f"loss_{t}": other["losses"][t] / f32["losses"][t] - 1 for t in f32["losses"]},
                "warping_error": warp["outputs"][name]["mean"] / warp["outputs"]["float32"]["mean"]
                - 1}

    mixed = runs["mixed"]
    return {
        "video": video.stem, "runs": runs,
        "warping_error": {k: warp["outputs"][k]["mean"] for k in variants},
        "change": change("mixed"),
        **({"noise_change": change("float32_1thread")} if opts.noise else {}),
        "speedup_total": f32["seconds"] / mixed["seconds"],
        "speedup_warm": f32["mean_warm_seconds"] / mixed["mean_warm_seconds"],
        "speedup_cold": f32["mean_cold_seconds"] / mixed["mean_cold_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    clip_arguments(parser, "out/precision")
    parser.add_argument("--noise", action="store_true",
                        help="also run float32 with one thread: the rounding-only baseline")
    opts = parser.parse_args()
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    rows = [measure(v, opts) for v in opts.videos]
    keys = rows[0]["change"].keys()
    print(json.dumps({
        "preset": opts.preset, "max_size": opts.max_size, "frames": opts.frames,
        "max_abs_change": {k: max(abs(r["change"][k]) for r in rows) for k in keys},
        **({"max_abs_noise_change": {k: max(abs(r["noise_change"][k]) for r in rows)
                                     for k in keys}} if opts.noise else {}),
        "median_speedup_warm": statistics.median(r["speedup_warm"] for r in rows),
        "median_speedup_total": statistics.median(r["speedup_total"] for r in rows),
        "videos": rows}, indent=2))


if __name__ == "__main__":
    main()
