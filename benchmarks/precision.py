"""Precision: what VGG16 forward+backward costs in each precision on this CPU (``speed``), and
what ``--precision mixed`` (or ``fast``) changes against float32 on real clips (``quality``).

    python -m benchmarks.precision speed --size 256 144 --rounds 3 --repeats 5
    python -m benchmarks.precision quality ../shared/data/videos/*.mp4 \\
        --style ../shared/data/styles/udnie.jpg --frames 16 [--against fast] [--seeds 3] [--noise]

``speed``: the extractor as the pipeline builds it (``pipeline.runtime.extractor_for``) for
float32 and mixed, run to relu5_3 on one random image and back to the image, the variants in
turn each round so that a change of machine speed hits them alike. ``mixed_autocast`` is the
float32 body under ``torch.autocast`` (the same maps bit for bit as mixed's bfloat16 copy, but
every weight cast at every forward). On a CPU without native bfloat16 (no AVX512-BF16, no AMX)
mixed is emulated: this shows what ``--precision auto`` avoids by resolving to float32 there.

``quality``: each clip's first N frames stylised (preview preset, temporal on) in float32 and in
the compared precision; the change of the final loss terms (mean over frames), of the warping
error and of the time. ``--seeds N`` runs every precision with seeds 0..N-1 (other sample
points, so other rounding paths) and pairs each run with float32's of the same seed: per-clip
and pooled changes are means over seeds with their standard errors. ``--noise`` also runs
float32 with one thread instead of two: the same arithmetic summed in another order, whose
change ("noise_change") is the rounding-alone band a precision change must be told from.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from benchmarks.common import Timing, add_output_arguments, finish, time_calls
from benchmarks.quality import clip_arguments, stylise, warping
from strotss_video.config import RuntimeConfig
from strotss_video.features.vgg import forward_under_autocast
from strotss_video.pipeline.runtime import extractor_for, resolve_device, resolve_precision

TERMS = ("total", "style", "content", "temporal")


class _Autocast(torch.nn.Module):
    """The extractor's float32 body under bfloat16 autocast, maps returned as float32."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        return forward_under_autocast(self.model, image)  # type: ignore[arg-type]


def _forward_backward(model: Callable[[torch.Tensor], list[torch.Tensor]],
                      image: torch.Tensor) -> None:
    """``model``'s maps of a fresh leaf copy of ``image``, then their backward (all ones)."""
    maps = model(image.clone().requires_grad_(True))
    torch.autograd.backward(maps[1:], [torch.ones_like(m) for m in maps[1:]])


def speed(opts: argparse.Namespace) -> dict[str, Any]:
    """VGG16 forward+backward seconds per variant: ``rounds`` rounds taking the variants in
    turn, each ``repeats`` calls after one untimed call."""
    device = torch.device("cpu")
    width, height = opts.size
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    variants = ("float32", "mixed", "mixed_autocast")
    rounds: dict[str, list[Timing]] = {v: [] for v in variants}
    for _ in range(opts.rounds):
        for variant in variants:
            # extractor_for sets the shared extractor's precision: once per variant and round.
            precision = "float32" if variant == "mixed_autocast" else variant
            model, _ = extractor_for(RuntimeConfig(precision=precision), device, None, False)
            run = _Autocast(model) if variant == "mixed_autocast" else model
            rounds[variant].append(time_calls(partial(_forward_backward, run, image), device,
                                              opts.repeats, warmup=1))
    med = {v: statistics.median(t.median for t in rounds[v]) for v in variants}
    return {"size": [width, height], "auto_resolves_to": resolve_precision("auto", device),
            "seconds": med,
            "seconds_per_round": {v: [t.to_dict() for t in ts] for v, ts in rounds.items()},
            "mixed_over_float32": med["mixed"] / med["float32"],
            "mixed_over_mixed_autocast": med["mixed"] / med["mixed_autocast"]}


def _paired(ratios: list[float]) -> dict[str, float]:
    """Mean relative change over seeds and its standard error (0 with one seed)."""
    changes = [r - 1 for r in ratios]
    se = statistics.stdev(changes) / len(changes) ** 0.5 if len(changes) > 1 else 0.0
    return {"mean": statistics.mean(changes), "se": se}


