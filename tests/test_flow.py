"""Optical flow, warping, the reliability mask and .flo files: real behaviour on synthetic
scenes with known motion, plus Sintel ground truth when ../shared/data is present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from strotss_video.errors import InputError, UsageError
from strotss_video.flow import (
    estimate_pair,
    in_frame,
    make_flow,
    occlusion_mask,
    read_flo,
    reliability,
    resize_flow,
    warp,
    warp_with_validity,
    write_flo,
)
from strotss_video.flow.consistency import consistency_checks
from strotss_video.flow.dis import DISFlow
from strotss_video.flow.raft import RAFTFlow, hub_weight_paths

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SINTEL = SHARED_DATA / "flow"


# --------------------------------------------------------------------------- synthetic scenes

def periodic_textures(h: int, w: int, seed: int, shift: tuple[float, float] = (0.0, 0.0),
                      sigma: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth RGB noise (Gaussian-filtered, sigma px) and the same texture translated by
    shift = (dx, dy) px, both (1,3,h,w) in [0.1,0.9]. The shift is a Fourier phase ramp, so it is
    exact at sub-pixel amounts: second(x) = first(x - shift), i.e. flow(first->second) = +shift
    (the texture is periodic, so only the interior away from the wrap seam is meaningful)."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.standard_normal((3, h, w)))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    spectrum = spectrum * np.exp(-2 * np.pi ** 2 * sigma ** 2 * (fx ** 2 + fy ** 2))
    first = np.fft.ifft2(spectrum).real
    second = np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (fx * shift[0] + fy * shift[1]))).real
    lo, hi = first.min(), first.max()

    def to_tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.clip(0.1 + 0.8 * (a - lo) / (hi - lo), 0, 1)).float()[None]

    return to_tensor(first), to_tensor(second)


def constant_flow(h: int, w: int, u: float, v: float) -> torch.Tensor:
    return torch.tensor([u, v], dtype=torch.float32).view(1, 2, 1, 1).expand(1, 2, h, w).clone()


def interior(t: torch.Tensor, margin: int) -> torch.Tensor:
    return t[..., margin:-margin, margin:-margin]


def box(h: int, w: int, y: int, x: int, size: int) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.bool)
    m[y:y + size, x:x + size] = True
    return m


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    return F.max_pool2d(mask.float()[None, None], 2 * radius + 1, 1, radius)[0, 0] > 0


# --------------------------------------------------------------------------- warp

def test_warp_zero_flow_is_exact_identity() -> None:
    image = torch.rand(2, 3, 9, 13)
    out, valid = warp_with_validity(image, torch.zeros(2, 2, 9, 13))
    assert torch.equal(out, image)
    assert torch.equal(valid, torch.ones(2, 1, 9, 13))


def test_warp_integer_shift_is_exact_and_zero_outside() -> None:
    image = torch.rand(1, 3, 10, 12)
    out = warp(image, constant_flow(10, 12, 2.0, -1.0))  # out(y, x) = image(y - 1, x + 2)
    assert torch.equal(out[..., 1:, :-2], image[..., :-1, 2:])
    assert torch.all(out[..., 0, :] == 0) and torch.all(out[..., :, -2:] == 0)
    valid = in_frame(constant_flow(10, 12, 2.0, -1.0))[0, 0]
    expected = torch.zeros(10, 12)
    expected[1:, :-2] = 1
    assert torch.equal(valid, expected)


def test_warp_subpixel_is_bilinear_and_matches_grid_sample() -> None:
    image = torch.rand(1, 3, 8, 10)
    half = warp(image, constant_flow(8, 10, 0.5, 0.0))
    torch.testing.assert_close(half[..., :-1], 0.5 * (image[..., :-1] + image[..., 1:]))
    # Against grid_sample (align_corners=True maps pixel p to 2p/(size-1) - 1), random flow.
    flow = torch.randn(2, 2, 8, 10) * 3
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(10.0), indexing="ij")
    gx = 2 * (xs + flow[:, 0]) / 9 - 1
    gy = 2 * (ys + flow[:, 1]) / 7 - 1
    image2 = torch.rand(2, 3, 8, 10)
    ref = F.grid_sample(image2, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    torch.testing.assert_close(warp(image2, flow), ref, atol=1e-5, rtol=0)


def test_warp_is_differentiable_and_broadcasts_flow() -> None:
    image = torch.rand(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    flow = (torch.rand(1, 2, 6, 7, dtype=torch.float64) - 0.5) * 3  # non-integer a.s.
    assert torch.autograd.gradcheck(lambda im: warp(im, flow), (image,))
    out = warp(image, flow)
    assert out.shape == (2, 3, 6, 7)
    out.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    # NaN vectors (a failed flow) read as out of frame, not as a crash or NaN pixels.
    bad = flow.clone()
    bad[0, :, 0, 0] = float("nan")
    assert torch.isfinite(warp(image.detach(), bad)).all()
    assert in_frame(bad)[0, 0, 0, 0] == 0


def test_resize_flow_scales_vectors() -> None:
    flow = constant_flow(16, 24, 3.0, -2.0)
    up = resize_flow(flow, (32, 72))
    assert up.shape == (1, 2, 32, 72)
    torch.testing.assert_close(up[0, 0], torch.full((32, 72), 9.0))
    torch.testing.assert_close(up[0, 1], torch.full((32, 72), -4.0))
    assert resize_flow(flow, (16, 24)) is flow


# --------------------------------------------------------------------------- DIS / Farneback

@pytest.mark.parametrize("shift", [(2.4, -1.7), (7.3, 4.2)])
def test_dis_recovers_known_translation(shift: tuple[float, float]) -> None:
    first, second = periodic_textures(96, 128, seed=0, shift=shift)
    fwd, bwd = estimate_pair(DISFlow("medium"), first, second)
    assert fwd.shape == (1, 2, 96, 128) and fwd.dtype == torch.float32
    truth = torch.tensor(shift).view(1, 2, 1, 1)
    # Measured 0.037 / 0.044 px (forward), 0.038 / 0.042 px (backward).
    assert interior((fwd - truth).norm(dim=1), 12).mean() < 0.1
    assert interior((bwd + truth).norm(dim=1), 12).mean() < 0.1
    # Warping the second frame back with the flow reproduces the first (measured L1 0.003).
    err = interior((warp(second, fwd) - first).abs(), 12).mean()
    baseline = interior((second - first).abs(), 12).mean()
    assert err < 0.01 and err < 0.1 * baseline
    # Forward and backward agree: the checker trusts the whole interior.
    assert interior(occlusion_mask(fwd, bwd), 12).min() == 1


def test_farneback_and_make_flow() -> None:
    first, second = periodic_textures(96, 128, seed=3, shift=(2.4, -1.7))
    flow = make_flow("farneback")(first, second)
    truth = torch.tensor([2.4, -1.7]).view(1, 2, 1, 1)
    assert interior((flow - truth).norm(dim=1), 12).mean() < 0.1  # measured 0.008
    assert make_flow("dis", preset="fast").name == "dis-fast"
    with pytest.raises(UsageError, match="unknown flow method 'tvl1'; use one of dis, raft, farneback"):
        make_flow("tvl1")
    with pytest.raises(UsageError, match="unknown DIS preset"):
        make_flow("dis", preset="slow")
    with pytest.raises(ValueError):
        DISFlow()(first, second[..., :-1])


# --------------------------------------------------------------------------- reliability

def occluder_flows(h: int, w: int, y: int, x: int, size: int, dx: int, dy: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ground truth for a square moving by (dx, dy) over a static background from frame i-1
    (square at A) to frame i (square at B): b = flow(i->i-1), f = flow(i-1->i), A, B."""
    a = box(h, w, y, x, size)
    b_box = box(h, w, y + dy, x + dx, size)
    backward = torch.zeros(1, 2, h, w)
    backward[0, 0][b_box], backward[0, 1][b_box] = -dx, -dy
    forward = torch.zeros(1, 2, h, w)
    forward[0, 0][a], forward[0, 1][a] = dx, dy
    return backward, forward, a, b_box


