"""The CUDA path: branch-free losses, graph replay vs eager steps, the video chain on a GPU.

Skipped without a CUDA device (CI has none); run by benchmarks/gpu/check.sh on a GPU machine."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import pytest
import torch
from conftest import TinyExtractor, pattern_image
from media import make_clip

from strotss_video.config import StrotssConfig
from strotss_video.losses import remd_cosine, remd_palette
from strotss_video.losses.ops import unit_rows
from strotss_video.pipeline.video import stylize_video
from strotss_video.stylize.optimize import EarlyStop, StyleBank, final_scale_plan, stylize
from strotss_video.temporal.coherence import TemporalTerm

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")
SMALL = StrotssConfig(max_size=64, scales=2, iters=12, output_points=128, style_points=256)


def _images(device: torch.device, dtype: torch.dtype = torch.float32
            ) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 48, 64, generator=g)
    style = torch.rand(1, 3, 64, 64, generator=g)
    return content.to(device, dtype), style.to(device, dtype)


# Runs that should agree are compared in float64. In float32, rounding differences (the order
# of the reads' atomic adds, CPU vs GPU kernels) flip near-tied nearest-neighbour choices of the
# REMD terms and grow through the steps: on a CPU, swapping only the read method (gather vs
# grid_sample, same arithmetic) moves this 24-step result by 3.2e-3 mean in float32 and by
# 4e-11 in float64. In float64 a real difference (a stale graph input, a missed update) stands
# out by orders of magnitude. (Eager CUDA steps read with grid_sample, replayed ones with
# row gathers: the same arithmetic, which float64 also makes comparable.)
EXACT = torch.float64


@pytest.fixture(autouse=True)
def _exact_products() -> None:
    # TF32 would make CPU and GPU products differ by ~1e-3 relative.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


@pytest.mark.parametrize("m", [40, 400])
def test_branch_free_losses_on_cuda_match_cpu(m: int) -> None:
    g = torch.Generator().manual_seed(m)
    a = torch.randn(100, 7, generator=g, dtype=torch.float64)
    b = unit_rows(torch.randn(m, 7, generator=g, dtype=torch.float64))
    rgb_b = torch.rand(m, 3, generator=g, dtype=torch.float64)
    results = []
    for device in ("cpu", "cuda"):
        x = a.to(device).clone().requires_grad_(True)
        loss = remd_cosine(unit_rows(x), b.to(device)) + remd_palette(x[:, :3], rgb_b.to(device))
        loss.backward()
        results.append((loss.detach().cpu(), x.grad.cpu()))
    assert torch.allclose(results[0][0], results[1][0], rtol=1e-9, atol=1e-12)
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-7, atol=1e-10)


def test_graph_replay_gives_the_eager_result() -> None:
    extractor = TinyExtractor().to(CUDA, EXACT)
    content, style = _images(CUDA, EXACT)
    runs = {}
    for mode in ("off", "on"):
        bank = StyleBank(extractor, style, SMALL, seed=3)
        runs[mode] = stylize(content, bank, extractor, SMALL, seed=3, progress=False, graphs=mode)
    assert [s.graphed for s in runs["on"].scales] == [True, True]
    assert not any(s.graphed for s in runs["off"].scales)
    assert runs["on"].iterations == runs["off"].iterations == 24
    assert (runs["on"].image - runs["off"].image).abs().mean() < 1e-6
    for a, b in zip(runs["on"].scales, runs["off"].scales):
        assert a.losses["total"] == pytest.approx(b.losses["total"], rel=1e-6)


def test_graph_replay_with_temporal_term_and_early_stop() -> None:
    extractor = TinyExtractor().to(CUDA, EXACT)
    content, style = _images(CUDA, EXACT)
    init = content.flip(-1)
    term = TemporalTerm(warped=(init,), masks=(torch.ones_like(content[:, :1]),), weight=50.0)
    plan = final_scale_plan(SMALL, 30)
    runs = {}
    for mode in ("off", "on"):
        bank = StyleBank(extractor, style, SMALL, seed=1)
        runs[mode] = stylize(content, bank, extractor, SMALL, plan=plan, init=init, seed=1,
                             progress=False, pixel_loss=term, early_stop=EarlyStop(1e-12, 5),
                             graphs=mode)
    on, off = runs["on"].scales[0], runs["off"].scales[0]
    assert on.graphed and on.iterations == off.iterations == 30  # history read every window
    assert "temporal" in on.losses
    assert on.losses["temporal"] == pytest.approx(off.losses["temporal"], rel=1e-3, abs=1e-6)
    assert (runs["on"].image - runs["off"].image).abs().mean() < 1e-3


def test_cuda_and_cpu_runs_agree() -> None:
    results = []
    for device in (torch.device("cpu"), CUDA):
        extractor = TinyExtractor().to(device, EXACT)
        content, style = _images(device, EXACT)
        bank = StyleBank(extractor, style, SMALL, seed=2)
        results.append(stylize(content, bank, extractor, SMALL, seed=2, progress=False,
                               graphs="on"))
    cpu, gpu = results
    assert gpu.scales[-1].graphed
    assert (cpu.image - gpu.image.cpu()).abs().mean() < 1e-6
    assert gpu.scales[-1].losses["total"] == pytest.approx(cpu.scales[-1].losses["total"], rel=1e-6)


@pytest.mark.weights
def test_video_on_cuda_with_graphs(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "in.mp4", frames=6, size=(96, 64)).path
    style = tmp_path / "style.png"
    cv2.imwrite(str(style), pattern_image(64, 64, seed=9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed capture warns
        result = stylize_video(clip, style, tmp_path / "out.mp4", preset="test", device="cuda",
                               progress=False)
    assert [f.kind for f in result.frames] == ["cold"] + ["warm"] * 5
    assert result.output is not None and result.output.stat().st_size > 0
    # Graphs are the default; each frame records GPU memory (allocated now, peak so far).
    peaks = [f.gpu_mib[1] for f in result.frames if f.gpu_mib is not None]
    assert len(peaks) == 6 and peaks == sorted(peaks)
    assert all(0 < f.gpu_mib[0] <= f.gpu_mib[1] for f in result.frames if f.gpu_mib)