def quality_clip(video: Any, opts: argparse.Namespace) -> dict[str, Any]:
    """One clip: every variant at every seed, and each variant's figures over float32's."""
    variants = {"float32": ["--precision", "float32"],
                opts.against: ["--precision", opts.against]}
    if opts.noise:
        variants["float32_1thread"] = ["--precision", "float32", "--threads", "1"]
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}  # [variant][seed]
    for seed in range(opts.seeds):
        paths = {}
        for name, flags in variants.items():
            path = opts.outputs / f"{video.stem}_{name}_s{seed}.mp4"
            stats = stylise(video, opts.style, path,
                            ["--preset", opts.preset, "--max-size", str(opts.max_size), *flags,
                             "--seed", str(seed), *opts.extra], opts.frames)
            frames = stats["frames"]
            runs[name].append({
                "seconds": stats["summary"]["seconds"],
                "mean_warm_seconds": stats["summary"]["mean_warm_seconds"],
                "mean_cold_seconds": stats["summary"]["mean_cold_seconds"],
                "losses": {t: statistics.mean(f["losses"][t] for f in frames if t in f["losses"])
                           for t in TERMS if any(t in f["losses"] for f in frames)}})
            paths[name] = path
        for name, error in warping(video, paths, opts.frames).items():
            if name != "input":
                runs[name][seed]["warping_error"] = error
    f32 = runs["float32"]

    def ratios(name: str) -> dict[str, list[float]]:
        """Each figure of ``name`` over float32's, one ratio per seed."""
        rows = {f"loss_{t}": [o["losses"][t] / f["losses"][t] for o, f in zip(runs[name], f32)]
                for t in f32[0]["losses"]}
        rows["warping_error"] = [o["warping_error"] / f["warping_error"]
                                 for o, f in zip(runs[name], f32)]
        return rows

    def speedup(key: str) -> float:
        return (statistics.mean(f[key] for f in f32)
                / statistics.mean(m[key] for m in runs[opts.against]))

    return {"video": video.stem, "runs": runs,
            "ratios": {n: ratios(n) for n in variants if n != "float32"},
            "speedup_total": speedup("seconds"), "speedup_warm": speedup("mean_warm_seconds"),
            "speedup_cold": speedup("mean_cold_seconds")}


def quality(opts: argparse.Namespace) -> dict[str, Any]:
    rows = [quality_clip(v, opts) for v in opts.videos]
    for r in rows:
        r["change"] = {k: _paired(v) for k, v in r["ratios"][opts.against].items()}
        if opts.noise:
            r["noise_change"] = {k: _paired(v) for k, v in r["ratios"]["float32_1thread"].items()}
    keys = rows[0]["change"].keys()

    def pooled(name: str) -> dict[str, dict[str, float]]:
        """Every clip's and seed's paired change together: mean and standard error."""
        return {k: _paired([x for r in rows for x in r["ratios"][name][k]]) for k in keys}

    noise = {"max_abs_noise_change": {k: max(abs(r["noise_change"][k]["mean"]) for r in rows)
                                      for k in keys},
             "pooled_noise_change": pooled("float32_1thread")} if opts.noise else {}
    return {"preset": opts.preset, "max_size": opts.max_size, "frames": opts.frames,
            "seeds": opts.seeds, "against": opts.against, "extra_options": opts.extra,
            "max_abs_change": {k: max(abs(r["change"][k]["mean"]) for r in rows) for k in keys},
            "pooled_change": pooled(opts.against), **noise,
            "median_speedup_warm": statistics.median(r["speedup_warm"] for r in rows),
            "median_speedup_total": statistics.median(r["speedup_total"] for r in rows),
            "videos": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    sp = sub.add_parser("speed", help="VGG16 forward+backward per precision on this CPU")
    sp.add_argument("--size", type=int, nargs=2, default=(256, 144), metavar=("W", "H"))
    sp.add_argument("--rounds", type=int, default=2)
    sp.add_argument("--repeats", type=int, default=4)
    add_output_arguments(sp)
    qp = sub.add_parser("quality", help="a precision against float32 on real clips")
    clip_arguments(qp, "out/precision", frames=16, preset="preview", max_size=192)
    qp.add_argument("--against", choices=("mixed", "fast"), default="mixed",
                    help="the precision compared with float32 (default mixed)")
    qp.add_argument("--noise", action="store_true",
                    help="also run float32 with one thread: the rounding-alone baseline")
    qp.add_argument("--seeds", type=int, default=1,
                    help="run every precision with seeds 0..N-1 and average the paired changes")
    opts = parser.parse_args()
    if opts.mode == "speed":
        finish("precision-speed", speed(opts), opts, torch.device("cpu"))
    else:
        opts.outputs.mkdir(parents=True, exist_ok=True)
        finish("precision-quality", quality(opts), opts, resolve_device("auto"))


if __name__ == "__main__":
    main()
