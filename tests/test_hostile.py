"""Hostile inputs and damaged work directories: inputs bounded before they are decoded, memory
estimated before a run, an out-of-memory run as one line, and a work directory that heals.

The bad-input cases that fit the video matrix (huge or over-limit style images and videos,
``--max-size 100000``, damaged work files) are rows of ``tests/test_reliability.py``; here are
the units behind them and the CLI runs the matrix cannot express: a run under a memory limit,
resumes after a damaged chain state or frame compared with an undisturbed run, and a short
soak that kills and damages at random (``python -m scripts.soak`` is the long one)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from clitools import REPO, assert_one_line_error, run_cli
from conftest import pattern_image, save_rgb
from media import make_bilevel_png, make_clip

from strotss_video.config import StrotssConfig, build_config
from strotss_video.errors import ConfigError, InputError, UsageError
from strotss_video.io.decode import REDUCE_MARGIN, decode_rgb
from strotss_video.io.image import intact_png_size, write_png_rgb
from strotss_video.io.reader import read_frames
from strotss_video.pipeline import budget

# --------------------------------------------------------------------------- bounded decoding


def test_header_size_is_checked_before_decoding(tmp_path: Path) -> None:
    # A header alone: a decoder would fail on the missing data; the limit speaks first.
    huge = make_bilevel_png(tmp_path / "huge.png", 50000, 50000, pixels=False)
    with pytest.raises(InputError, match=r"50000x50000 \(2500 MP\), more than the 400 MP limit"):
        decode_rgb(huge, "style image")
    small = save_rgb(tmp_path / "small.png", pattern_image(50, 66))
    with pytest.raises(InputError, match=r"66x50 .* 0\.003 MP limit; .*--max-input-pixels"):
        decode_rgb(small, max_pixels=3000)
    assert decode_rgb(small, max_pixels=3300).shape == (50, 66, 3)


def test_max_input_pixels_precedence(tmp_path: Path) -> None:
    """default < config file < flag, as every setting."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("runtime:\n  max_input_pixels: 5000\n")
    for extra, want in (([], 5000), (["--max-input-pixels", "7000"], 7000)):
        proc = run_cli("image", "--config", cfg, *extra, "--print-config", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert yaml.safe_load(proc.stdout)["runtime"]["max_input_pixels"] == want
    assert build_config().runtime.max_input_pixels == 400_000_000
    with pytest.raises(ConfigError, match="runtime.max_input_pixels must be positive"):
        build_config(flags={"runtime": {"max_input_pixels": 0}})


def _write(path: Path, rgb: np.ndarray, kind: str) -> Path:
    """``rgb`` (H,W,3) uint8 as a file of ``kind``; returns the path."""
    if kind == "grey16":
        grey = (rgb.mean(axis=2) * 257).astype(np.uint16)
        assert cv2.imwrite(str(path), grey)
    elif kind == "rgba":
        alpha = np.linspace(64, 255, rgb.shape[1]).astype(np.uint8)[None, :, None]
        bgra = np.concatenate([rgb[..., ::-1], np.broadcast_to(alpha, rgb.shape[:2] + (1,))], 2)
        assert cv2.imwrite(str(path), np.ascontiguousarray(bgra))
    else:
        assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return path


@pytest.mark.parametrize("kind,suffix,tolerance", [("rgb", ".png", 0.004),
                                                   ("grey16", ".png", 0.004),
                                                   ("rgba", ".png", 0.004),
                                                   ("rgb", ".jpg", 0.02)])
def test_large_image_is_decoded_reduced(tmp_path: Path, kind: str, suffix: str,
                                        tolerance: float) -> None:
    """A file far larger than its use comes out at REDUCE_MARGIN x that long side, close to
    the full decode area-averaged to the same size."""
    path = _write(tmp_path / f"big{suffix}", pattern_image(1200, 1600, seed=4), kind)
    full = decode_rgb(path)
    reduced = decode_rgb(path, long_side=100)
    assert reduced.shape == (300, 400, 3) and reduced.dtype == np.float32
    assert max(reduced.shape[:2]) == REDUCE_MARGIN * 100
    want = cv2.resize(full, (400, 300), interpolation=cv2.INTER_AREA)
    assert float(np.abs(reduced - want).mean()) < tolerance


def test_image_within_the_margin_decodes_exactly_as_before(tmp_path: Path) -> None:
    path = save_rgb(tmp_path / "style.png", pattern_image(400, 300, seed=5))
    assert np.array_equal(decode_rgb(path, long_side=100), decode_rgb(path))


@pytest.mark.parametrize("damage", ["truncated", "zeroed", "bit-flipped", "empty"])
def test_intact_png_size_finds_damage(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "frame.png"
    write_png_rgb(path, pattern_image(48, 64, seed=6))
    assert intact_png_size(path) == (48, 64)
    data = path.read_bytes()
    broken = {"truncated": data[: len(data) // 2], "zeroed": bytes(len(data)),
              "bit-flipped": data[:100] + bytes([data[100] ^ 1]) + data[101:], "empty": b""}
    path.write_bytes(broken[damage])
    assert intact_png_size(path) is None
    assert intact_png_size(tmp_path / "missing.png") is None


# --------------------------------------------------------------------------- memory estimate


def _workload(side: int, workers: int = 1) -> budget.Workload:
    cfg = StrotssConfig(max_size=side)
    return budget.Workload(strotss=cfg, size=budget.scaled((1080, 1920), side), device="cpu",
                           inputs=((512, 512),), source=(1080, 1920), history=1,
                           workers=workers)


def test_estimate_grows_with_size_and_points() -> None:
    sizes = [budget.estimate(_workload(s)).host for s in (128, 256, 512, 1024, 2048)]
    assert sizes == sorted(sizes) and sizes[-1] > 4 * sizes[1]
    more = budget.Workload(**{**vars(_workload(512)),
                              "strotss": StrotssConfig(max_size=512, style_points=20000)})
    assert budget.estimate(more).host > budget.estimate(_workload(512)).host
    cuda = budget.Workload(**{**vars(_workload(512)), "device": "cuda"})
    assert budget.estimate(cuda).device > 0


def test_check_memory_names_the_largest_size_that_fits() -> None:
    host = budget.estimate(_workload(700)).host * 2
    budget.check_memory(_workload(512), _workload, host=host)  # fits: returns quietly
    with pytest.raises(UsageError) as refused:
        budget.check_memory(_workload(4096), _workload, host=host)
    message = str(refused.value)
    assert "at 4096 px" in message and "\n" not in message
    side = int(message.split("--max-size ")[1].split()[0])
    fits = budget.estimate(_workload(side)).host * budget.HEADROOM <= host
    assert fits and budget.estimate(_workload(side + 2)).host * budget.HEADROOM > host
    with pytest.raises(UsageError, match="not even the smallest size fits.*fewer --workers"):
        budget.check_memory(_workload(512, workers=4), lambda s: _workload(s, 4), host=1 << 20)


def test_workers_multiply_the_need() -> None:
    one = budget.estimate(_workload(512)).host
    four = budget._required(_workload(512, workers=4), resident=0)
    assert four.host == 4 * (one + budget.WORKER_PROCESS)
    cuda = budget.Workload(**{**vars(_workload(512, workers=4)), "device": "cuda", "gpus": 2})
    assert budget._required(cuda, resident=0).device == 2 * budget.estimate(cuda).device


def test_allocation_failures_are_recognised() -> None:
    assert budget.is_out_of_memory(MemoryError())
    assert budget.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried ..."))
    assert budget.is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:127] "
                                                "DefaultCPUAllocator: can't allocate memory"))
    assert budget.is_out_of_memory(OSError(12, "Cannot allocate memory"))
    assert not budget.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not budget.is_out_of_memory(ValueError("can't allocate memory"))


