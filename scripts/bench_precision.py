#!/usr/bin/env python
"""VGG16 forward+backward per precision on this machine (what one step's extractor costs);
prints JSON.

The extractor as the pipeline builds it (`--precision float32` and `mixed`, through
``pipeline.runtime.extractor_for``), run to relu5_3 on one random image and back to the image,
in alternating rounds so that a change of machine speed hits both alike. On a CPU without native
bfloat16 (no AVX-512 BF16, no AMX) `mixed` is emulated: this shows what `--precision auto`
avoids by resolving to float32 there. `mixed_autocast` is the float32 body run under
``torch.autocast`` (how `mixed` ran before session 12: the same maps bit for bit, but every
weight cast to bfloat16 at every forward).

    python scripts/bench_precision.py --size 256 144 --rounds 2 --repeats 4
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strotss_video.config import RuntimeConfig  # noqa: E402
from strotss_video.features.vgg import forward_under_autocast  # noqa: E402
from strotss_video.pipeline.runtime import extractor_for, resolve_precision  # noqa: E402


def _time_step(model: torch.nn.Module, image: torch.Tensor, repeats: int) -> float:
    """Median seconds of forward + backward over ``repeats`` (after one untimed warm-up)."""
    times = []
    for _ in range(repeats + 1):
        leaf = image.clone().requires_grad_(True)
        start = time.perf_counter()
        maps = model(leaf)
        torch.autograd.backward(maps[1:], [torch.ones_like(m) for m in maps[1:]])
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


class _Autocast(torch.nn.Module):
    """The extractor's float32 body under bfloat16 autocast, maps returned as float32."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        return forward_under_autocast(self.model, image)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(256, 144), metavar=("W", "H"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=4)
    opts = parser.parse_args()
    device = torch.device("cpu")
    width, height = opts.size
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    seconds: dict[str, list[float]] = {"float32": [], "mixed": [], "mixed_autocast": []}
    for _ in range(opts.rounds):
        for variant in seconds:
            precision = "float32" if variant == "mixed_autocast" else variant
            model, _ = extractor_for(RuntimeConfig(precision=precision), device, None, False)
            run = _Autocast(model) if variant == "mixed_autocast" else model
            seconds[variant].append(_time_step(run, image, opts.repeats))
    f32, mixed, autocast = (statistics.median(seconds[p])
                            for p in ("float32", "mixed", "mixed_autocast"))
    print(json.dumps({
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "size": [width, height],
        "auto_resolves_to": resolve_precision("auto", device),
        "seconds_per_round": {k: [round(v, 4) for v in vs] for k, vs in seconds.items()},
        "float32_s": round(f32, 4),
        "mixed_s": round(mixed, 4),
        "mixed_autocast_s": round(autocast, 4),
        "mixed_over_float32": round(mixed / f32, 3),
        "mixed_over_mixed_autocast": round(mixed / autocast, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
