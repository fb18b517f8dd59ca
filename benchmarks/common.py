"""What every benchmark shares: timing (warm-up, repeats, min/median/max, pieces timed in turn),
the machine and commit a figure belongs to, and the result file.

A result file is ``benchmarks/results/YYYY-MM-DD-DEVICE-WHAT.json`` (``--out DIR`` elsewhere)
holding one JSON object::

    {"date": "2026-12-07", "commit": "d032fda",
     "device": "AMD EPYC (avx512_bf16, no AMX), 2 threads",
     "command": "python -m benchmarks.video --size 256 ...", "what": "video",
     "machine": {...}, "results": {...}}

The same object is printed on stdout, so a benchmark's output can be piped or saved as is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# The CPU features that decide what `--precision auto` and `fast` resolve to.
_CPU_FLAGS = ("amx_tile", "amx_bf16", "avx512_bf16", "avx512f", "avx2")


@dataclass(frozen=True)
class Timing:
    """Seconds of ``len(samples)`` timed calls: their min, median and max."""

    samples: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def to_dict(self) -> dict[str, Any]:
        return {"min": self.min, "median": self.median, "max": self.max,
                "samples": list(self.samples)}


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a wall-clock interval covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], device: torch.device, repeats: int,
               warmup: int = 2) -> Timing:
    """``repeats`` timed calls of ``fn`` after ``warmup`` untimed ones (first calls fault in
    memory, pick kernels and fill caches: not the steady cost)."""
    return time_in_turn({"fn": fn}, device, repeats, warmup)["fn"]


def time_in_turn(pieces: dict[str, Callable[[], object]], device: torch.device, repeats: int,
                 warmup: int = 2) -> dict[str, Timing]:
    """Each piece timed ``repeats`` times, one call of each per round (after ``warmup`` untimed
    rounds): a machine whose speed drifts during the measurement slows every piece alike, so
    their ratios hold where back-to-back series would not."""
    samples: dict[str, list[float]] = {name: [] for name in pieces}
    for r in range(warmup + repeats):
        for name, fn in pieces.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            if r >= warmup:
                samples[name].append(time.perf_counter() - start)
    return {name: Timing(tuple(s)) for name, s in samples.items()}


def _cpu_model_and_flags() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags (Linux /proc/cpuinfo; elsewhere what Python
    knows and no flags)."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    if found := re.search(r"^model name\s*:\s*(.+)$", text, re.M):
        model = found.group(1).strip()
    if found := re.search(r"^flags\s*:\s*(.+)$", text, re.M):
        flags = set(found.group(1).split())
    return model, flags


def machine(device: torch.device) -> dict[str, Any]:
    """What a figure depends on: CPU model and the flags that decide bfloat16, thread count,
    library versions, and the GPU when one ran it."""
    model, flags = _cpu_model_and_flags()
    info: dict[str, Any] = {
        "cpu": model, "cpu_flags": [f for f in _CPU_FLAGS if f in flags],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__,
        "device": device.type,
        # Other work on the machine slows every figure: the 1-minute load when the run ended.
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def describe(info: dict[str, Any]) -> str:
    """One line naming the device, e.g. 'AMD EPYC (avx512_bf16, no AMX), 2 threads'."""
    if info.get("gpu"):
        return f"{info['gpu']} (CUDA {info.get('cuda')}), {info['cpus']} CPU cores"
    flags = set(info["cpu_flags"])
    if "amx_bf16" in flags:
        kind = "AMX"
    elif "avx512_bf16" in flags:
        kind = "avx512_bf16, no AMX"
    elif "avx2" in flags:
        kind = "AVX2 only"
    else:
        kind = "no AVX2"
    return f"{info['cpu']} ({kind}), {info['threads']} threads"


def device_slug(info: dict[str, Any]) -> str:
    """The DEVICE part of a result's name: the GPU's model ('h100'), or the CPU's family and the
    feature that decides its precision ('xeon-amx', 'epyc-avx512bf16', 'epyc-avx2')."""
    if info.get("gpu"):
        words = [w for w in info["gpu"].lower().split() if w not in ("nvidia", "geforce", "tesla")]
        return re.sub(r"[^a-z0-9]+", "", words[0]) if words else "gpu"
    name = info["cpu"].lower()
    family = next((f for f in ("xeon", "epyc", "ryzen", "core") if f in name), "cpu")
    flags = set(info["cpu_flags"])
    isa = ("amx" if "amx_bf16" in flags else "avx512bf16" if "avx512_bf16" in flags
           else "avx2" if "avx2" in flags else platform.machine().lower())
    return f"{family}-{isa}"


def commit() -> str:
    """The repository's short commit, with '+changes' when the work tree differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=False).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out DIR`` and ``--name WHAT``: where the result file goes and what it is called."""
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="directory of the result file (default benchmarks/results)")
    parser.add_argument("--name", help="the WHAT of DATE-DEVICE-WHAT.json (default: the "
                                       "benchmark's own name)")


def result_path(out: Path, date: str, slug: str, what: str) -> Path:
    """``out/DATE-DEVICE-WHAT.json``, numbered ``-2``, ``-3``... rather than overwriting."""
    what = re.sub(r"[^A-Za-z0-9._-]+", "-", what)
    path = out / f"{date}-{slug}-{what}.json"
    n = 2
    while path.exists():
        path = out / f"{date}-{slug}-{what}-{n}.json"
        n += 1
    return path


def finish(what: str, results: dict[str, Any], args: argparse.Namespace,
           device: torch.device) -> Path:
    """Print the result as JSON on stdout and write it to its result file (path on stderr)."""
    info = machine(device)
    date, what = dt.date.today().isoformat(), args.name or what
    record = {"date": date, "commit": commit(), "device": describe(info),
              "command": f"python -m {_module()} {shlex.join(sys.argv[1:])}".rstrip(),
              "what": what, "machine": info, "results": results}
    text = json.dumps(record, indent=1, default=str)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path = result_path(args.out, date, device_slug(info), what)
    path.write_text(text + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return path


def _module() -> str:
    """The running benchmark as ``python -m`` names it ('benchmarks.video')."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else Path(sys.argv[0]).stem