def test_host_memory_is_read() -> None:
    free = budget.host_available()
    assert free is None or free > 0
    assert budget.resident_bytes() >= 0


# --------------------------------------------------------------------------- the CLI

FAST = ["--preset", "test", "--max-size", "64", "--iters", "8", "--warm-iters", "3",
        "--min-shot-frames", "3", "--crf", "0", "--encoder-preset", "ultrafast", "--quiet"]
FRAMES = 6  # two shots: frames 0-2 and 3-5
WARNING = "strotss-video: warning: "


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    env.pop("STROTSS_VGG_WEIGHTS", None)  # as clitools.run_cli: the resolver's own sources
    return env


def _cli(*args: str | os.PathLike[str], preexec: Callable[[], None] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "strotss_video", *map(str, args)],
                          env=_env(), capture_output=True, text=True, timeout=600,
                          preexec_fn=preexec)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    make_clip(root / "clip.mp4", frames=FRAMES, size=(96, 64), cuts=(3,), shift=(1, 0))
    save_rgb(root / "style.png", pattern_image(64, 64, seed=2))
    save_rgb(root / "content.png", pattern_image(48, 64, seed=1))
    return root


def _video(media: Path, out: Path, work: Path, *extra: str) -> list[str | Path]:
    return [media / "clip.mp4", media / "style.png", out, "--work-dir", work, *FAST, *extra]


def _frames(path: Path) -> list[np.ndarray]:
    return [f.image for f in read_frames(path)]


