#!/usr/bin/env python
"""Each STROTSS loss piece's forward+backward timed alone, against the floor's products, and the
minor page faults per step of a one-scale run; prints JSON (docs/tuning.md, session 13).

    python scripts/bench_loss_parts.py --repeats 15
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_image import one_scale_setup  # noqa: E402
from bench_products import median_ms  # noqa: E402
from strotss_video.config import RuntimeConfig, StrotssConfig  # noqa: E402
from strotss_video.losses.content import content_loss, self_similarity  # noqa: E402
from strotss_video.losses.ops import unit_rows  # noqa: E402
from strotss_video.losses.style import moment_loss, remd_cosine, remd_palette  # noqa: E402
from strotss_video.losses.total import StyleTarget, strotss_loss  # noqa: E402
from strotss_video.pipeline.runtime import extractor_for  # noqa: E402
import strotss_video.stylize.optimize as optimize  # noqa: E402
from strotss_video.stylize.optimize import stylize  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--steps", type=int, default=20, help="steps of the page-fault run")
    args = ap.parse_args()
    torch.manual_seed(0)
    n, m, d = 1024, 5000, 2179
    style = StyleTarget.from_hypercolumns(torch.randn(m, d).abs())
    content = unit_rows(torch.randn(20000, d).abs())
    idx = torch.randperm(20000)[:n]
    target = self_similarity(content[idx])
    a0 = torch.randn(n, d).abs()
    au0 = unit_rows(a0)
    x, g_cov, g_ss = torch.rand(n, d), torch.rand(d, d), torch.rand(n, n)

    def leaf(t: torch.Tensor) -> torch.Tensor:
        return t.clone().requires_grad_(True)

    # As in a step (since session 17): the cost matrices and the floor's products write into
    # outputs allocated once.
    out_nm, out_dd = torch.empty(n, m), torch.empty(d, d)
    out_nn, out_nd = torch.empty(n, n), torch.empty(n, d)

    def whole() -> None:
        rgb, rest = leaf(a0[:, :3]), leaf(a0[:, 3:])
        strotss_loss(torch.cat([rgb, rest], 1), target, [style], 8.0, rgb=rgb,
                     scratch=out_nm).total.backward()

    def target_only() -> None:
        with torch.no_grad():
            self_similarity(content[idx])

    pieces = {
        "whole_loss": whole,
        "remd_cosine": lambda: remd_cosine(leaf(au0), style.unit, style.unit_t,
                                           out=out_nm).backward(),
        "moment": lambda: moment_loss(leaf(a0), style.mean, style.cov).backward(),
        "content": lambda: content_loss(leaf(au0), target).backward(),
        "palette": lambda: remd_palette(leaf(a0[:, :3]), style.rgb, out=out_nm).backward(),
        "unit_rows": lambda: unit_rows(leaf(a0)).sum().backward(),
        "content_target": target_only,
        "floor_cost": lambda: torch.mm(au0, style.unit_t, out=out_nm),
        "floor_covariance": lambda: (torch.mm(x.t(), x, out=out_dd),
                                     torch.mm(x, g_cov, out=out_nd)),
        "floor_self_similarity": lambda: (torch.mm(x, x.t(), out=out_nn),
                                          torch.mm(g_ss, x, out=out_nd)),
    }
    out = {k: round(median_ms(fn, args.repeats), 2) for k, fn in pieces.items()}

    # The relaxed EMD's partner rows, gathered as inside a step: right after the cost product
    # (a fresh (N,M) matrix) and its arg-max. Only the gather is timed.
    def gather_after_cost(gather: Callable[[torch.Tensor], torch.Tensor]) -> float:
        times = []
        for _ in range(args.repeats + 3):
            arg = torch.mm(au0, style.unit_t).max(dim=1).indices
            t0 = time.perf_counter()
            gather(arg)
            times.append(time.perf_counter() - t0)
        times = times[3:]
        return round(sorted(times)[len(times) // 2] * 1000, 2)

    gathers = {"advanced_indexing": gather_after_cost(lambda i: style.unit[i]),
               "index_select": gather_after_cost(lambda i: style.unit.index_select(0, i))}

    # Page faults of whole steps (set-up included, divided over the steps), and of the step
    # loop alone (since session 17).
    def minflt() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    loop_faults: list[int] = []
    plain_loop = optimize.run_steps

    def counted_loop(*a: Any, **k: Any) -> Any:
        f = minflt()
        result = plain_loop(*a, **k)
        loop_faults.append(minflt() - f)
        return result

    cpu = torch.device("cpu")
    extractor, _ = extractor_for(RuntimeConfig(), cpu, None, False)
    cfg = StrotssConfig(max_size=256, scales=1, iters=args.steps)
    image, bank, plan = one_scale_setup(extractor, (144, 256), cfg, args.steps, cpu)
    optimize.run_steps = counted_loop
    try:
        stylize(image, bank, extractor, cfg, plan=plan, progress=False)
        f0 = minflt()
        rep = stylize(image, bank, extractor, cfg, plan=plan, seed=1, progress=False).scales[0]
        faults = (minflt() - f0) / rep.iterations
    finally:
        optimize.run_steps = plain_loop
    print(json.dumps({"benchmark": "bench_loss_parts", "threads": torch.get_num_threads(),
                      "ms_forward_backward_median": out,
                      "ms_partner_gather_after_cost_median": gathers,
                      "page_faults_per_step_setup_included_256x144": round(faults, 1),
                      "page_faults_per_step_loop_only_first_and_second_run": [
                          round(f / args.steps, 1) for f in loop_faults],
                      "seconds_per_step_256x144": round(rep.loop_seconds / rep.iterations, 4)},
                     indent=2))


if __name__ == "__main__":
    main()
