#!/usr/bin/env python
"""Quality and speed of --precision mixed (or fast: --against fast) against float32 on real
clips; prints JSON.

For each clip: stylise the first N frames (temporal on) with each precision, then compare the
final loss terms (mean over frames) and the warping error (`strotss-video evaluate`), and the time.

    python scripts/compare_precision.py ../shared/data/videos/*.mp4 \
        --style ../shared/data/styles/udnie.jpg --frames 16 --preset preview --max-size 192

``--noise`` also stylises each clip in float32 with one thread instead of two: the same
arithmetic summed in another order. Its change against float32 ("noise_change") is how much
these figures move from rounding alone, the floor under which a precision change cannot be
told from noise on 16 frames.

``--seeds N`` runs every precision with seeds 0..N-1 (other sample points, so other rounding
paths): each seed's change is paired with float32 at the same seed, and the per-clip and pooled
changes are means over seeds with their standard errors, which shrink as 1/sqrt(N) where one
run's change is mostly rounding chaos.
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
from acceptance_video import _run, clip_arguments, evaluate  # noqa: E402

TERMS = ("total", "style", "content", "temporal")


def _stylise(video: Path, path: Path, flags: list[str], seed: int,
             opts: argparse.Namespace) -> dict[str, Any]:
    _run([sys.executable, "-m", "strotss_video", str(video), str(opts.style), str(path),
          "--preset", opts.preset, "--max-size", str(opts.max_size), "--end",
          str(opts.frames), *flags, "--seed", str(seed), "--stats",
          str(path.with_suffix(".json")), "--overwrite", "--quiet", "--fresh",
          "--work-dir", str(path.parent / "work")])
    stats = json.loads(path.with_suffix(".json").read_text())
    frames = stats["frames"]
    return {
        "seconds": stats["summary"]["seconds"],
        "mean_warm_seconds": stats["summary"]["mean_warm_seconds"],
        "mean_cold_seconds": stats["summary"]["mean_cold_seconds"],
        "losses": {t: statistics.mean(f["losses"][t] for f in frames if t in f["losses"])
                   for t in TERMS if any(t in f["losses"] for f in frames)},
    }


def _paired(ratios: list[float]) -> dict[str, float]:
    """Mean relative change over seeds and its standard error (0 with one seed)."""
    changes = [r - 1 for r in ratios]
    se = statistics.stdev(changes) / len(changes) ** 0.5 if len(changes) > 1 else 0.0
    return {"mean": statistics.mean(changes), "se": se}


def measure(video: Path, opts: argparse.Namespace) -> dict[str, Any]:
    out = Path(opts.out)
    variants = {"float32": ["--precision", "float32"],
                opts.against: ["--precision", opts.against]}
    if opts.noise:
        variants["float32_1thread"] = ["--precision", "float32", "--threads", "1"]
    # runs[variant][k]: seed k; every variant runs every seed, so changes are paired per seed.
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    paths: list[tuple[str, int, Path]] = []
    for seed in range(opts.seeds):
        for name, flags in variants.items():
            tag = name if opts.seeds == 1 else f"{name}_s{seed}"
            path = out / f"{video.stem}_{tag}.mp4"
            runs[name].append(_stylise(video, path, flags, seed, opts))
            paths.append((name, seed, path))
    for name, seed, path in paths:
        warp = evaluate(video, path, opts.frames)
        runs[name][seed]["warping_error"] = warp["summary"]["warping_error"]
    f32 = runs["float32"]

    def ratios(name: str) -> dict[str, list[float]]:
        """Each figure of ``name`` over float32's, one ratio per seed."""
        other = runs[name]
        rows = {f"loss_{t}": [o["losses"][t] / f["losses"][t] for o, f in zip(other, f32)]
                for t in f32[0]["losses"]}
        rows["warping_error"] = [o["warping_error"] / f["warping_error"]
                                 for o, f in zip(other, f32)]
        return rows

    def speedup(key: str) -> float:
        return statistics.mean(f[key] for f in f32) / statistics.mean(m[key] for m in
                                                                       runs[opts.against])

    return {
        "video": video.stem, "runs": runs,
        "ratios": {n: ratios(n) for n in variants if n != "float32"},
        "speedup_total": speedup("seconds"),
        "speedup_warm": speedup("mean_warm_seconds"),
        "speedup_cold": speedup("mean_cold_seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    clip_arguments(parser, "out/precision")
    parser.add_argument("--against", choices=("mixed", "fast"), default="mixed",
                        help="the precision compared with float32 (default mixed)")
    parser.add_argument("--noise", action="store_true",
                        help="also run float32 with one thread: the rounding-only baseline")
    parser.add_argument("--seeds", type=int, default=1,
                        help="run every precision with seeds 0..N-1 and average the paired "
                             "changes (with their standard error)")
    opts = parser.parse_args()
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    rows = [measure(v, opts) for v in opts.videos]
    for r in rows:
        r["change"] = {k: _paired(v) for k, v in r["ratios"][opts.against].items()}
        if opts.noise:
            r["noise_change"] = {k: _paired(v) for k, v in r["ratios"]["float32_1thread"].items()}
    keys = rows[0]["change"].keys()

    def pooled(name: str) -> dict[str, dict[str, float]]:
        """Every clip's and seed's paired change together: mean and standard error."""
        return {k: _paired([x for r in rows for x in r["ratios"][name][k]]) for k in keys}

    print(json.dumps({
        "preset": opts.preset, "max_size": opts.max_size, "frames": opts.frames,
        "seeds": opts.seeds, "against": opts.against,
        "max_abs_change": {k: max(abs(r["change"][k]["mean"]) for r in rows) for k in keys},
        "pooled_change": pooled(opts.against),
        **({"max_abs_noise_change": {k: max(abs(r["noise_change"][k]["mean"]) for r in rows)
                                     for k in keys},
            "pooled_noise_change": pooled("float32_1thread")} if opts.noise else {}),
        "median_speedup_warm": statistics.median(r["speedup_warm"] for r in rows),
        "median_speedup_total": statistics.median(r["speedup_total"] for r in rows),
        "videos": rows}, indent=2))


if __name__ == "__main__":
    main()
