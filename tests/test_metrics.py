"""Warping error (Lai et al.): hand checks against brute force, behaviour on generated clips with
known motion, the one-pass multi-output helper and its frame-by-frame meter (the command built
on these, `evaluate`, is tested in test_evaluate)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from media import make_clip

from strotss_video.flow import make_flow
from strotss_video.metrics import (
    WarpingError,
    WarpingMeter,
    mask_name,
    video_frames,
    warping_error,
    warping_errors,
)

ROOT = Path(__file__).resolve().parents[1]
FULL_MASK = "occluded+out_of_frame+motion_boundary"


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def flicker(frames: list[torch.Tensor], amplitude: float = 0.1, seed: int = 0) -> list[torch.Tensor]:
    """Add one random brightness offset in [-amplitude, amplitude] per frame."""
    g = torch.Generator().manual_seed(seed)
    return [(f + (torch.rand(1, generator=g).item() * 2 - 1) * amplitude).clamp(0, 1) for f in frames]


class ScriptedFlow:
    """Returns given flows in turn: forward (t->t+1), backward (t+1->t), ... and records calls."""

    name = "scripted"

    def __init__(self, *flows: torch.Tensor) -> None:
        self.flows = list(flows)
        self.calls = 0

    def __call__(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        out = self.flows[self.calls % len(self.flows)]
        self.calls += 1
        return out.clone()


class CountingFlow:
    """Wraps a real estimator and counts the flow fields it computes."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = f"counting-{inner.name}"  # type: ignore[attr-defined]
        self.calls = 0

    def __call__(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(first, second)  # type: ignore[operator]


def constant_flow(h: int, w: int, u: float, v: float) -> torch.Tensor:
    f = torch.zeros(1, 2, h, w)
    f[:, 0], f[:, 1] = u, v
    return f


# --------------------------------------------------------------------------- hand checks


def test_zero_flow_equals_brute_force_mse_with_channels_in_denominator() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 3, 20, 24))
    zero = torch.zeros(1, 2, 20, 24)
    res = warping_error([torch.tensor(a)[None], torch.tensor(b)[None]], flow=ScriptedFlow(zero))
    # Zero flow: W(V_1) = V_1, and every pixel passes the checker (mask all ones).
    brute = sum((a[c, y, x] - b[c, y, x]) ** 2 for c in range(3) for y in range(20)
                for x in range(24)) / (3 * 20 * 24)
    assert res.per_frame == [pytest.approx(brute, rel=1e-6)]
    assert res.mean == pytest.approx(brute, rel=1e-6)
    assert res.coverage == [1.0] and res.pairs == 1 and res.frames == 2
    assert res.mask == FULL_MASK and res.empty_pairs == 0


def test_occluded_block_is_left_out_of_numerator_and_denominator() -> None:
    """Forward flow 0, backward flow 5 px inside a block: |b + f~|² = 25 >= 0.01·25 + 0.5, so
    exactly the block is occluded (no motion boundary in b = 0, nothing out of frame)."""
    rng = np.random.default_rng(1)
    h, w = 24, 30
    a, b = rng.random((2, 3, h, w))
    forward = torch.zeros(1, 2, h, w)
    backward = torch.zeros(1, 2, h, w)
    backward[:, 0, 8:16, 10:20] = 5.0
    res = warping_error([torch.tensor(a)[None], torch.tensor(b)[None]],
                        flow=ScriptedFlow(forward, backward))
    keep = np.ones((h, w), bool)
    keep[8:16, 10:20] = False
    num = sum(((a[:, y, x] - b[:, y, x]) ** 2).sum() for y in range(h) for x in range(w) if keep[y, x])
    assert res.per_frame[0] == pytest.approx(num / (3 * keep.sum()), rel=1e-6)
    assert res.coverage[0] == pytest.approx(keep.mean())


def test_integer_shift_warps_frame_t_plus_1_and_drops_out_of_frame_pixels() -> None:
    """Flow t->t+1 = (+2, 0): W(V_1)(y, x) = V_1(y, x + 2); the last two columns sample outside
    the frame and are excluded (out-of-frame test), the rest compared pixel by pixel."""
    rng = np.random.default_rng(2)
    h, w = 16, 20
    a, b = rng.random((2, 3, h, w))
    fw, bw = constant_flow(h, w, 2.0, 0.0), constant_flow(h, w, -2.0, 0.0)
    res = warping_error([torch.tensor(a)[None], torch.tensor(b)[None]], flow=ScriptedFlow(fw, bw))
    num, count = 0.0, 0
    for y in range(h):
        for x in range(w - 2):
            num += ((a[:, y, x] - b[:, y, x + 2]) ** 2).sum()
            count += 1
    assert res.per_frame[0] == pytest.approx(num / (3 * count), rel=1e-6)
    assert res.coverage[0] == pytest.approx((w - 2) / w)


