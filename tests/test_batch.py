"""Per-shot processing and batch runs: cold frames at cuts, the shots command, manifests,
local and Ray executors giving identical frames, and re-runs that redo only unfinished work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from clitools import REPO, assert_one_line_error, run_cli, snapshot
from conftest import TinyExtractor, pattern_image, save_rgb
from media import Clip, make_clip

from strotss_video.errors import ConfigError
from strotss_video.io.image import read_png_rgb
from strotss_video.io.reader import read_frames
from strotss_video.pipeline.batch import load_manifest, run_batch
from strotss_video.pipeline.video import stylize_video

TINY: dict[str, Any] = dict(max_size=64, scales=1, iters=3, output_points=64, style_points=128,
                            warm_iters=2)
CUTS = (20, 41)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batch-media")
    save_rgb(root / "style.png", pattern_image(64, 64, seed=2))
    save_rgb(root / "style2.png", pattern_image(64, 64, seed=7))
    return root


@pytest.fixture(scope="module")
def two_cuts(media: Path) -> Clip:
    # One pixel of pan per frame (see test_shots: faster pans on a 96 px texture look like cuts).
    return make_clip(media / "two_cuts.mp4", frames=60, size=(96, 64), cuts=CUTS, shift=(1, 0),
                     audio=False)


def test_cold_frames_exactly_at_detected_shot_starts(two_cuts: Clip, media: Path,
                                                     tmp_path: Path) -> None:
    result = stylize_video(two_cuts.path, media / "style.png", tmp_path / "out.mp4",
                           extractor=TinyExtractor(), progress=False, **TINY)
    shots = result.stats["summary"]["shots"]
    starts = [s["start_frame"] for s in shots]
    assert len(starts) == 3 and starts[0] == 0
    assert all(abs(s - c) <= 1 for s, c in zip(starts[1:], CUTS))
    cold = [r.index for r in result.frames if r.kind == "cold"]
    assert cold == starts
    assert [r.cold_reason for r in result.frames if r.kind == "cold"] == ["shot start"] * 3
    assert result.stats["summary"]["cold_reasons"] == {"shot start": 3}
    # Shots tile the clip: every frame once, end exclusive.
    assert [r.index for r in result.frames] == list(range(60))
    assert [(a["end_frame"], b["start_frame"]) for a, b in zip(shots, shots[1:])] == \
        [(b["start_frame"],) * 2 for b in shots[1:]]
    assert len(list(read_frames(tmp_path / "out.mp4"))) == 60


def test_shots_none_and_flow_collapse_restart(two_cuts: Clip, media: Path,
                                              tmp_path: Path) -> None:
    """Without cut detection the chain still restarts where the flow collapses (a cut)."""
    result = stylize_video(two_cuts.path, media / "style.png", None, extractor=TinyExtractor(),
                           progress=False, shots="none", **TINY)
    assert len(result.stats["summary"]["shots"]) == 1
    cold = {r.index: r for r in result.frames if r.kind == "cold"}
    # The flow check is a fallback, not a cut detector: smooth unrelated canvases can still look
    # 60% consistent (cut 41 here), but cut 20 collapses it and restarts the chain.
    assert 20 in cold and set(cold) <= {0, *CUTS}
    assert cold[0].cold_reason == "shot start"
    assert all(r.cold_reason == "flow collapsed" and r.reliable < 0.25
               for i, r in cold.items() if i)
    assert all(r.reliable >= 0.25 for r in result.frames if r.kind == "warm")
    # A floor of 0 never restarts: one cold frame.
    never = stylize_video(two_cuts.path, media / "style.png", None, extractor=TinyExtractor(),
                          progress=False, shots="none", reliable_floor=0.0, **TINY)
    assert [r.index for r in never.frames if r.kind == "cold"] == [0]


def test_shots_from_a_cuts_file(two_cuts: Clip, media: Path, tmp_path: Path) -> None:
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("# editor's cut list\n10\n00:00:01.000\n")
    result = stylize_video(two_cuts.path, media / "style.png", None, extractor=TinyExtractor(),
                           progress=False, shots=str(cuts), reliable_floor=0.0, **TINY)
    assert [r.index for r in result.frames if r.kind == "cold"] == [0, 10, 30]


def test_shots_command_table_and_json(two_cuts: Clip) -> None:
    proc = run_cli("shots", two_cuts.path, "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    shots = json.loads(proc.stdout)["shots"]
    assert [set(s) for s in shots] == [{"index", "start_frame", "end_frame", "start_time",
                                        "end_time"}] * 3
    assert [s["index"] for s in shots] == [0, 1, 2]
    assert shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == 60
    assert all(abs(s["start_frame"] - c) <= 1 for s, c in zip(shots[1:], CUTS))
    assert shots[1]["start_time"] == pytest.approx(shots[1]["start_frame"] / 30)
    table = run_cli("shots", two_cuts.path, "--quiet", "--shot-detector", "content")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()[2:]]
    assert [r[:3] for r in rows] == [[str(s["index"]), str(s["start_frame"]), str(s["end_frame"])]
                                     for s in shots]


# ------------------------------------------------------------------------------ manifests

def write_manifest(path: Path, jobs: list[dict[str, Any]], defaults: dict[str, Any] | None = None
                   ) -> Path:
    data: dict[str, Any] = {"jobs": jobs}
    if defaults is not None:
        data["defaults"] = defaults
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Path:
    """Two clips, one cut each: four shots in all."""
    root = tmp_path_factory.mktemp("pair")
    make_clip(root / "a.mp4", frames=16, size=(96, 64), cuts=(8,), shift=(1, 0), audio=True)
    make_clip(root / "b.mp4", frames=14, size=(80, 64), cuts=(7,), shift=(1, 0), audio=False,
              seed=5)
    for name in ("style.png", "style2.png"):
        (root / name).write_bytes((media / name).read_bytes())
    return root


def pair_manifest(root: Path, name: str) -> Path:
    """A manifest of the pair writing to ``root/out-NAME/``."""
    defaults = {"preset": "test", "max_size": 64, "iters": 4, "warm_iters": 2, "min_shot_frames": 5,
                "threads": 1, "crf": 0, "encoder_preset": "ultrafast"}
    out = f"out-{name}"
    (root / out).mkdir(exist_ok=True)
    return write_manifest(root / f"{name}.yaml", [
        {"input": "a.mp4", "style": "style.png", "output": f"{out}/a.mp4"},
        {"input": "b.mp4", "style": "style.png", "output": f"{out}/b.mp4",
         "shots": [{"index": 1, "style": "style2.png"}]},
    ], defaults)


@pytest.mark.parametrize("job,field,needle", [
    ({"input": "missing.mp4", "style": "style.png", "output": "o.mp4"}, "job 0 (missing.mp4).input",
     "file not found"),
    ({"input": "a.mp4", "style": "nope.png", "output": "o.mp4"}, "job 0 (a.mp4).style",
     "file not found"),
    ({"input": "a.mp4", "style": "style.png"}, "job 0 (a.mp4)", "missing field 'output'"),
    ({"input": "a.mp4", "style": "style.png", "output": "o.mp4", "colour": 1},
     "job 0 (a.mp4).colour", "unknown field"),
    ({"input": "a.mp4", "style": "style.png", "output": "o.mp4", "options": {"warm_itres": 3}},
     "job 0 (a.mp4).options.warm_itres", "unknown option"),
    ({"input": "a.mp4", "style": "style.png", "output": "o.mp4", "options": {"warm-iters": -3}},
     "job 0 (a.mp4)", "temporal.warm_iters must be positive"),
    ({"input": "a.mp4", "style": "style.png", "output": "o.avi"}, "job 0 (a.mp4).output",
     "unsupported extension"),
    ({"input": "a.mp4", "style": "style.png", "output": "o.mp4", "shots": [{"index": 1}]},
     "job 0 (a.mp4).shots[0]", "expected {index: N, style: FILE}"),
    ({"input": "a.mp4", "style": "style.png", "output": "a.mp4"}, "job 0 (a.mp4).output",
     "is also an input"),
    # Paths are names, never expanded: no ~, no variables, no commands.
    ({"input": "$HOME/a.mp4", "style": "style.png", "output": "o.mp4"},
     "job 0 ($HOME/a.mp4).input", "$HOME/a.mp4"),
    ({"input": "a.mp4", "style": "~/style.png", "output": "o.mp4"}, "job 0 (a.mp4).style",
     "~/style.png"),
])
def test_bad_manifest_names_job_and_field(pair: Path, tmp_path: Path, job: dict[str, Any],
                                          field: str, needle: str) -> None:
    manifest = tmp_path / "m.yaml"
    for name in ("a.mp4", "style.png"):
        os.symlink(pair / name, tmp_path / name)
    write_manifest(manifest, [job])
    with pytest.raises(ConfigError) as err:
        load_manifest(manifest)
    assert f"m.yaml: {field}:" in str(err.value) and needle in str(err.value)
    # Through the CLI: one line, exit 2, nothing written anywhere.
    before = snapshot(tmp_path)
    proc = run_cli("batch", manifest, "--work-dir", tmp_path / "work")
    line = assert_one_line_error(proc, 2)
    assert field in line
    assert snapshot(tmp_path) == before


def test_manifest_paths_relative_and_options(pair: Path) -> None:
    specs = load_manifest(pair_manifest(pair, "parse"))
    assert [s.input for s in specs] == [pair / "a.mp4", pair / "b.mp4"]
    assert specs[1].shot_styles == {1: pair / "style2.png"}
    assert specs[0].config.temporal.warm_iters == 2 and specs[0].config.strotss.scales == 2
    assert specs[0].config.shots.min_shot_frames == 5 and specs[0].config.runtime.threads == 1


def test_shot_override_past_the_last_shot_is_rejected(pair: Path, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", [
        {"input": str(pair / "a.mp4"), "style": str(pair / "style.png"),
         "output": str(tmp_path / "o.mp4"), "options": {"min_shot_frames": 5},
         "shots": [{"index": 5, "style": str(pair / "style2.png")}]}])
    proc = run_cli("batch", manifest, "--work-dir", tmp_path / "work")
    line = assert_one_line_error(proc, 2)
    assert "shot 5" in line and "2 shot(s)" in line
    assert not (tmp_path / "o.mp4").exists()


# ----------------------------------------------------------------- executors (real VGG16)

def frames_of(work_root: Path) -> dict[str, np.ndarray]:
    """Every finished frame under a work root: 'input-stem/frame' -> uint8 RGB (the job
    directory's key also covers the output path, which differs between these runs)."""
    out = {}
    for png in sorted(work_root.glob("*/frames/*.png")):
        image = read_png_rgb(png)
        assert image is not None
        out[f"{png.parent.parent.name.rsplit('-', 1)[0]}/{png.name}"] = image
    return out


def decoded(path: Path) -> list[np.ndarray]:
    return [f.image for f in read_frames(path)]


@pytest.fixture(scope="module")
def reference(pair: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The single-worker run every other executor must match."""
    root = tmp_path_factory.mktemp("ref")
    result = run_batch(pair_manifest(pair, "ref"), workers=1, work_dir=root / "work",
                       keep_work=True, progress=False)
    frames = frames_of(root / "work")
    videos = {n: decoded(pair / "out-ref" / n) for n in ("a.mp4", "b.mp4")}
    return {"frames": frames, "videos": videos, "result": result}


@pytest.mark.weights
def test_batch_single_worker_run(reference: dict[str, Any], pair: Path) -> None:
    result = reference["result"]
    assert sorted(result.finished_jobs) == ["a.mp4", "b.mp4"] and result.shots_run == 4
    assert len(reference["frames"]) == 16 + 14 and result.computed_frames == 30
    assert [len(v) for v in reference["videos"].values()] == [16, 14]


def assert_same(frames: dict[str, np.ndarray], reference: dict[str, Any], out: Path) -> None:
    ref = reference["frames"]
    assert sorted(frames) == sorted(ref)
    different = [k for k in ref if not np.array_equal(frames[k], ref[k])]
    assert not different, f"{len(different)} frames differ, e.g. {different[:3]}"
    for name, want in reference["videos"].items():
        got = decoded(out / name)
        assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))


@pytest.mark.weights
def test_two_local_workers_give_identical_frames(reference: dict[str, Any], pair: Path,
                                                 tmp_path: Path) -> None:
    result = run_batch(pair_manifest(pair, "two"), workers=2, work_dir=tmp_path / "work",
                       keep_work=True, progress=False)
    assert result.shots_run == 4 and result.computed_frames == 30
    assert_same(frames_of(tmp_path / "work"), reference, pair / "out-two")


@pytest.mark.weights
def test_ray_executor_gives_identical_frames(reference: dict[str, Any], pair: Path,
                                             tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_batch(pair_manifest(pair, "ray"), executor="ray", work_dir=tmp_path / "work", keep_work=True,
                           progress=False)
    finally:
        ray.shutdown()
    assert result.shots_run == 4 and result.computed_frames == 30
    assert_same(frames_of(tmp_path / "work"), reference, pair / "out-ray")


def _count(work_root: Path) -> tuple[int, int]:
    """(finished frames, finished shots) under a work root."""
    return (len(list(work_root.glob("*/frames/*.png"))),
            len(list(work_root.glob("*/shots/*.json"))))


@pytest.mark.weights
def test_killed_batch_rerun_redoes_only_unfinished_shots(pair: Path, tmp_path: Path) -> None:
    manifest = pair_manifest(pair, "kill")
    out = pair / "out-kill"
    work = tmp_path / "work"
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, "-m", "strotss_video", "batch", str(manifest),
                             "--work-dir", str(work), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    # Kill once the first shot is finished and the second has started.
    while time.monotonic() < deadline and proc.poll() is None:
        frames, shots = _count(work)
        if shots >= 1 and frames >= 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before the kill: {proc.stderr.read() if proc.stderr else ''}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    frames_done, shots_done = _count(work)
    assert 1 <= shots_done < 4 and frames_done < 30
    assert not list(out.iterdir()), "nothing may exist at the outputs after a kill"

    stats = tmp_path / "stats.json"
    again = run_cli("batch", manifest, "--work-dir", work, "--quiet", "--stats", stats,
                    timeout=600)
    assert again.returncode == 0, again.stderr
    summary = json.loads(stats.read_text())
    assert summary["shots_run"] == 4 - shots_done  # finished shots were not run again
    assert summary["computed_frames"] == 30 - frames_done  # nor were finished frames
    assert [len(decoded(out / n)) for n in ("a.mp4", "b.mp4")] == [16, 14]

    # A third run finds every job done and does nothing.
    third = run_cli("batch", manifest, "--work-dir", work, "--quiet", "--stats", stats)
    assert third.returncode == 0, third.stderr
    summary = json.loads(stats.read_text())
    assert summary["skipped_jobs"] == ["a.mp4", "b.mp4"] and summary["computed_frames"] == 0
