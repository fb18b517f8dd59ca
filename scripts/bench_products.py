#!/usr/bin/env python
"""Benchmark the symmetric products of a step (losses.ops.symmetric_product) against one
torch.mm each; prints JSON.

X^T X is the output covariance's product (D x D), X X^T the output's and the content's
self-similarity (N x N); the faithful sizes are N = 1024 points, D = 2179 dimensions.

    python scripts/bench_products.py --rows 1024 --dims 2179 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strotss_video.losses.ops import symmetric_product  # noqa: E402


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e3, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--dims", type=int, default=2179)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    x = torch.rand(args.rows, args.dims, generator=torch.Generator().manual_seed(0))
    # A first round of both, untimed: glibc serves the first large buffers with fresh pages
    # (page faults) until its mmap threshold adapts, which would charge whichever runs first.
    for rows in (False, True):
        for _ in range(3):
            symmetric_product(x, rows)
            torch.mm(x, x.t()) if rows else torch.mm(x.t(), x)
    out = {}
    for name, rows, plain in (("x_t_x", False, lambda: torch.mm(x.t(), x)),
                              ("x_x_t", True, lambda: torch.mm(x, x.t()))):
        blocked = median_ms(lambda: symmetric_product(x, rows), args.repeats)
        full = median_ms(plain, args.repeats)
        out[name] = {"mm_ms": full, "symmetric_product_ms": blocked,
                     "ratio": round(blocked / full, 3),
                     "max_abs_difference": float((symmetric_product(x, rows) - plain()).abs().max())}
    print(json.dumps({"benchmark": "bench_products", "device": "cpu",
                      "device_name": platform.processor() or platform.machine(),
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "rows": args.rows, "dims": args.dims, "results": out}, indent=2))


if __name__ == "__main__":
    main()
