"""`strotss-video evaluate`: frame matching by time, the style and content distances against
brute force, the whole evaluation on generated clips (a tiny extractor where VGG is not the
point), and the command line (JSON keys, table, plot, one-line errors before torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from clitools import PREFIX, assert_one_line_error, run_cli, snapshot
from conftest import TinyExtractor, pattern_image, save_rgb
from media import make_clip

from strotss_video.evaluate.distances import FeatureDistances, gram, lpips_distance, style_distance
from strotss_video.evaluate.frames import match_times
from strotss_video.evaluate.run import evaluate_video
from strotss_video.io.writer import VideoWriter

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def tiny_features(seed: int = 0) -> FeatureDistances:
    """TinyExtractor's two conv maps for both distances, random positive heads."""
    g = torch.Generator().manual_seed(seed)
    return FeatureDistances(TinyExtractor(seed), style_maps=(1, 2), content_maps=(1, 2),
                            heads=(torch.rand(8, generator=g), torch.rand(16, generator=g)),
                            content_metric="tiny", style_layers=("a", "b"))


def write_video(path: Path, images: list[np.ndarray]) -> Path:
    """Frames 1/30 s apart from 0, losslessly (x264 crf 0, 4:4:4)."""
    h, w = images[0].shape[:2]
    with VideoWriter(path, width=w, height=h, time_base=Fraction(1, 30),
                     average_rate=Fraction(30), crf=0, preset="ultrafast",
                     pix_fmt="yuv444p") as writer:
        for i, img in enumerate(images):
            writer.write(np.ascontiguousarray(img), i)
    return path


def noisy(images: list[np.ndarray], sigma: float, seed: int = 0) -> list[np.ndarray]:
    """Fresh Gaussian noise on every frame (what flicker looks like to the warping error)."""
    rng = np.random.default_rng(seed)
    return [np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)
            for img in images]


# --------------------------------------------------------------------------- frame matching


def test_match_times_by_moment() -> None:
    f = Fraction
    thirty = [f(i, 30) for i in range(10)]
    assert match_times(thirty[:4], thirty) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    # Matroska stores milliseconds: 33 ms is frame 1 of a 30 fps input.
    assert match_times([f(0), f(33, 1000), f(67, 1000)], thirty) == [(0, 0), (1, 1), (2, 2)]
    # A 15 fps output matches every other input frame; a time between two frames matches none.
    assert match_times([f(i, 15) for i in range(3)], thirty) == [(0, 0), (1, 2), (2, 4)]
    assert match_times([f(1, 60)], thirty) == []
    # Each input frame at most once, and nothing past the input's end.
    assert match_times([f(0), f(1, 1000), f(20)], thirty) == [(0, 0)]


# --------------------------------------------------------------------------- distances


def test_gram_and_style_distance_against_brute_force() -> None:
    rng = np.random.default_rng(0)
    maps = [rng.random((1, c, 5, 7)) for c in (3, 4)]
    style = [rng.random((1, c, 6, 4)) for c in (3, 4)]
    grams = [gram(torch.tensor(m, dtype=torch.float32)) for m in maps]
    style_grams = [gram(torch.tensor(m, dtype=torch.float32)) for m in style]

    def brute_gram(m: np.ndarray) -> np.ndarray:
        c, n = m.shape[1], m.shape[2] * m.shape[3]
        return np.array([[sum(m[0, i].ravel()[p] * m[0, j].ravel()[p] for p in range(n)) / n
                          for j in range(c)] for i in range(c)])

    expected = np.mean([np.sqrt(((brute_gram(a) - brute_gram(b)) ** 2).sum())
                        / np.sqrt((brute_gram(b) ** 2).sum()) for a, b in zip(maps, style)])
    assert np.allclose(grams[0].numpy(), brute_gram(maps[0]), rtol=1e-5)
    assert style_distance(grams, style_grams) == pytest.approx(expected, rel=1e-5)
    assert style_distance(style_grams, style_grams) == 0.0


def test_lpips_distance_against_brute_force() -> None:
    rng = np.random.default_rng(1)
    a = [rng.normal(size=(1, c, 4, 3)) for c in (2, 5)]
    b = [rng.normal(size=(1, c, 4, 3)) for c in (2, 5)]
    heads = [rng.random(c) for c in (2, 5)]
    expected = 0.0
    for x, y, w in zip(a, b, heads):
        per_pixel = []
        for i in range(4):
            for j in range(3):
                u = x[0, :, i, j] / (np.linalg.norm(x[0, :, i, j]) + 1e-10)
                v = y[0, :, i, j] / (np.linalg.norm(y[0, :, i, j]) + 1e-10)
                per_pixel.append((w * (u - v) ** 2).sum())
        expected += np.mean(per_pixel)
    t = [torch.tensor(m, dtype=torch.float32) for m in (*a, *b)]
    h = [torch.tensor(w, dtype=torch.float32) for w in heads]
    assert lpips_distance(t[:2], t[2:], h) == pytest.approx(expected, rel=1e-5)
    assert lpips_distance(t[:2], t[:2], h) == 0.0