def test_motion_boundary_option_and_empty_mask() -> None:
    h, w = 16, 16
    fw = torch.zeros(1, 2, h, w)
    fw[:, 0, :, 8:] = 1.0  # a step in u: central differences flag columns 7 and 8
    bw = -fw
    frames = [torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    full = warping_error(frames, flow=ScriptedFlow(fw, bw))
    occ = warping_error(frames, flow=ScriptedFlow(fw, bw), motion_boundaries=False)
    assert occ.mask == mask_name(False) == "occluded+out_of_frame"
    assert full.coverage[0] < occ.coverage[0]
    # Every pixel occluded (forward and backward agree on nothing) -> NaN, left out of the mean.
    far = constant_flow(h, w, 0.0, 0.0)
    away = constant_flow(h, w, 3.0, 0.0)
    res = warping_error(frames + [frames[0]], flow=ScriptedFlow(far, far, far, away))
    assert math.isnan(res.per_frame[1]) and res.empty_pairs == 1
    assert res.mean == pytest.approx(res.per_frame[0])
    assert res.to_dict()["per_frame"][1] is None


def test_bad_inputs() -> None:
    f = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="at least 2 frames"):
        warping_error([f])
    with pytest.raises(ValueError, match="differ in length"):
        warping_error([f, f, f], [f, f])
    with pytest.raises(ValueError, match="differs in size"):
        warping_error([f, f], [torch.rand(1, 3, 8, 10)] * 2)
    with pytest.raises(ValueError, match="reserved"):
        warping_errors([f, f], {"input": [f, f]})
    with pytest.raises(ValueError, match=r"\(1,3,H,W\)"):
        warping_error([torch.rand(1, 1, 8, 8)] * 2)
    meter = WarpingMeter("dis")
    meter.add({"input": f, "out": f})
    with pytest.raises(ValueError, match="at least 2 frames, got 1"):
        meter.results()
    with pytest.raises(ValueError, match="rows changed"):
        meter.add({"input": f})


# --------------------------------------------------------------------------- real clips


def test_static_clip_has_no_warping_error(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "static.mp4", frames=6, size=(64, 48), pattern="static", audio=False)
    same = [as_tensor(clip.images[0])] * 4  # identical frames
    assert warping_error(same, flow="dis").per_frame == [0.0] * 3  # DIS: exactly zero flow
    # Farneback returns up to ~0.1-0.5 px of flow on identical frames (its own bias), so its
    # floor is not exactly 0: measured 0.8e-6 here (up to 6e-6 on smoother content).
    assert warping_error(same, flow="farneback").mean < 2e-5
    res = warping_error(video_frames(clip.path))  # decoded: + codec noise, measured 2.4e-6
    assert res.frames == 6 and res.mean < 2e-5


def test_translating_clip_small_error_flicker_much_larger(tmp_path: Path) -> None:
    # 4:4:4 so chroma subsampling does not add its own (shift-phase dependent) error: with
    # yuv420p and an odd shift the decoded input's floor is ~1e-3 even with the true flow.
    clip = make_clip(tmp_path / "pan.mp4", frames=8, size=(96, 64), shift=(2, 1),
                     pix_fmt="yuv444p", audio=False)
    frames = list(video_frames(clip.path))
    res = warping_errors(frames, {"flicker": flicker(frames)}, flow="farneback")
    # measured over seeds 0-2: input mean 1.1-1.9e-5 (max pair 3.9e-5), flicker ~4.9e-3
    assert res["input"].mean < 1e-4
    assert max(res["input"].per_frame) < 1e-4
    assert res["flicker"].mean > 20 * res["input"].mean
    assert min(res["input"].coverage) > 0.85  # only the entering strip and edges are masked


def test_warping_errors_computes_flow_once_and_matches_separate_calls() -> None:
    rng = np.random.default_rng(3)
    base = rng.random((3, 48 + 8, 64 + 16)).astype(np.float32)
    frames = [torch.from_numpy(base[:, 4:52, 2 * t:2 * t + 64].copy())[None] for t in range(5)]
    outputs = {f"out{k}": flicker(frames, 0.05 * k, seed=k) for k in range(4)}
    counting = CountingFlow(make_flow("farneback"))
    together = warping_errors(frames, outputs, flow=counting)
    assert counting.calls == 2 * (len(frames) - 1)  # forward + backward per pair, any #outputs
    assert list(together) == ["input", *outputs]
    assert all(isinstance(r, WarpingError) and r.pairs == 4 for r in together.values())
    for name, out in outputs.items():
        alone = warping_error(out, frames, flow=make_flow("farneback"))
        assert alone.per_frame == pytest.approx(together[name].per_frame, rel=1e-6, abs=1e-12)
        assert alone.coverage == together[name].coverage
    assert warping_error(frames, flow="farneback").per_frame == pytest.approx(
        together["input"].per_frame, rel=1e-6, abs=1e-12)
    # out0 has no flicker: it is the input
    assert together["out0"].per_frame == together["input"].per_frame


# --------------------------------------------------------------------------- scripts
