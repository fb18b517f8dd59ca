"""The CLI end to end on one clip: wall time, frame times and peak memory per run.

    python -m benchmarks.cli_run CLIP STYLE --end 2s --repeats 3 --extra="--preset preview"
    python -m benchmarks.cli_run CLIP STYLE --end 24 96 \\
        --extra="--preset preview --max-size 128 --scales 2"

Each run is ``strotss-video CLIP STYLE OUT --end E --stats ... --fresh`` in its own process
(so the wall time includes start-up, as a user sees it), the ``--end`` values taken in turn in
each of ``--repeats`` rounds. Per ``--end``: the wall seconds (min/median/max), the mean cold
and warm frame seconds and the peak resident memory from ``--stats``; with several ``--end``
values, each one's peak memory over the first's (memory must not grow with clip length).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Timing, add_output_arguments, finish
from benchmarks.quality import stylise
from strotss_video.pipeline.runtime import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("style", type=Path)
    parser.add_argument("--end", nargs="+", default=["2s"],
                        help="where each run stops: frames, or seconds like 2s (default 2s)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--extra", default="", type=shlex.split,
                        help='options for every run, e.g. --extra="--preset preview"')
    parser.add_argument("--outputs", type=Path, default=Path("out/cli-run"),
                        help="where the outputs and their stats go (default out/cli-run)")
    add_output_arguments(parser)
    args = parser.parse_args()
    args.outputs.mkdir(parents=True, exist_ok=True)

    runs: dict[str, list[tuple[float, dict[str, Any]]]] = {end: [] for end in args.end}
    for r in range(args.repeats):
        for end in args.end:
            out = args.outputs / f"{args.video.stem}_end{end}_r{r}.mp4"
            t0 = time.perf_counter()
            stats = stylise(args.video, args.style, out, args.extra, end)
            runs[end].append((time.perf_counter() - t0, stats["summary"]))
    rows: dict[str, dict[str, Any]] = {}
    for end, done in runs.items():
        summaries = [s for _, s in done]
        rows[end] = {
            "wall_seconds": Timing(tuple(w for w, _ in done)).to_dict(),
            "frames": summaries[0].get("frames"),
            "precision": summaries[0].get("precision"),
            "mean_cold_seconds": [s["mean_cold_seconds"] for s in summaries],
            "mean_warm_seconds": [s["mean_warm_seconds"] for s in summaries],
            "peak_rss_mib": [s["peak_rss_mib"] for s in summaries]}
    first = statistics.median(rows[args.end[0]]["peak_rss_mib"])
    for row in rows.values():
        row["peak_rss_over_first_end"] = statistics.median(row["peak_rss_mib"]) / first
    finish("cli-run", {"video": str(args.video), "style": str(args.style),
                       "extra_options": args.extra, "by_end": rows},
           args, resolve_device("auto"))


if __name__ == "__main__":
    main()