def test_style_distance_of_the_style_image_to_itself_is_zero() -> None:
    feats = tiny_features()
    style = as_tensor(pattern_image(40, 56, seed=3))
    grams = feats.style_grams(style)
    content, distance = feats.frame(style, style, grams)
    assert distance == 0.0 and content == 0.0
    _, other = feats.frame(as_tensor(pattern_image(40, 56, seed=4)), style, grams)
    assert other > 0.01


# --------------------------------------------------------------------------- evaluate_video


def test_static_clip_has_no_warping_error_and_noise_raises_it(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "static.mp4", frames=6, size=(64, 48), pattern="static",
                     pix_fmt="yuv444p", audio=False)
    noise = write_video(tmp_path / "noise.mp4", noisy(clip.images, 12.0))
    feats = tiny_features()
    clean = evaluate_video(clip.path, clip.path, features=feats, device="cpu")
    assert len(clean.matches) == 6 and clean.warping.pairs == 5
    # Farneback's floor on identical frames (~1e-6, see test_metrics) plus codec noise.
    assert clean.warping.mean < 2e-5
    assert clean.content_distance == [0.0] * 6 and clean.style_distance is None
    flicker = evaluate_video(noise, clip.path, features=feats, device="cpu")
    assert flicker.warping.mean > 100 * clean.warping.mean
    assert flicker.input_warping.per_frame == clean.input_warping.per_frame
    assert flicker.warping_ratio > 10
    assert min(flicker.content_distance) > 0


def test_range_output_is_matched_with_its_input_frames(tmp_path: Path) -> None:
    """An output made from input frames 3..8 (stamped from 0, as the video command writes a
    range) at half size: with --start 3 its frames meet their own input frames."""
    clip = make_clip(tmp_path / "in.mp4", frames=10, size=(96, 64), shift=(2, 0),
                     pix_fmt="yuv444p", audio=False)
    small = [cv2.resize(img, (48, 32), interpolation=cv2.INTER_AREA) for img in clip.images[3:9]]
    out = write_video(tmp_path / "out.mp4", small)
    feats = tiny_features()
    right = evaluate_video(out, clip.path, start=3, features=feats, device="cpu")
    assert [m.input_index for m in right.matches] == list(range(3, 9))
    assert [m.output_index for m in right.matches] == list(range(6))
    assert right.size == (32, 48)
    wrong = evaluate_video(out, clip.path, features=feats, device="cpu")
    assert [m.input_index for m in wrong.matches] == list(range(6))
    assert max(right.content_distance) < min(wrong.content_distance[1:])
    assert right.warping_ratio < 2  # the same frames, scaled and stored losslessly
    # --end short of the output: only the overlap; --frames keeps the first N.
    part = evaluate_video(out, clip.path, start=3, end=6, frames=2, max_size=24, features=feats,
                          device="cpu")
    assert [m.input_index for m in part.matches] == [3, 4] and part.size == (16, 24)
    table = part.table().splitlines()
    assert "(input frames 3-4): 2 frames at 24x16" in table[0]
    assert [line.split()[0] for line in table[1:]] == ["measure", "warping", "warping", "content",
                                                        "warping"]


def test_style_distance_per_frame(tmp_path: Path) -> None:
    style_img = pattern_image(48, 64, seed=5)
    style = save_rgb(tmp_path / "style.png", style_img)
    out = write_video(tmp_path / "out.mp4", [style_img] * 3)
    other = write_video(tmp_path / "other.mp4", [pattern_image(48, 64, seed=6)] * 3)
    feats = tiny_features()
    same = evaluate_video(out, other, style, features=feats, device="cpu")
    assert same.style_distance is not None and len(same.style_distance) == 3
    assert max(same.style_distance) < 0.01  # the style image itself, through a lossless codec
    far = evaluate_video(other, out, style, features=feats, device="cpu")
    assert min(far.style_distance or [0]) > 10 * max(same.style_distance)
    data = far.to_dict()
    assert data["summary"]["style_distance"] == pytest.approx(np.mean(far.style_distance))
    assert data["style_layers"] == ["a", "b"] and data["style"] == str(style)


