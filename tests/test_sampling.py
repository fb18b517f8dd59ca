"""Point sampling, hypercolumn reads and region guidance."""

from __future__ import annotations

import math

import pytest
import torch

from strotss_video.errors import InputError
from strotss_video.features.sampling import (
    TapReader,
    candidate_grid,
    grid_stride,
    random_pixels,
    read_bilinear,
    read_bilinear_columns,
    read_nearest,
    subset,
)
from strotss_video.stylize.guidance import build_guidance

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    """A seeded CPU generator."""
    return torch.Generator().manual_seed(seed)


def coordinate_map(h: int, w: int) -> torch.Tensor:
    """(1,2,H,W) stride-1 map whose channel 0 is the pixel's x and channel 1 its y."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=F64), torch.arange(w, dtype=F64), indexing="ij")
    return torch.stack([xs, ys])[None]


def disc_mask(h: int, w: int) -> torch.Tensor:
    """(H,W) bool: an off-centre ellipse, asymmetric so a transposed lookup would disagree."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((xs - 0.3 * w) / (0.35 * w)) ** 2 + ((ys - 0.6 * h) / (0.3 * h)) ** 2 < 1.0


def point_set(points: torch.Tensor) -> set[tuple[int, int]]:
    """(N,2) points as a set of (x, y) tuples."""
    return {(int(x), int(y)) for x, y in points}


# ---------------------------------------------------------------------------------------------
# Candidate grid
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("h,w,side,stride", [(48, 64, 128, 1), (384, 512, 128, 3),
                                             (768, 1024, 128, 6), (30, 40, 8, 4), (9, 9, 3, 3)])
def test_grid_stride(h: int, w: int, side: int, stride: int) -> None:
    assert grid_stride(h, w, side) == stride
    assert grid_stride(w, h, side) == stride


# (height, width, grid_side): strides 1, 3 and 4, landscape and portrait.
GRIDS = [(48, 64, 128), (384, 512, 128), (30, 40, 8), (41, 23, 8)]


@pytest.mark.parametrize("h,w,side", GRIDS)
def test_candidate_grid_bounds_stride_and_pairing(h: int, w: int, side: int) -> None:
    stride = grid_stride(h, w, side)
    points = candidate_grid(h, w, side, gen(3))
    assert points.dtype == torch.long and points.shape[1] == 2
    xs, ys = points[:, 0], points[:, 1]
    assert xs.min() >= 0 and xs.max() < w and ys.min() >= 0 and ys.max() < h
    ox, oy = int(xs.min()), int(ys.min())
    assert ox < stride and oy < stride
    assert torch.equal(xs.unique(), torch.arange(ox, w, stride))
    assert torch.equal(ys.unique(), torch.arange(oy, h, stride))
    assert points.shape[0] == math.ceil((w - ox) / stride) * math.ceil((h - oy) / stride)
    assert len(point_set(points)) == points.shape[0]
    # A map holding its own coordinates reads back exactly the points: x and y stay paired.
    coords = coordinate_map(h, w)
    torch.testing.assert_close(read_nearest([coords], [1], points), points.to(F64), rtol=0, atol=0)
    torch.testing.assert_close(read_bilinear([coords], [1], points), points.to(F64), rtol=0,
                               atol=1e-12)


@pytest.mark.parametrize("h,w,side", GRIDS)
def test_candidate_grid_with_mask_is_the_grid_inside_the_mask(h: int, w: int, side: int) -> None:
    mask = disc_mask(h, w)
    full = candidate_grid(h, w, side, gen(5))
    masked = candidate_grid(h, w, side, gen(5), mask)
    assert masked.shape[0] > 0 and bool(mask[masked[:, 1], masked[:, 0]].all())
    expected = {(x, y) for x, y in point_set(full) if mask[y, x]}
    assert point_set(masked) == expected and masked.shape[0] == len(expected)
    coords = coordinate_map(h, w)
    torch.testing.assert_close(read_nearest([coords], [1], masked), masked.to(F64), rtol=0, atol=0)


def test_candidate_grid_offset_is_random_and_seeded() -> None:
    offsets = {tuple(candidate_grid(384, 512, 128, gen(s)).min(dim=0).values.tolist())
               for s in range(20)}
    assert len(offsets) > 1 and all(0 <= o < 3 for off in offsets for o in off)
    assert torch.equal(candidate_grid(384, 512, 128, gen(7)), candidate_grid(384, 512, 128, gen(7)))


