"""Resume soak: run the CLI on a generated clip, kill it at random moments (SIGKILL, SIGINT or
SIGTERM), resume, and repeat; check every finished output against an uninterrupted run.
Prints JSON; "frames_lost" must be 0.

    python -m scripts.soak --cycles 20 --frames 40 --max-size 64     (from the repository root)

A cycle is one kill followed by a resume. When a run finishes before its kill, its output is
checked and the next run starts a fresh job (--fresh). Outputs are encoded losslessly (crf 0)
so decoded frames can be compared exactly."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scripts.make_samples import style_strokes
from strotss_video.io.image import write_png_rgb
from strotss_video.io.reader import read_frames
from tests.media import make_clip

REPO = Path(__file__).resolve().parents[1]

SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--max-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill times and signals")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    clip, style = tmp / "clip.mp4", tmp / "style.png"
    make_clip(clip, frames=args.frames, size=(96, 64), cuts=(args.frames // 2,), shift=(1, 0))
    write_png_rgb(style, np.ascontiguousarray(style_strokes(64)[..., ::-1]))
    settings = ["--preset", "test", "--max-size", str(args.max_size), "--iters", "8",
                "--warm-iters", "3", "--min-shot-frames", "5", "--crf", "0",
                "--encoder-preset", "ultrafast", "--quiet", "--overwrite"]
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")

    def command(out: Path, work: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "strotss_video", str(clip), str(style), str(out),
                "--work-dir", str(work), *settings, *extra]

    t0 = time.perf_counter()
    ref_out = tmp / "reference.mp4"
    subprocess.run(command(ref_out, tmp / "ref-work"), env=env, check=True)
    ref_seconds = time.perf_counter() - t0
    ref = list(read_frames(ref_out))
    ref_pts, ref_images = [f.pts for f in ref], [f.image for f in ref]

    out, work = tmp / "out.mp4", tmp / "work"
    kills: dict[str, int] = {name: 0 for name in SIGNALS}
    report = {"cycles": 0, "jobs_completed": 0, "frames_expected": 0, "frames_lost": 0,
              "frames_duplicated_or_unordered": 0, "frames_different": 0, "bad_exits": []}

    def check() -> None:
        frames = list(read_frames(out))
        pts = [f.pts for f in frames]
        report["jobs_completed"] += 1
        report["frames_expected"] += len(ref_pts)
        report["frames_lost"] += len(set(ref_pts) - set(pts))
        report["frames_duplicated_or_unordered"] += sum(1 for a, b in zip(pts, pts[1:]) if b <= a)
        report["frames_different"] += sum(1 for f, want in zip(frames, ref_images)
                                          if not np.array_equal(f.image, want))

    fresh = False
    while report["cycles"] < args.cycles:
        proc = subprocess.Popen(command(out, work, *(["--fresh"] if fresh else [])), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        fresh = False
        try:
            proc.wait(timeout=rng.uniform(0.5, ref_seconds))
        except subprocess.TimeoutExpired:
            name = rng.choice(sorted(SIGNALS))
            proc.send_signal(SIGNALS[name])
            _, err = proc.communicate()
            kills[name] += 1
            report["cycles"] += 1
            # 130: our clean stop; -N: the signal came before the CLI installed its handlers
            # (still importing); 0: the run finished as the signal came.
            expected = {-SIGNALS[name], 0} | ({130} if name != "SIGKILL" else set())
            if proc.returncode not in expected:
                report["bad_exits"].append([name, proc.returncode, err.strip()[-300:]])
            if proc.returncode == 0:
                check()
                fresh = True
            continue
        err = proc.stderr.read() if proc.stderr else ""
        if proc.returncode != 0:
            report["bad_exits"].append(["none", proc.returncode, err.strip()[-300:]])
            continue
        check()
        fresh = True
    if not fresh:  # finish the interrupted job
        subprocess.run(command(out, work), env=env, check=True)
        check()
    report.update(kills=kills, reference_seconds=ref_seconds,
                  seconds=time.perf_counter() - t0, frames_per_job=len(ref_pts), work=str(tmp))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