def test_reliability_ground_truth_occluder() -> None:
    h, w = 48, 64
    backward, forward, a, b = occluder_flows(h, w, 12, 16, 16, dx=6, dy=4)
    mask = reliability(backward, forward)[0, 0]
    assert mask.shape == (h, w) and set(mask.unique().tolist()) <= {0.0, 1.0}
    disoccluded = a & ~b  # background revealed where the square was
    assert disoccluded.sum() > 50 and torch.all(mask[disoccluded] == 0)
    far = ~dilate(a | b, 2)
    assert torch.all(mask[far] == 1)
    core = b & ~dilate(~b, 2)  # the moving square itself, away from its edges, is trusted
    assert torch.all(mask[core] == 1)
    checks = consistency_checks(backward, forward)
    edge = b & dilate(~b, 1)
    assert checks["motion_boundary"][0, 0][edge].all()  # the flow's jump at the square's edge
    assert not checks["occluded"][0, 0][core].any()
    # Occlusion-only mask: the disocclusion is still caught, the motion boundary is not.
    occ_only = occlusion_mask(backward, forward, motion_boundaries=False, out_of_frame=False)[0, 0]
    assert torch.all(occ_only[disoccluded] == 0) and torch.all(occ_only[edge & ~disoccluded] == 1)
    # Checks computed once and handed in give the same masks.
    assert torch.equal(reliability(backward, forward, "gaussian", checks=checks),
                       reliability(backward, forward, "gaussian"))
    assert torch.equal(occlusion_mask(backward, forward, motion_boundaries=False,
                                      out_of_frame=False, checks=checks)[0, 0], occ_only)


