"""Batch parallelism benchmark: one manifest (two generated videos, four shots), run with
--workers 1 and --workers 2 on this machine; prints JSON.

    python scripts/bench_batch.py --frames 24 --max-size 64 --scales 2 --repeats 2

Each worker gets cores / workers threads (the default), so "workers 1" uses every core for one
shot at a time, and "workers 2" runs two shots at once with half the threads each. Frame
identity is checked between runs with the same per-task thread count (PyTorch's CPU reductions
depend on it), and the largest pixel difference between the default-thread runs is reported."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import pattern_image, save_rgb  # noqa: E402
from media import make_clip  # noqa: E402

from strotss_video.io.image import read_png_rgb  # noqa: E402
from strotss_video.pipeline.batch import run_batch  # noqa: E402


def frames_of(root: Path) -> dict[str, np.ndarray]:
    return {f"{p.parent.parent.name}/{p.name}": read_png_rgb(p)  # type: ignore[misc]
            for p in sorted(root.glob("*/frames/*.png"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24, help="frames per video (one cut each)")
    ap.add_argument("--max-size", type=int, default=64)
    ap.add_argument("--preset", default="preview")
    ap.add_argument("--scales", type=int, default=2, help="2 at 64 px (VGG needs 16 px)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--clip-size", type=int, nargs=2, default=(96, 64), metavar=("W", "H"),
                    help="first clip's size (the second is 16 px narrower)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda (one GPU: the workers "
                    "share it, i.e. shots optimised concurrently on one device)")
    ap.add_argument("--skip-thread-runs", action="store_true",
                    help="skip the one-thread-per-worker pair (identity check)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    n = args.frames
    cw, ch = args.clip_size
    make_clip(tmp / "a.mp4", frames=n, size=(cw, ch), cuts=(n // 2,), shift=(1, 0))
    make_clip(tmp / "b.mp4", frames=n, size=(cw - 16, ch), cuts=(n // 2,), shift=(1, 0), seed=5)
    save_rgb(tmp / "style.png", pattern_image(128, 128, seed=2))

    def manifest(tag: str, **extra: object) -> Path:
        (tmp / tag).mkdir()
        data = {"defaults": {"preset": args.preset, "max_size": args.max_size,
                             "scales": args.scales,
                             "min_shot_frames": 5, "crf": 0, "device": args.device, **extra},
                "jobs": [{"input": "a.mp4", "style": "style.png", "output": f"{tag}/a.mp4"},
                         {"input": "b.mp4", "style": "style.png", "output": f"{tag}/b.mp4"}]}
        path = tmp / f"{tag}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def run(tag: str, workers: int, **extra: object) -> tuple[float, dict[str, np.ndarray]]:
        t0 = time.perf_counter()
        result = run_batch(manifest(tag, **extra), workers=workers, work_dir=tmp / f"{tag}-work",
                           keep_work=True, progress=False)
        seconds = time.perf_counter() - t0
        assert result.shots_run == 4, result
        return seconds, frames_of(tmp / f"{tag}-work")

    times: dict[int, list[float]] = {1: [], 2: []}
    default_frames: dict[int, dict[str, np.ndarray]] = {}
    for r in range(args.repeats):
        for workers in (1, 2):
            seconds, frames = run(f"w{workers}-r{r}", workers)
            times[workers].append(seconds)
            default_frames[workers] = frames
    single1 = single2 = identical = None
    if not args.skip_thread_runs:
        single1, same1 = run("w1-t1", 1, threads=1)
        single2, same2 = run("w2-t1", 2, threads=1)
        identical = sorted(same1) == sorted(same2) and all(np.array_equal(same1[k], same2[k])
                                                           for k in same1)
    a, b = default_frames[1], default_frames[2]
    max_diff = max(int(np.abs(a[k].astype(int) - b[k].astype(int)).max()) for k in a)
    med = {w: statistics.median(t) for w, t in times.items()}
    print(json.dumps({
        "frames_total": 2 * n, "shots": 4, "max_size": args.max_size, "preset": args.preset,
        "seconds_workers_1": times[1], "seconds_workers_2": times[2],
        "median_workers_1": med[1], "median_workers_2": med[2],
        "speedup": med[1] / med[2],
        "seconds_workers_1_threads_1": single1, "seconds_workers_2_threads_1": single2,
        "speedup_one_thread_per_worker": single1 / single2 if single1 and single2 else None,
        "device": args.device, "clip_size": list(args.clip_size),
        "identical_frames_same_threads": identical,
        "max_pixel_diff_default_threads": max_diff,
        "work": str(tmp),
    }, indent=2))


if __name__ == "__main__":
    main()
