"""Resume soak: run the CLI on a generated clip, kill it at random moments (SIGKILL, SIGINT or
SIGTERM), damage one file of its work directory, resume, and repeat; check every finished
output against an undisturbed run. Prints JSON; "frames_lost" and "frames_different" must be 0.

    python -m scripts.soak --cycles 20 --frames 40 --max-size 64     (from the repository root)

A cycle is one kill, one damaged work file (a finished frame's PNG or a chain state, truncated
or overwritten with zeros, when there is one) and a resume, which must notice the damage (one
warning per damaged file it uses), recompute what it lost and end like the undisturbed run. A
kill comes after a random number of newly finished frames or, one time in four, at a random
moment (importing, planning, encoding). When a run finishes before its kill, its output is
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scripts.make_samples import style_strokes
from strotss_video.io.image import write_png_rgb
from strotss_video.io.reader import read_frames
from tests.media import make_clip

REPO = Path(__file__).resolve().parents[1]

SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
DAMAGES = ("truncate", "zero")
WARNING = "strotss-video: warning: "


@dataclass
class Soak:
    """One soak's inputs, commands and running report."""

    root: Path
    frames: int
    max_size: int
    rng: random.Random
    extra: Sequence[str] = ()  # more CLI options (later ones win)
    report: dict[str, Any] = field(default_factory=lambda: {
        "cycles": 0, "jobs_completed": 0, "frames_expected": 0, "frames_lost": 0,
        "frames_duplicated_or_unordered": 0, "frames_different": 0, "damaged": [],
        "damage_warnings": 0, "bad_exits": []})

    def __post_init__(self) -> None:
        self.clip, self.style = self.root / "clip.mp4", self.root / "style.png"
        self.out, self.work = self.root / "out.mp4", self.root / "work"
        make_clip(self.clip, frames=self.frames, size=(96, 64), cuts=(self.frames // 2,),
                  shift=(1, 0))
        write_png_rgb(self.style, np.ascontiguousarray(style_strokes(64)[..., ::-1]))
        self.env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
        self.ref_images: list[np.ndarray] = []
        self.ref_pts: list[int] = []

    def command(self, out: Path, work: Path, *extra: str) -> list[str]:
        settings = ["--preset", "test", "--max-size", str(self.max_size), "--iters", "8",
                    "--warm-iters", "3", "--min-shot-frames", "3", "--crf", "0",
                    "--encoder-preset", "ultrafast", "--quiet", "--overwrite", *self.extra]
        return [sys.executable, "-m", "strotss_video", str(self.clip), str(self.style),
                str(out), "--work-dir", str(work), *settings, *extra]

    def reference(self) -> float:
        """Run once undisturbed; returns its seconds."""
        t0 = time.perf_counter()
        out = self.root / "reference.mp4"
        subprocess.run(self.command(out, self.root / "ref-work"), env=self.env, check=True)
        frames = list(read_frames(out))
        self.ref_pts, self.ref_images = [f.pts for f in frames], [f.image for f in frames]
        return time.perf_counter() - t0

    def finished(self) -> list[Path]:
        return sorted(self.work.glob("*/frames/*.png"))

    def check(self) -> None:
        """Compare the finished output with the undisturbed run's."""
        frames = list(read_frames(self.out))
        pts = [f.pts for f in frames]
        r = self.report
        r["jobs_completed"] += 1
        r["frames_expected"] += len(self.ref_pts)
        r["frames_lost"] += len(set(self.ref_pts) - set(pts))
        r["frames_duplicated_or_unordered"] += sum(1 for a, b in zip(pts, pts[1:]) if b <= a)
        r["frames_different"] += sum(1 for f, want in zip(frames, self.ref_images)
                                     if not np.array_equal(f.image, want))

    def damage(self) -> None:
        """Truncate or zero one random finished frame or chain state of the work directory."""
        files = self.finished() + sorted(self.work.glob("*/state/*.npz"))
        if not files:
            return
        path = self.rng.choice(files)
        how = self.rng.choice(DAMAGES)
        try:
            size = path.stat().st_size
            with open(path, "r+b") as fh:
                if how == "truncate":
                    fh.truncate(self.rng.randrange(size))
                else:
                    fh.write(bytes(size))
        except OSError:  # removed by the run that was just stopped
            return
        self.report["damaged"].append([str(path.relative_to(self.work)), how])

    def run_until_killed(self, fresh: bool, ref_seconds: float) -> subprocess.Popen[str]:
        """Start a run; stop it after a few new frames (or at a random moment). Returns the
        process, ended (maybe on its own)."""
        proc = subprocess.Popen(self.command(self.out, self.work,
                                             *(["--fresh"] if fresh else [])),
                                env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        at_moment = self.rng.random() < 0.25
        deadline = time.monotonic() + (self.rng.uniform(0.5, ref_seconds) if at_moment
                                       else 10 * ref_seconds)
        target = 0 if fresh else len(self.finished())
        target += self.rng.randint(1, 3)
        while proc.poll() is None and time.monotonic() < deadline:
            if not at_moment and len(self.finished()) >= target:
                time.sleep(self.rng.uniform(0, 0.2))
                break
            time.sleep(0.02)
        return proc


def _damage_warnings(stderr: str) -> int:
    return sum(1 for line in stderr.splitlines() if line.startswith(WARNING) and
               "damaged" in line)


def soak(root: Path, cycles: int, frames: int, max_size: int, seed: int,
         extra: Sequence[str] = ()) -> dict[str, Any]:
    """Run the soak in ``root`` (``extra``: more CLI options); returns its report."""
    s = Soak(root, frames, max_size, random.Random(seed), extra)
    ref_seconds = s.reference()
    kills: dict[str, int] = {name: 0 for name in SIGNALS}
    r = s.report
    fresh = False
    t0 = time.perf_counter()
    while r["cycles"] < cycles:
        proc = s.run_until_killed(fresh, ref_seconds)
        fresh = False
        name = s.rng.choice(sorted(SIGNALS))
        killed = proc.poll() is None
        if killed:
            proc.send_signal(SIGNALS[name])
            kills[name] += 1
            r["cycles"] += 1
        _, err = proc.communicate()
        r["damage_warnings"] += _damage_warnings(err)
        # 130: our clean stop; -N: the signal came before the CLI installed its handlers
        # (still importing); 0: the run finished as the signal came.
        expected = ({-SIGNALS[name], 0} | ({130} if name != "SIGKILL" else set())
                    if killed else {0})
        if proc.returncode not in expected:
            r["bad_exits"].append([name, proc.returncode, err.strip()[-300:]])
        if proc.returncode == 0:
            s.check()
            fresh = True
        else:
            s.damage()
    if not fresh:  # finish the interrupted (and maybe damaged) job
        done = subprocess.run(s.command(s.out, s.work), env=s.env, capture_output=True,
                              text=True)
        r["damage_warnings"] += _damage_warnings(done.stderr)
        if done.returncode != 0:
            r["bad_exits"].append(["none", done.returncode, done.stderr.strip()[-300:]])
        else:
            s.check()
    r.update(kills=kills, reference_seconds=ref_seconds, seconds=time.perf_counter() - t0,
             frames_per_job=len(s.ref_pts), work=str(root))
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--max-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0, help="seed of the kills and the damage")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    print(json.dumps(soak(root, args.cycles, args.frames, args.max_size, args.seed), indent=2))


if __name__ == "__main__":
    main()