def test_reliability_out_of_frame_and_smoothing() -> None:
    h, w = 20, 30
    # A pan: frame i's pixel x came from x + 3 in frame i-1; the last 3 columns came from outside.
    backward, forward = constant_flow(h, w, 3.0, 0.0), constant_flow(h, w, -3.0, 0.0)
    mask = reliability(backward, forward)[0, 0]
    assert torch.all(mask[:, : w - 3] == 1) and torch.all(mask[:, w - 3:] == 0)
    assert torch.equal(reliability(backward, forward, "none"), reliability(backward, forward))
    eroded = reliability(backward, forward, "erode")[0, 0]
    assert torch.all(eroded[:, : w - 6] == 1) and torch.all(eroded[:, w - 6:] == 0)
    smooth = reliability(backward, forward, "gaussian")[0, 0]
    assert smooth.min() >= 0 and smooth.max() <= 1
    torch.testing.assert_close(smooth[:, : w - 6], torch.ones(h, w - 6))
    assert 0 < smooth[0, w - 4] < 1 and 0 < smooth[0, w - 3] < 1
    with pytest.raises(UsageError, match="unknown mask smoothing"):
        reliability(backward, forward, "box")


def test_consistency_thresholds() -> None:
    # |b + f~|² >= 0.01(|b|² + |f~|²) + 0.5: 0.81 < 0.918 passes, 1.21 >= 0.902 fails
    # (columns 0-4 look outside the frame, where f~ reads as 0).
    b = constant_flow(8, 12, -5.0, 0.0)
    ok = occlusion_mask(b, constant_flow(8, 12, 5.0 - 0.9, 0.0), out_of_frame=False)
    bad = occlusion_mask(b, constant_flow(8, 12, 5.0 - 1.1, 0.0), out_of_frame=False)
    assert torch.all(ok[..., 5:] == 1) and torch.all(bad == 0)
    # Motion boundary: a gentle ramp (|∇b|² = 0.0009 < 0.002) passes, a 1 px step fails.
    xs = torch.arange(16.0).view(1, 16).expand(16, 16)
    ramp = torch.stack([0.03 * xs, torch.zeros(16, 16)])[None]
    assert not consistency_checks(ramp, -ramp)["motion_boundary"].any()
    step = torch.zeros(1, 2, 16, 16)
    step[0, 0, :, 8:] = 1.0
    boundary = consistency_checks(step, -step)["motion_boundary"][0, 0]
    assert boundary[:, 7:9].all() and not boundary[:, :6].any() and not boundary[:, 11:].any()


