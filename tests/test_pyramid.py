"""Laplacian-pyramid parameterisation: exact round trip, shapes, gradient flow."""

from __future__ import annotations

import pytest
import torch

from strotss_video.stylize.pyramid import decompose, laplacian_band, recompose

TOL = {torch.float32: 1e-6, torch.float64: 1e-12}

# (batch, height, width, levels); 5x7 with 5 levels shrinks to 1 px before the last level.
SHAPES = [(1, 37, 53, 4), (2, 64, 48, 3), (1, 5, 7, 5), (1, 1, 9, 2)]


def image(b: int, h: int, w: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    """Seeded random RGB batch (b,3,h,w) in [0,1)."""
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def level_sizes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    """Expected (H,W) of each band and of the residual: halved (floor), never below 1."""
    sizes = [(h, w)]
    for _ in range(levels):
        h, w = max(h // 2, 1), max(w // 2, 1)
        sizes.append((h, w))
    return sizes


@pytest.mark.parametrize("b,h,w,levels", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_and_shapes(b: int, h: int, w: int, levels: int, dtype: torch.dtype) -> None:
    x = image(b, h, w, dtype)
    pyramid = decompose(x, levels)
    assert len(pyramid) == levels + 1
    assert [tuple(p.shape) for p in pyramid] == [(b, 3, *s) for s in level_sizes(h, w, levels)]
    assert all(p.dtype == dtype for p in pyramid)
    torch.testing.assert_close(recompose(pyramid), x, rtol=0, atol=TOL[dtype])
    # Band-pass levels carry the detail: none of them is identically zero for a random image.
    assert all(p.abs().max() > 0.01 for p in pyramid[:-1] if p.shape[-2:] != (1, 1))


def test_levels_shrink_to_one_pixel() -> None:
    pyramid = decompose(image(1, 5, 7), 5)
    assert [tuple(p.shape[-2:]) for p in pyramid] == [(5, 7), (2, 3), (1, 1), (1, 1), (1, 1), (1, 1)]
    # Once at 1x1, down/up are identities, so the remaining bands are exactly zero.
    assert all(torch.count_nonzero(p) == 0 for p in pyramid[2:-1])


def test_residual_is_the_mean_for_power_of_two_sizes() -> None:
    """Bilinear halving of even sizes averages 2x2 blocks, so the residual is a block mean."""
    x = image(1, 16, 8)
    residual = decompose(x, 3)[-1]
    torch.testing.assert_close(residual, torch.nn.functional.avg_pool2d(x, 8), rtol=0, atol=1e-12)


def test_gradients_reach_every_level() -> None:
    pyramid = [p.detach().clone().requires_grad_(True) for p in decompose(image(1, 37, 53), 5)]
    weights = image(1, 37, 53, seed=1) - 0.5
    loss = (recompose(pyramid) * weights).sum()
    loss.backward()
    for level, p in enumerate(pyramid):
        assert p.grad is not None and p.grad.abs().sum() > 0, f"level {level} gets no gradient"
    # image = band_0 + up(...): the finest band's gradient is the weight map itself.
    torch.testing.assert_close(pyramid[0].grad, weights, rtol=0, atol=0)


@pytest.mark.parametrize("b,h,w,levels", SHAPES)
def test_laplacian_band_is_first_level(b: int, h: int, w: int, levels: int) -> None:
    x = image(b, h, w)
    torch.testing.assert_close(laplacian_band(x), decompose(x, 1)[0], rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_constant_image_has_zero_band(dtype: torch.dtype) -> None:
    x = torch.full((1, 3, 37, 53), 0.3, dtype=dtype)
    assert laplacian_band(x).abs().max() <= TOL[dtype]
    pyramid = decompose(x, 4)
    assert all(p.abs().max() <= TOL[dtype] for p in pyramid[:-1])
    torch.testing.assert_close(pyramid[-1], torch.full_like(pyramid[-1], 0.3), rtol=0, atol=TOL[dtype])
