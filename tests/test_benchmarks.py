"""benchmarks/: the shared timing and result-file helper, the committed result files, and one
benchmark run end to end as a module from the repository root."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULT_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})-[a-z0-9]+(?:-[a-z0-9]+)*\.json$")
RECORD_KEYS = {"date", "commit", "device", "command", "what", "results"}


@pytest.fixture(scope="module")
def common() -> ModuleType:
    """benchmarks/common.py, loaded from its file (pytest does not put the root on sys.path)."""
    spec = importlib.util.spec_from_file_location("benchmarks_common",
                                                  ROOT / "benchmarks" / "common.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  # dataclasses look it up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_pieces_are_timed_in_turn(common: ModuleType) -> None:
    """One call of each piece per round, warm-up rounds untimed, min <= median <= max."""
    calls: list[str] = []
    pieces = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    timings = common.time_in_turn(pieces, torch.device("cpu"), repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    for t in timings.values():
        assert len(t.samples) == 3 and t.min <= t.median <= t.max
        assert t.to_dict()["samples"] == list(t.samples)
    assert len(common.time_calls(lambda: None, torch.device("cpu"), 5).samples) == 5


@pytest.mark.parametrize(("cpu", "flags", "slug", "kind"), [
    ("Intel(R) Xeon(R) Platinum 8488C", ["amx_tile", "amx_bf16", "avx512_bf16", "avx512f", "avx2"],
     "xeon-amx", "AMX"),
    ("AMD EPYC", ["avx512_bf16", "avx512f", "avx2"], "epyc-avx512bf16", "avx512_bf16, no AMX"),
    ("AMD EPYC 7R13 Processor", ["avx2"], "epyc-avx2", "AVX2 only"),
])
def test_cpu_names_follow_the_precision_deciding_flags(common: ModuleType, cpu: str,
                                                       flags: list[str], slug: str,
                                                       kind: str) -> None:
    info = {"cpu": cpu, "cpu_flags": flags, "threads": 2, "cpus": 2}
    assert common.device_slug(info) == slug
    assert common.describe(info) == f"{cpu} ({kind}), 2 threads"


def test_gpu_names_and_this_machine(common: ModuleType) -> None:
    gpu = {"cpu": "x", "cpu_flags": [], "gpu": "NVIDIA H100 80GB HBM3", "cuda": "13.0", "cpus": 16}
    assert common.device_slug(gpu) == "h100"
    assert common.describe(gpu).startswith("NVIDIA H100 80GB HBM3")
    here = common.machine(torch.device("cpu"))
    assert here["threads"] == torch.get_num_threads() and here["torch"] == torch.__version__
    assert set(here["cpu_flags"]) <= set(common._CPU_FLAGS)
    assert re.fullmatch(r"[a-z0-9]+-[a-z0-9_]+", common.device_slug(here))


def test_result_files_are_written_once_and_match_stdout(common: ModuleType, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """The record printed is the record written; a second run the same day gets ``-2``."""
    args = argparse.Namespace(out=tmp_path / "res", name=None)
    first = common.finish("demo", {"figure": 1.5}, args, torch.device("cpu"))
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(first.read_text()) == printed
    assert RECORD_KEYS <= printed.keys() and printed["results"] == {"figure": 1.5}
    assert first.name == f"{printed['date']}-{common.device_slug(printed['machine'])}-demo.json"
    args.name = "demo"
    second = common.finish("other", {}, args, torch.device("cpu"))
    assert second.name == first.name.replace(".json", "-2.json") and first.exists()


def test_committed_results_follow_the_convention() -> None:
    """Every file in benchmarks/results is DATE-DEVICE-WHAT.json with its date, commit,
    device, command and figures inside."""
    files = sorted((ROOT / "benchmarks" / "results").iterdir())
    assert files
    for path in files:
        name = RESULT_NAME.match(path.name)
        assert name, f"{path.name} is not DATE-DEVICE-WHAT.json"
        record = json.loads(path.read_text())
        assert RECORD_KEYS <= record.keys(), f"{path.name} lacks {RECORD_KEYS - record.keys()}"
        assert record["date"] == name.group(1) and record["commit"] and record["results"]


@pytest.mark.weights
def test_image_benchmark_runs_as_a_module(tmp_path: Path) -> None:
    """``python -m benchmarks.image`` from the root: JSON on stdout, the same in its file,
    the floor the sum of its pieces."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.image", "--sizes", "32", "--iters", "2",
         "--repeats", "1", "--output-points", "64", "--style-points", "128",
         "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    (written,) = tmp_path.glob("*-image.json")
    assert json.loads(written.read_text()) == record
    assert record["command"].startswith("python -m benchmarks.image --sizes 32")
    (row,) = record["results"]["sizes"]
    floor = row["floor_seconds"]
    assert floor["total"] == pytest.approx(sum(v for k, v in floor.items() if k != "total"))
    assert (row["height"], row["width"]) == (24, 32)
    assert row["ratio_to_floor"] == pytest.approx(row["seconds_per_iteration"] / floor["total"])