def test_reliability_with_dis_flows_on_moving_square() -> None:
    h, w, y, x, size, dx, dy = 96, 128, 32, 40, 32, 6, 4
    background, _ = periodic_textures(h, w, seed=1)
    square, _ = periodic_textures(h, w, seed=2)
    prev, cur = background.clone(), background.clone()
    prev[..., y:y + size, x:x + size] = square[..., y:y + size, x:x + size]
    cur[..., y + dy:y + dy + size, x + dx:x + dx + size] = square[..., y:y + size, x:x + size]
    dis = DISFlow("medium")
    mask = reliability(dis(cur, prev), dis(prev, cur))[0, 0]
    a, b = box(h, w, y, x, size), box(h, w, y + dy, x + dx, size)
    disoccluded = a & ~b
    far = ~dilate(a | b, 8)
    far[:4], far[-4:], far[:, :4], far[:, -4:] = False, False, False, False
    # Measured: 100 % of the disoccluded pixels are 0 (85-100 % over other texture seeds),
    # 100 % of the far background is 1 (>= 99.7 % over seeds).
    assert (mask[disoccluded] == 0).float().mean() > 0.8
    assert mask[far].mean() > 0.98


# --------------------------------------------------------------------------- RAFT

class EchoNet(nn.Module):
    """Stands in for RAFT: records its inputs and returns the first image's R, G as 'flow'."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.Size, float, float, int]] = []

    def forward(self, img1: torch.Tensor, img2: torch.Tensor, num_flow_updates: int = 12) -> list[torch.Tensor]:
        self.seen.append((img1.shape, float(img1.min()), float(img1.max()), num_flow_updates))
        return [torch.zeros_like(img1[:, :2]), img1[:, :2].clone()]


def test_raft_pads_scales_and_crops() -> None:
    net = EchoNet()
    raft = RAFTFlow("small", network=net, num_flow_updates=3)
    first = torch.rand(1, 3, 30, 45)
    flow = raft(first, torch.rand(1, 3, 30, 45))
    shape, lo, hi, updates = net.seen[0]
    assert shape == (1, 3, 32, 48) and updates == 3  # padded to multiples of 8
    assert -1 <= lo < -0.9 and 0.9 < hi <= 1  # scaled to [-1, 1]
    torch.testing.assert_close(flow, first[:, :2] * 2 - 1)  # cropped back from the top-left


def test_raft_random_network_shapes() -> None:
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    raft = RAFTFlow("small", network=raft_small(weights=None), num_flow_updates=2)
    flow = raft(torch.rand(1, 3, 124, 130), torch.rand(1, 3, 124, 130))
    assert flow.shape == (1, 2, 124, 130) and flow.dtype == torch.float32
    assert torch.isfinite(flow).all()


def test_raft_weights_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models.optical_flow import raft_small

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(UsageError) as info:
        RAFTFlow("large")
    message = str(info.value)
    assert "\n" not in message and message.startswith(
        f"RAFT weights not found at {tmp_path / 'hub' / 'checkpoints' / 'raft_large_C_T_SKHT_V2-ff5fadd5.pth'};")
    assert message.endswith("(torchvision.models.optical_flow.Raft_Large_Weights) or use --flow dis")
    with pytest.raises(UsageError, match="RAFT weights not found at .*nope.pth"):
        make_flow("raft", raft_weights=tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="is not a torchvision raft_small state dict"):
        RAFTFlow("small", garbage)
    # A real state dict in the hub cache location is found and loaded with weights_only=True.
    cached = hub_weight_paths("small")[0]
    cached.parent.mkdir(parents=True)
    torch.save(raft_small(weights=None).state_dict(), cached)
    assert RAFTFlow("small", num_flow_updates=1).weights_path == cached


def _real_raft_weights() -> bool:
    return any(p.is_file() for p in hub_weight_paths("large"))


@pytest.mark.weights
@pytest.mark.skipif(not _real_raft_weights(), reason="RAFT large weights not in the torch hub cache")
def test_raft_real_weights_translation() -> None:
    first, second = periodic_textures(96, 128, seed=0, shift=(2.4, -1.7))
    flow = make_flow("raft")(first, second)
    truth = torch.tensor([2.4, -1.7]).view(1, 2, 1, 1)
    assert interior((flow - truth).norm(dim=1), 12).mean() < 0.3


# --------------------------------------------------------------------------- .flo files

def test_flo_round_trip_and_errors(tmp_path: Path) -> None:
    flow = np.random.default_rng(0).normal(size=(5, 7, 2)).astype(np.float32)
    path = tmp_path / "f.flo"
    write_flo(path, flow)
    assert path.stat().st_size == 12 + 5 * 7 * 8
    back = read_flo(path)
    assert back.dtype == np.float32 and back.shape == (5, 7, 2) and np.array_equal(back, flow)
    bad = tmp_path / "bad.flo"
    bad.write_bytes(b"FLOW" + path.read_bytes()[4:])
    with pytest.raises(InputError, match="not a Middlebury .flo file"):
        read_flo(bad)
    bad.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_flo(bad)
    with pytest.raises(UsageError, match="cannot read flow file"):
        read_flo(tmp_path / "missing.flo")


# --------------------------------------------------------------------------- Sintel (devdata)

# Thresholds are 1.5x the measured values (docs/flow.md): EPE of DIS medium flow 2->3, and the
# precision/recall of our checker's unreliable pixels (DIS medium flows both ways) vs gt
# occlusions are at least 2/3 of the measured ones. Chance precision = the occluded fraction
# (alley 2.2 %, cave 7.7 %).
SINTEL_LIMITS = {
    "sintel_alley_1": {"epe": 0.50, "precision": 0.08, "recall": 0.17},
    "sintel_cave_2": {"epe": 2.90, "precision": 0.27, "recall": 0.40},
}


@pytest.mark.devdata
@pytest.mark.skipif(not SINTEL.is_dir(), reason="../shared/data/flow (Sintel) not present")
@pytest.mark.parametrize("scene", sorted(SINTEL_LIMITS))
@pytest.mark.parametrize("render", ["clean", "final"])
def test_sintel_flow_and_occlusions(scene: str, render: str) -> None:
    from strotss_video.io import read_image

    root = SINTEL / scene
    gt = torch.from_numpy(read_flo(root / "gt" / "frame_0002.flo")).permute(2, 0, 1)[None]
    assert gt.shape == (1, 2, 436, 1024)
    valid = read_image(root / "gt" / "invalid" / "frame_0002.png")[0, 0] < 0.5
    gt_occ = read_image(root / "gt" / "occlusions" / "frame_0002.png")[0, 0] > 0.5
    f2 = read_image(root / render / "frame_0002.png")
    f3 = read_image(root / render / "frame_0003.png")
    limits = SINTEL_LIMITS[scene]

    fwd, bwd = estimate_pair(DISFlow("medium"), f2, f3)
    assert (fwd - gt).norm(dim=1)[0][valid].mean() < limits["epe"]

    # The ground-truth flow fixes our warp convention: frame 3 warped by flow 2->3 is frame 2.
    noc = valid & ~gt_occ
    warped_err = (warp(f3, gt) - f2).abs().mean(1)[0][noc].mean()
    unwarped_err = (f3 - f2).abs().mean(1)[0][noc].mean()
    assert warped_err < 0.35 * unwarped_err

    predicted = (occlusion_mask(fwd, bwd) < 0.5)[0, 0][valid]
    truth = gt_occ[valid]
    hits = (predicted & truth).sum().float()
    assert hits / predicted.sum() > limits["precision"]
    assert hits / truth.sum() > limits["recall"]