@pytest.fixture(scope="module")
def reference(media: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[list[np.ndarray], Path]:
    """An undisturbed run's frames, and its work directory (kept)."""
    root = tmp_path_factory.mktemp("hostile-reference")
    proc = _cli(*_video(media, root / "ref.mp4", root / "work", "--keep-work"))
    assert proc.returncode == 0, proc.stderr
    return _frames(root / "ref.mp4"), root / "work"


def _limit_data(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    return apply


def test_image_too_large_for_memory_is_refused_up_front(media: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    proc = _cli("image", media / "content.png", media / "style.png", out, "--preset", "test",
                "--max-size", "100000", "--quiet")
    line = assert_one_line_error(proc, 2)
    assert "at 100000 px would need about" in line and "use --max-size" in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.weights
def test_out_of_memory_run_ends_as_one_line(media: Path, tmp_path: Path) -> None:
    """The estimate reads the machine's free memory; a data limit below what a 1024 px step
    needs makes the run itself fail to allocate."""
    if (budget.host_available() or 0) < 4 << 30:
        pytest.skip("the estimate of a 1024 px run needs about 3 GiB free to let it start")
    out = tmp_path / "out.png"
    proc = _cli("image", media / "content.png", media / "style.png", out, "--preset", "test",
                "--max-size", "1024", "--scales", "1", "--iters", "1", "--quiet",
                preexec=_limit_data(1200 << 20))
    line = assert_one_line_error(proc, 1)
    assert "ran out of memory at 1024 px; lower --max-size (e.g. 512)" in line, line
    assert not out.exists() and list(tmp_path.iterdir()) == []


def _stop_after(cmd: list[str | Path], work: Path, k: int) -> None:
    """Run ``cmd``; SIGINT it once ``k`` frames are finished in ``work``."""
    proc = subprocess.Popen([sys.executable, "-m", "strotss_video", *map(str, cmd)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if len(list(work.glob("*/frames/*.png"))) >= k:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before {k} frames: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err


def _warnings(stderr: str) -> list[str]:
    return [line[len(WARNING):] for line in stderr.splitlines() if line.startswith(WARNING)]


@pytest.mark.weights
def test_damaged_chain_state_is_removed_and_recomputed(
        media: Path, reference: tuple[list[np.ndarray], Path], tmp_path: Path) -> None:
    out, work = tmp_path / "out.mp4", tmp_path / "work"
    cmd = _video(media, out, work)
    _stop_after(cmd, work, 1)  # in the first shot, which then keeps its last frame's state
    job = next(p for p in work.iterdir() if not p.name.startswith("."))
    finished = sorted(job.glob("frames/*.png"))
    state = job / "state" / finished[-1].name.replace(".png", ".npz")
    assert 1 <= len(finished) < 3 and state.is_file(), finished
    state.write_bytes(state.read_bytes()[:100])  # truncated
    resumed = _cli(*cmd)
    assert resumed.returncode == 0, resumed.stderr
    warned, = _warnings(resumed.stderr)
    assert f"{state} is damaged (removed): shot 0 is computed again from frame 0" == warned
    images = _frames(out)
    assert len(images) == FRAMES and all(map(np.array_equal, images, reference[0]))


@pytest.mark.weights
def test_damaged_frame_of_a_finished_shot_is_recomputed(
        media: Path, reference: tuple[list[np.ndarray], Path], tmp_path: Path) -> None:
    out, work = tmp_path / "out.mp4", tmp_path / "work"
    # Every frame finished and kept; the output is part of the job's identity, so the job is
    # made here, for this output, and the output removed.
    kept = _cli(*_video(media, out, work, "--keep-work"))
    assert kept.returncode == 0, kept.stderr
    out.unlink()
    frame = next(work.glob("*/frames/00000004.png"))
    frame.write_bytes(bytes(frame.stat().st_size))  # zeroed
    again = _cli(*_video(media, out, work))
    assert again.returncode == 0, again.stderr
    warned, = _warnings(again.stderr)
    assert warned == f"{frame} is damaged (removed, with the frames after it): shot 1 is " \
                     "computed again from frame 3"
    images = _frames(out)
    assert len(images) == FRAMES and all(map(np.array_equal, images, reference[0]))


@pytest.mark.weights
def test_soak_with_kills_and_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A short `python -m scripts.soak`: every kill followed by damage to one work file."""
    monkeypatch.syspath_prepend(str(REPO))
    from scripts.soak import soak

    report = soak(tmp_path, cycles=3, frames=6, max_size=64, seed=1,
                  extra=["--scales", "1", "--iters", "2", "--warm-iters", "1"])
    assert report["bad_exits"] == [], report["bad_exits"]
    assert report["jobs_completed"] >= 1 and report["cycles"] == 3
    assert report["frames_lost"] == report["frames_different"] == 0, report
    assert report["frames_duplicated_or_unordered"] == 0
    assert report["damaged"], "nothing was damaged: the soak tested resumes only"
    assert 1 <= report["damage_warnings"] <= len(report["damaged"])