# ---------------------------------------------------------------------------------------------
# subset, random_pixels
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count,size", [(10, 4), (5, 8), (100, 100), (1, 1), (2000, 1024)])
def test_subset(count: int, size: int) -> None:
    idx = subset(count, size, gen(1))
    assert idx.shape == (min(size, count),)
    assert idx.unique().numel() == idx.numel()
    assert idx.min() >= 0 and idx.max() < count
    assert torch.equal(idx, subset(count, size, gen(1)))
    if count > size:
        assert not torch.equal(idx, subset(count, size, gen(2)))


def test_random_pixels_without_mask_covers_the_image() -> None:
    h, w = 4, 5
    points = random_pixels(h, w, 2000, gen(0))
    assert points.shape == (2000, 2) and points.dtype == torch.long
    assert point_set(points) == {(x, y) for x in range(w) for y in range(h)}
    assert torch.equal(points, random_pixels(h, w, 2000, gen(0)))


def test_random_pixels_with_mask_stays_inside() -> None:
    h, w = 12, 9
    mask = disc_mask(h, w)
    points = random_pixels(h, w, 3000, gen(1), mask)
    assert points.shape == (3000, 2)
    assert bool(mask[points[:, 1], points[:, 0]].all())
    inside = {(x, y) for y in range(h) for x in range(w) if mask[y, x]}
    assert point_set(points) == inside
    with pytest.raises(ValueError):
        random_pixels(h, w, 10, gen(1), torch.zeros(h, w, dtype=torch.bool))


# ---------------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------------

H, W = 9, 11
STRIDES = (1, 2, 4, 8)  # map sizes 9x11, 4x5, 2x2, 1x1 (a 1-px map takes the degenerate path)