# --------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def pan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(input clip, a stylised stand-in made from its frames 2..7, a style image)."""
    tmp = tmp_path_factory.mktemp("evaluate_cli")
    clip = make_clip(tmp / "in.mp4", frames=8, size=(64, 48), shift=(2, 0), pix_fmt="yuv444p",
                     audio=False)
    out = write_video(tmp / "out.mp4", noisy(clip.images[2:8], 6.0))
    style = save_rgb(tmp / "style.png", pattern_image(64, 64, seed=2))
    return clip.path, out, style


@pytest.mark.weights
def test_cli_json_and_plot(pan: tuple[Path, Path, Path], tmp_path: Path) -> None:
    clip, out, style = pan
    plot = tmp_path / "curves.png"
    proc = run_cli("evaluate", out, clip, "--style", style, "--start", "2", "--json", "--quiet",
                   "--plot", plot, "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"output", "input", "style", "size", "frames", "pairs", "flow", "mask",
                         "content_metric", "style_layers", "summary", "per_frame", "per_pair"}
    assert set(data["summary"]) == {"warping_error", "input_warping_error", "warping_ratio",
                                    "empty_pairs", "content_distance", "style_distance"}
    assert set(data["per_frame"]) == {"output_frame", "input_frame", "time",
                                      "content_distance", "style_distance"}
    assert set(data["per_pair"]) == {"warping_error", "input_warping_error", "mask_coverage"}
    assert data["frames"] == 6 and data["pairs"] == 5 and data["size"] == [48, 64]
    assert data["per_frame"]["input_frame"] == [2, 3, 4, 5, 6, 7]
    assert data["flow"] == "farneback" and data["content_metric"] == "lpips-vgg16-v0.1"
    assert data["style_layers"] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert all(len(v) == 6 for v in data["per_frame"].values())
    assert all(len(v) == 5 for v in data["per_pair"].values())
    summary = data["summary"]
    assert summary["warping_ratio"] > 1 and 0 < summary["content_distance"] < 1
    assert summary["style_distance"] > 0
    image = cv2.imread(str(plot))
    assert plot.read_bytes()[:8] == PNG and image is not None and image.shape[0] > 300


@pytest.mark.weights
def test_lpips_matches_the_reference_implementation() -> None:
    """LPIPS-VGG v0.1 of two test patterns: 0.6559863 from richzhang's `lpips` 0.1.4 package
    (LPIPS(net='vgg'), normalize=True) with the same ImageNet VGG16 weights."""
    from strotss_video.evaluate.distances import vgg_distances

    feats = vgg_distances(progress=False)
    a, b = as_tensor(pattern_image(48, 64, seed=1)), as_tensor(pattern_image(48, 64, seed=2))
    assert feats.frame(a, b, None)[0] == pytest.approx(0.6559863, rel=1e-5)
    grams = feats.style_grams(b)  # b as the style image, b as the output: distance 0
    assert feats.frame(b, a, grams)[1] == 0.0


def test_cli_bad_inputs_are_one_line_errors_before_torch(pan: tuple[Path, Path, Path],
                                                         tmp_path: Path) -> None:
    clip, out, style = pan
    (tmp_path / "notes.mp4").write_text("not a video\n")
    cases = [
        (["evaluate", str(tmp_path / "nope.mp4"), str(clip)], "does not exist"),
        (["evaluate", str(tmp_path / "notes.mp4"), str(clip)], "notes.mp4"),
        (["evaluate", str(out), str(clip), "--start", "7"], "only 1 frame"),
        (["evaluate", str(out), str(clip), "--style", str(tmp_path / "s.png")], "style image"),
        (["evaluate", str(out), str(clip), "--plot", str(tmp_path / "p.jpg")], "plot"),
        (["evaluate", str(out), str(clip), "--frames", "1"], "--frames"),
        (["evaluate", str(out)], "missing INPUT"),
    ]
    code = ("import sys\nfrom strotss_video.cli import main\n"
            f"for argv in {[c for c, _ in cases]!r}:\n"
            "    assert main(argv) == 2, argv\n"
            "    assert 'torch' not in sys.modules, argv\n"
            "sys.modules['matplotlib'] = None  # as if not installed\n"
            f"assert main(['evaluate', {str(out)!r}, {str(clip)!r}, '--plot', 'p.png']) == 2\n"
            "print('ok')\n")
    before = snapshot(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr
    errors = proc.stderr.splitlines()
    assert len(errors) == len(cases) + 1 and all(e.startswith(PREFIX) for e in errors), errors
    for line, (_, needle) in zip(errors, cases):
        assert needle in line, line
    assert "pip install matplotlib" in errors[-1]
    assert snapshot(tmp_path) == before  # no plot, no partial file
    # And once through the real entry point: exit 2, one line, no traceback.
    assert_one_line_error(run_cli("evaluate", tmp_path / "nope.mp4", clip, cwd=tmp_path), 2)