def feature_maps(dtype: torch.dtype = F64, seed: int = 0) -> list[torch.Tensor]:
    """Random maps (1,C,H/s,W/s) with floor sizes, as pooling produces them."""
    g = gen(seed)
    return [torch.randn(1, 2 + k, H // s, W // s, generator=g, dtype=dtype)
            for k, s in enumerate(STRIDES)]


def sample_points() -> torch.Tensor:
    """Random points plus every corner and points on the last row and column."""
    g = gen(11)
    rand = torch.stack([torch.randint(W, (20,), generator=g), torch.randint(H, (20,), generator=g)], 1)
    edges = torch.tensor([[0, 0], [W - 1, 0], [0, H - 1], [W - 1, H - 1], [W - 1, 4], [5, H - 1],
                          [W - 2, H - 2], [7, 3]])
    return torch.cat([rand, edges])


def brute_bilinear(fmap: torch.Tensor, stride: int, points: torch.Tensor) -> torch.Tensor:
    """Read (1,C,h,w) at (x/s, y/s) point by point: floor, fraction, indices clamped to the map."""
    h, w = fmap.shape[-2:]
    rows = []
    for x, y in points.tolist():
        fx, fy = x / stride, y / stride
        x0, y0 = math.floor(fx), math.floor(fy)
        tx, ty = fx - x0, fy - y0
        xa, xb = min(max(x0, 0), w - 1), min(max(x0 + 1, 0), w - 1)
        ya, yb = min(max(y0, 0), h - 1), min(max(y0 + 1, 0), h - 1)
        m = fmap[0]
        rows.append((1 - tx) * (1 - ty) * m[:, ya, xa] + tx * (1 - ty) * m[:, ya, xb]
                    + (1 - tx) * ty * m[:, yb, xa] + tx * ty * m[:, yb, xb])
    return torch.stack(rows)


def brute_nearest(fmap: torch.Tensor, stride: int, points: torch.Tensor) -> torch.Tensor:
    """Read (1,C,h,w) at (floor(x/s), floor(y/s)) clamped to the map, point by point."""
    h, w = fmap.shape[-2:]
    return torch.stack([fmap[0, :, min(y // stride, h - 1), min(x // stride, w - 1)]
                        for x, y in points.tolist()])


def test_sample_points_reach_past_the_coarse_maps() -> None:
    """The border clamp is really exercised: some reads fall beyond the last coarse pixel."""
    pts = sample_points().to(F64)
    for fmap, s in zip(feature_maps()[1:], STRIDES[1:]):
        h, w = fmap.shape[-2:]
        assert bool((pts[:, 0] / s > w - 1).any()) and bool((pts[:, 1] / s > h - 1).any())


@pytest.mark.parametrize("method", ["gather", "grid_sample"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_read_bilinear_matches_brute_force(dtype: torch.dtype, tol: float,
                                           layout: torch.memory_format, method: str) -> None:
    maps = [m.contiguous(memory_format=layout).requires_grad_(True) for m in feature_maps(dtype)]
    ref_maps = [m.detach().double().requires_grad_(True) for m in maps]
    points = sample_points()
    got = torch.cat(read_bilinear_columns(maps, STRIDES, points, method), dim=1)
    want = torch.cat([brute_bilinear(m, s, points) for m, s in zip(ref_maps, STRIDES)], dim=1)
    assert got.shape == (points.shape[0], sum(m.shape[1] for m in maps)) and got.dtype == dtype
    torch.testing.assert_close(got.double(), want.detach(), rtol=tol, atol=tol)
    weights = torch.randn(got.shape, generator=gen(4), dtype=F64)
    (got * weights.to(dtype)).sum().backward()
    (want * weights).sum().backward()
    for m, r in zip(maps, ref_maps):
        assert m.grad.abs().sum() > 0
        torch.testing.assert_close(m.grad.double(), r.grad, rtol=tol, atol=tol)
        # The gradient comes in the map's own layout (no copy by autograd).
        assert m.grad.is_contiguous(memory_format=layout)


def _tapped_chain(image: torch.Tensor, weights: list[torch.Tensor], points: torch.Tensor | None
                  ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A small conv/relu/max-pool chain run on a channels-last image: (maps, columns) where
    ``points`` is None (maps returned, nothing read), else ([], tapped columns)."""
    reader = TapReader(points) if points is not None else None
    maps: list[torch.Tensor] = []
    columns: list[torch.Tensor] = []
    x = image
    for k, w in enumerate(weights):
        x = torch.relu(torch.nn.functional.conv2d(x, w, padding=1))
        if reader is not None:
            x, rows = reader.read(x, 2 ** (k // 2))
            columns.append(rows)
        else:
            maps.append(x)
        if k % 2 == 1:  # a max-pool after every second layer, as in VGG (its CPU backward is NCHW)
            x = torch.nn.functional.max_pool2d(x, 2)
    return maps, columns


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_tap_reader_matches_reading_the_returned_maps(dtype: torch.dtype, tol: float) -> None:
    """Columns read inside the forward (TapReader) have the values of reads of the returned
    maps, and the input's gradient through them is the same, including for the deepest tap
    (no gradient from below) and for taps followed by a max-pool."""
    torch.manual_seed(0)
    weights = [torch.randn(c_out, c_in, 3, 3, dtype=dtype) * 0.3
               for c_in, c_out in ((3, 4), (4, 5), (5, 6), (6, 3))]
    image = torch.rand(1, 3, 24, 40, dtype=dtype).contiguous(memory_format=torch.channels_last)
    points = random_pixels(24, 40, 50, gen(2))
    strides = [1, 1, 2, 2]
    probe = torch.randn(50, 18, generator=gen(3), dtype=F64).to(dtype)

    x_ref = image.clone().requires_grad_(True)
    maps, _ = _tapped_chain(x_ref, weights, None)
    leaves = [m.detach().requires_grad_(True) for m in maps]
    want = torch.cat(read_bilinear_columns(leaves, strides, points), dim=1)
    (want.square() * probe).sum().backward()
    torch.autograd.backward(maps, [m.grad for m in leaves])

    x_tap = image.clone().requires_grad_(True)
    _, columns = _tapped_chain(x_tap, weights, points)
    got = torch.cat(columns, dim=1)
    assert got.dtype == dtype and got.shape == want.shape
    assert torch.equal(got, want.detach())
    (got.square() * probe).sum().backward()
    assert x_tap.grad.abs().sum() > 0
    torch.testing.assert_close(x_tap.grad, x_ref.grad, rtol=tol, atol=tol)


def test_tap_reader_reads_bfloat16_maps_into_float32_columns() -> None:
    """On bfloat16 maps the columns are float32 with the values of reading a float32 copy."""
    torch.manual_seed(1)
    fmap = torch.randn(1, 8, 12, 20).to(torch.bfloat16).contiguous(
        memory_format=torch.channels_last).requires_grad_(True)
    points = random_pixels(24, 40, 30, gen(5))
    same, rows = TapReader(points).read(fmap, 2)
    assert rows.dtype == torch.float32 and same.dtype == torch.bfloat16
    assert same.stride() == fmap.stride()  # exact strides: a max-pool would copy a renumbered one
    want = read_bilinear_columns([fmap.detach().float()], [2], points)[0]
    assert torch.equal(rows, want)
    rows.sum().backward()
    assert fmap.grad.dtype == torch.bfloat16 and fmap.grad.abs().sum() > 0


def test_read_bilinear_rejects_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown read method"):
        read_bilinear_columns(feature_maps(), STRIDES, sample_points(), "nearest")


def test_read_nearest_matches_brute_force() -> None:
    maps, points = feature_maps(), sample_points()
    want = torch.cat([brute_nearest(m, s, points) for m, s in zip(maps, STRIDES)], dim=1)
    torch.testing.assert_close(read_nearest(maps, STRIDES, points), want, rtol=0, atol=0)


def test_reads_agree_on_the_stride_grid() -> None:
    """At points that are multiples of every stride, bilinear and nearest reads coincide."""
    maps = feature_maps()
    points = torch.tensor([[0, 0], [8, 8], [8, 0], [0, 8]])
    torch.testing.assert_close(read_bilinear(maps, STRIDES, points),
                               read_nearest(maps, STRIDES, points), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Region guidance
# ---------------------------------------------------------------------------------------------

RED, BLUE, GREEN, WHITE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 1.0, 1.0)


def paint(labels: list[list[tuple[float, float, float]]]) -> torch.Tensor:
    """Rows of RGB colours -> a (1,3,H,W) mask."""
    return torch.tensor(labels, dtype=torch.float32).permute(2, 0, 1)[None]


def style_mask() -> torch.Tensor:
    """12x12: left half red, right half blue, a 3x3 green patch (9 px) in the red half."""
    rows = [[RED] * 6 + [BLUE] * 6 for _ in range(12)]
    for y in range(3):
        for x in range(3):
            rows[y][x] = GREEN
    return paint(rows)


def test_build_guidance_labels_regions() -> None:
    content_rows = [[RED] * 8 for _ in range(3)] + [[BLUE] * 8 for _ in range(3)] + [[GREEN] * 8]
    content_rows[0][0] = WHITE
    content_rows[4][5] = (0.05, 0.08, 0.93)  # JPEG-like noise stays in its region
    # 9 green pixels == the threshold: not a region (needs strictly more).
    g = build_guidance(paint(content_rows), style_mask(), min_style_pixels=9)
    assert g.regions == 2 and set(g.colors) == {(255, 0, 0), (0, 0, 255)}
    red, blue = g.colors.index((255, 0, 0)), g.colors.index((0, 0, 255))
    want_content = torch.tensor([[red] * 8] * 3 + [[blue] * 8] * 3 + [[-1] * 8])
    want_content[0, 0] = -1
    assert torch.equal(g.content_labels, want_content)
    want_style = torch.tensor([[red] * 6 + [blue] * 6] * 12)
    want_style[:3, :3] = -1
    assert torch.equal(g.style_labels, want_style)


def test_build_guidance_counts_a_large_enough_colour() -> None:
    g = build_guidance(paint([[GREEN, RED]]), style_mask(), min_style_pixels=8)
    assert set(g.colors) == {(255, 0, 0), (0, 0, 255), (0, 255, 0)}
    assert g.content_labels.tolist() == [[g.colors.index((0, 255, 0)), g.colors.index((255, 0, 0))]]


@pytest.mark.parametrize("content_colour", [GREEN, WHITE])
def test_build_guidance_rejects_content_without_region_colours(content_colour: tuple) -> None:
    with pytest.raises(InputError, match="content mask"):
        build_guidance(paint([[content_colour] * 4] * 4), style_mask(), min_style_pixels=9)


def test_build_guidance_rejects_style_without_large_regions() -> None:
    with pytest.raises(InputError, match="style mask"):
        build_guidance(paint([[RED] * 4] * 4), style_mask(), min_style_pixels=100)
