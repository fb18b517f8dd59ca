"""Each STROTSS loss against a brute-force reference built from explicit loops.

The references compute every cost entry C[i][j] in a Python double loop and take minima over
full rows and columns with ``torch.min``, so autograd through them gives the exact
(sub)gradient of the textbook expression; ties have probability zero with random floats.
Comparisons run in float64 with tight tolerances, plus float32 checks with looser ones."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from strotss_video.losses import (
    StyleTarget,
    alpha_at,
    combine,
    content_loss,
    moment_loss,
    moments,
    relaxed_emd,
    remd_cosine,
    remd_palette,
    self_similarity,
    strotss_loss,
)
from strotss_video.losses.ops import (
    covariance_gap_sign,
    gram,
    outer_cosine_similarity,
    symmetric_product,
    unit_rows,
)
from strotss_video.losses.style import _palette_matrix, cosine_cost_matrix, cosine_cost_pairs

PairFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

F64 = torch.float64
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=2e-5, atol=2e-5)}

# (N output points, M style points, branch the max picks). With fewer output than style
# points each output row has more candidates, so row minima are smaller and the column
# mean wins; the reverse for N > M. Each case asserts its branch on the brute force.
BRANCHES = [(6, 15, "cols"), (15, 6, "rows")]


# ---------------------------------------------------------------------------------------------
# Brute-force references
# ---------------------------------------------------------------------------------------------

def randn(*shape: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """Seeded standard normal tensor."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def rand(*shape: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """Seeded uniform [0,1) tensor (RGB-like values)."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def normalised(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (plain torch, no custom autograd)."""
    return x / x.norm(dim=1, keepdim=True)


def dot_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``1 - u.v``: the cosine distance of unit vectors, as a function of the vectors themselves."""
    return 1.0 - sum(u[k] * v[k] for k in range(u.shape[0]))


def cosine_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``1 - u.v / (|u||v|)`` for arbitrary vectors, by explicit sums."""
    dot = sum(u[k] * v[k] for k in range(u.shape[0]))
    nu = torch.sqrt(sum(u[k] * u[k] for k in range(u.shape[0])))
    nv = torch.sqrt(sum(v[k] * v[k] for k in range(v.shape[0])))
    return 1.0 - dot / (nu * nv)


def euclidean_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``|u - v|`` by explicit sums."""
    return torch.sqrt(sum((u[k] - v[k]) ** 2 for k in range(u.shape[0])))


def palette_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The reference palette cost ``cos + sqrt(clamp(|u-v|^2, 1e-5, 1e5) / 3)``."""
    sq = sum((u[k] - v[k]) ** 2 for k in range(u.shape[0]))
    return cosine_distance(u, v) + torch.sqrt(sq.clamp(1e-5, 1e5) / 3.0)


def brute_matrix(a: torch.Tensor, b: torch.Tensor, pair: PairFn) -> torch.Tensor:
    """C[i][j] = pair(a_i, b_j), one entry at a time. (N,D),(M,D) -> (N,M)."""
    return torch.stack([torch.stack([pair(a[i], b[j]) for j in range(b.shape[0])])
                        for i in range(a.shape[0])])


def brute_remd(cost: torch.Tensor) -> torch.Tensor:
    """``max(mean_i min_j C_ij, mean_j min_i C_ij)`` through ``torch.min`` on the full matrix."""
    return torch.maximum(cost.min(dim=1).values.mean(), cost.min(dim=0).values.mean())


def remd_branch(cost: torch.Tensor) -> str:
    """Which mean the relaxed EMD's max takes: 'rows' (mean_i min_j) or 'cols'."""
    return "rows" if cost.min(dim=1).values.mean() >= cost.min(dim=0).values.mean() else "cols"


def brute_self_similarity(x: torch.Tensor, pair: PairFn) -> torch.Tensor:
    """D_ij = pair(x_i, x_j) with each column divided by its sum, by loops."""
    dist = brute_matrix(x, x, pair)
    n = x.shape[0]
    return torch.stack([torch.stack([dist[i, j] / sum(dist[k, j] for k in range(n))
                                     for j in range(n)]) for i in range(n)])


def brute_content(x: torch.Tensor, content: torch.Tensor, pair: PairFn) -> torch.Tensor:
    """``mean|D_X - D_C| * N``."""
    d_x = brute_self_similarity(x, pair)
    d_c = brute_self_similarity(content, pair)
    return (d_x - d_c).abs().mean() * x.shape[0]


def brute_moment_loss(a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """``mean|mu_a - mu_b| + mean|Sigma_a - Sigma_b|`` with numpy's biased covariance."""
    mu_a = a.mean(axis=0)
    cov_a = np.cov(a, rowvar=False, bias=True)
    return float(np.abs(mu_a - mu_b).mean() + np.abs(cov_a - cov_b).mean())


def assert_value_and_grad(fn: Callable[[torch.Tensor], torch.Tensor],
                          ref: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                          dtype: torch.dtype = F64) -> None:
    """fn at ``x`` in ``dtype`` has the value and gradient of ``ref`` at ``x`` in float64."""
    x_fn = x.detach().to(dtype).requires_grad_(True)
    x_ref = x.detach().to(F64).requires_grad_(True)
    got, want = fn(x_fn), ref(x_ref)
    got.backward()
    want.backward()
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), want.detach(), **TOL[dtype])
    torch.testing.assert_close(x_fn.grad.double(), x_ref.grad, **TOL[dtype])
    assert x_fn.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# Cosine relaxed EMD
# ---------------------------------------------------------------------------------------------

def test_cosine_cost_matrix_matches_loops() -> None:
    a, b = normalised(randn(5, 4, seed=1)), normalised(randn(7, 4, seed=2))
    torch.testing.assert_close(cosine_cost_matrix(a, b), brute_matrix(a, b, cosine_distance),
                               **TOL[F64])
    idx = torch.tensor([3, 0, 6, 2, 2])
    torch.testing.assert_close(cosine_cost_pairs(a, b[idx]),
                               torch.stack([cosine_distance(a[i], b[idx[i]]) for i in range(5)]),
                               **TOL[F64])


@pytest.mark.parametrize("n,m,branch", BRANCHES)
@pytest.mark.parametrize("pass_transpose", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("branchless", [False, True])
def test_remd_cosine_value_and_grad_wrt_unit_rows(n: int, m: int, branch: str,
                                                  pass_transpose: bool, dtype: torch.dtype,
                                                  branchless: bool) -> None:
    a_unit = normalised(randn(n, 5, seed=n))
    b_unit = normalised(randn(m, 5, seed=100 + m))
    assert remd_branch(brute_matrix(a_unit, b_unit, cosine_distance)) == branch
    b_fn = b_unit.to(dtype)
    b_t = b_fn.t().contiguous() if pass_transpose else None
    assert_value_and_grad(lambda a: remd_cosine(a, b_fn, b_t, branchless),
                          lambda a: brute_remd(brute_matrix(a, b_unit, dot_distance)),
                          a_unit, dtype)


@pytest.mark.parametrize("n,m,branch", BRANCHES)
def test_remd_cosine_through_unit_rows_matches_cosine_distance(n: int, m: int, branch: str) -> None:
    """As the loss uses it: raw hypercolumns -> unit_rows -> remd_cosine, vs 1 - cos by loops."""
    x = randn(n, 5, seed=7 + n) * 3.0
    b = randn(m, 5, seed=8 + m)
    assert remd_branch(brute_matrix(x, b, cosine_distance)) == branch
    b_unit = unit_rows(b)
    assert_value_and_grad(lambda a: remd_cosine(unit_rows(a), b_unit),
                          lambda a: brute_remd(brute_matrix(a, b, cosine_distance)), x)


# ---------------------------------------------------------------------------------------------
# Generic relaxed EMD
# ---------------------------------------------------------------------------------------------

def _euclid_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b)


def _euclid_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).norm(dim=1)


@pytest.mark.parametrize("n,m,branch", BRANCHES)
@pytest.mark.parametrize("costs", ["cosine", "euclidean"])
@pytest.mark.parametrize("branchless", [False, True])
def test_relaxed_emd_value_and_grad(n: int, m: int, branch: str, costs: str,
                                    branchless: bool) -> None:
    if costs == "cosine":
        a, b = normalised(randn(n, 4, seed=n)), normalised(randn(m, 4, seed=50 + m))
        matrix, pairs, brute = cosine_cost_matrix, cosine_cost_pairs, dot_distance
    else:
        a, b = randn(n, 4, seed=n), randn(m, 4, seed=50 + m)
        matrix, pairs, brute = _euclid_matrix, _euclid_pairs, euclidean_distance
    assert remd_branch(brute_matrix(a, b, brute)) == branch
    assert_value_and_grad(lambda x: relaxed_emd(x, b, matrix, pairs, branchless),
                          lambda x: brute_remd(brute_matrix(x, b, brute)), a)


# ---------------------------------------------------------------------------------------------
# Palette relaxed EMD
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,m,branch", BRANCHES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("branchless", [False, True])
def test_remd_palette_value_and_grad(n: int, m: int, branch: str, dtype: torch.dtype,
                                     branchless: bool) -> None:
    a, b = rand(n, 3, seed=n), rand(m, 3, seed=30 + m)
    assert remd_branch(brute_matrix(a, b, palette_distance)) == branch
    b_fn = b.to(dtype)
    assert_value_and_grad(lambda x: remd_palette(x, b_fn, branchless),
                          lambda x: brute_remd(brute_matrix(x, b, palette_distance)), a, dtype)


def test_remd_palette_clamps_identical_colours() -> None:
    """An output colour equal to a style colour costs sqrt(1e-5/3) (the clamp's floor), not 0."""
    b = rand(8, 3, seed=3)
    a = torch.cat([b[:4], rand(3, 3, seed=4)])
    cost = brute_matrix(a, b, palette_distance)
    assert torch.allclose(cost.min(dim=1).values[:4], torch.full((4,), math.sqrt(1e-5 / 3), dtype=F64),
                          atol=1e-12)
    assert_value_and_grad(lambda x: remd_palette(x, b),
                          lambda x: brute_remd(brute_matrix(x, b, palette_distance)), a)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-5)])
def test_palette_matrix_is_the_cost_minus_one(dtype: torch.dtype, tol: float) -> None:
    a = torch.cat([rand(6, 3, seed=5), rand(2, 3, seed=3)])
    b = rand(9, 3, seed=3)  # shares two colours with a: the clamp's floor is exercised too
    got = _palette_matrix(a.to(dtype), b.to(dtype))
    assert got.dtype == dtype
    torch.testing.assert_close(got.double() + 1.0, brute_matrix(a, b, palette_distance),
                               rtol=tol, atol=tol)


REFERENCE_YUV = torch.tensor([[0.577350, 0.577350, 0.577350],
                              [-0.577350, 0.788675, -0.211325],
                              [-0.577350, -0.211325, 0.788675]], dtype=F64)


def random_rotation(seed: int) -> torch.Tensor:
    """A random 3x3 rotation (orthonormal, det +1) from a QR decomposition."""
    q, r = torch.linalg.qr(randn(3, 3, seed=seed))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


@pytest.mark.parametrize("name", ["reference_yuv", "qr_rotation"])
def test_remd_palette_is_invariant_under_the_reference_yuv_rotation(name: str) -> None:
    rot, tol = (REFERENCE_YUV, 2e-6) if name == "reference_yuv" else (random_rotation(9), 1e-12)
    torch.testing.assert_close(rot @ rot.t(), torch.eye(3, dtype=F64), rtol=0, atol=tol)
    assert abs(float(torch.linalg.det(rot)) - 1.0) < 3 * tol
    for n, m, _ in BRANCHES:
        a, b = rand(n, 3, seed=n), rand(m, 3, seed=60 + m)
        plain = remd_palette(a, b)
        rotated = remd_palette(a @ rot.t(), b @ rot.t())
        torch.testing.assert_close(rotated, plain, rtol=10 * tol, atol=10 * tol)


# ---------------------------------------------------------------------------------------------
# Moments
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_moments_match_numpy(dtype: torch.dtype) -> None:
    x = randn(11, 4, seed=5) + 2.0
    mu, cov = moments(x.to(dtype))
    xn = x.numpy()
    assert mu.dtype == cov.dtype == dtype and cov.shape == (4, 4)
    np.testing.assert_allclose(mu.double().numpy(), xn.mean(axis=0), **TOL[dtype])
    np.testing.assert_allclose(cov.double().numpy(), np.cov(xn, rowvar=False, bias=True), **TOL[dtype])


def _moment_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a = randn(9, 4, seed=11)
    mu_b, cov_b = moments(randn(13, 4, seed=12) * 0.7 + 0.3)
    return a, mu_b, cov_b


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_moment_loss_value(dtype: torch.dtype) -> None:
    a, mu_b, cov_b = _moment_case()
    got = moment_loss(a.to(dtype), mu_b.to(dtype), cov_b.to(dtype))
    want = brute_moment_loss(a.numpy(), mu_b.numpy(), cov_b.numpy())
    assert got.dtype == dtype
    assert float(got) == pytest.approx(want, rel=TOL[dtype]["rtol"])


def test_moment_loss_gradient() -> None:
    a, mu_b, cov_b = _moment_case()
    assert torch.autograd.gradcheck(lambda x: moment_loss(x, mu_b, cov_b), (a.requires_grad_(),))

    def plain(x: torch.Tensor) -> torch.Tensor:
        xc = x - x.mean(0)
        return (x.mean(0) - mu_b).abs().mean() + (xc.t() @ xc / x.shape[0] - cov_b).abs().mean()

    assert_value_and_grad(lambda x: moment_loss(x, mu_b, cov_b), plain, a)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_moment_loss_gradient_at_scale(dtype: torch.dtype) -> None:
    """The backward's ``S + S^T = 2 S`` shortcut relies on both covariances being exactly
    symmetric: true of the blocked product at the pipeline's sizes too."""
    x = randn(300, 257, seed=13).to(dtype)
    mu_b, cov_b = moments(randn(500, 257, seed=14).to(dtype) * 0.7 + 0.3)
    assert torch.equal(cov_b, cov_b.t()) and torch.equal(moments(x)[1], moments(x)[1].t())

    def plain(t: torch.Tensor) -> torch.Tensor:
        tc = t - t.mean(0)
        return (t.mean(0) - mu_b).abs().mean() + (tc.t() @ tc / t.shape[0] - cov_b).abs().mean()

    assert_value_and_grad(lambda t: moment_loss(t, mu_b, cov_b), plain, x, dtype)


@pytest.mark.parametrize("d", [257, 1100])
def test_covariance_gap_sign_matches_the_plain_difference(d: int) -> None:
    """One block (257 dims) and 4x4 uneven blocks (1100): the signs of every entry of
    ``xc^T xc / n - cov`` and the sum of its absolute values, from the upper blocks only."""
    n = 300
    xc = randn(n, d, seed=41)
    xc = xc - xc.mean(0)
    cov = moments(randn(400, d, seed=42) * 0.8)[1]
    diff = xc.t() @ xc / n - cov
    for dtype, tol in ((F64, 1e-12), (torch.float32, 2e-6)):
        sign, total = covariance_gap_sign(xc.to(dtype), cov.to(dtype), float(n))
        assert sign.dtype == dtype and sign.shape == (d, d)
        # Entries within rounding of zero may take either sign in float32.
        clear = diff.abs() > 1e-4
        assert torch.equal(sign.to(F64)[clear], diff.sign()[clear])
        assert clear.float().mean() > 0.99
        assert abs(float(total) / float(diff.abs().sum()) - 1.0) < tol


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_symmetric_product_in_blocks_equals_the_product(dtype: torch.dtype) -> None:
    """600 rows, 1100 columns: 2x2 blocks for x x^T and 4x4 for x^T x (and a size that does
    not divide evenly); each block is the plain product's, and the result exactly symmetric
    (``exact=False``: the blocks off the diagonal still are mirrored exactly)."""
    x = randn(600, 1100, seed=31).to(dtype)
    for rows, want in ((True, x @ x.t()), (False, x.t() @ x)):
        for exact in (True, False):
            got = symmetric_product(x, rows, exact)
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, rtol=1e-12 if dtype == F64 else 1e-5,
                                       atol=1e-9 if dtype == F64 else 1e-3)
            if exact:
                assert torch.equal(got, got.t())
            else:
                half = got.shape[0] // 2
                assert torch.equal(got[half:, :half], got[:half, half:].t())
    # Through the losses that use it: a covariance of 520 dims (2x2 blocks).
    a = randn(200, 520, seed=32).to(dtype)
    mu_b, cov_b = moments(randn(300, 520, seed=33).to(dtype) * 0.5)
    assert torch.equal(cov_b, cov_b.t())

    def plain(t: torch.Tensor) -> torch.Tensor:
        tc = t - t.mean(0)
        return (t.mean(0) - mu_b).abs().mean() + (tc.t() @ tc / t.shape[0] - cov_b).abs().mean()

    assert_value_and_grad(lambda t: moment_loss(t, mu_b, cov_b), plain, a, dtype)


# ---------------------------------------------------------------------------------------------
# ops: gram, unit_rows
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1.0, 3.0])
def test_gram_value_and_gradcheck(n: float) -> None:
    x = randn(6, 4, seed=21)
    torch.testing.assert_close(gram(x, n), x.t() @ x / n, **TOL[F64])
    assert torch.autograd.gradcheck(lambda t: gram(t, n), (x.clone().requires_grad_(),))
    torch.testing.assert_close(outer_cosine_similarity(x), x @ x.t(), **TOL[F64])
    assert torch.autograd.gradcheck(outer_cosine_similarity, (x.clone().requires_grad_(),))
    y = x.clone().requires_grad_(True)
    (outer_cosine_similarity(y) * randn(6, 6, seed=23)).sum().backward()
    assert y.grad.is_contiguous()  # the (N,D) layout: summed cheaply with other gradients


def test_unit_rows_value_and_gradcheck() -> None:
    x = randn(5, 4, seed=22) * torch.tensor([[0.1], [1.0], [10.0], [3.0], [0.5]], dtype=F64)
    y = unit_rows(x)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(5, dtype=F64), **TOL[F64])
    torch.testing.assert_close(y, normalised(x), **TOL[F64])
    assert torch.autograd.gradcheck(unit_rows, (x.clone().requires_grad_(),))
    assert torch.count_nonzero(unit_rows(torch.zeros(2, 3))) == 0  # eps guard: no NaN


# ---------------------------------------------------------------------------------------------
# Content (self-similarity)
# ---------------------------------------------------------------------------------------------

def test_self_similarity_matches_loops() -> None:
    x_unit = normalised(randn(7, 4, seed=31))
    d = self_similarity(x_unit)
    torch.testing.assert_close(d, brute_self_similarity(x_unit, cosine_distance), **TOL[F64])
    torch.testing.assert_close(d.sum(0), torch.ones(7, dtype=F64), **TOL[F64])


def test_content_loss_value_on_unit_rows() -> None:
    x_unit, c_unit = normalised(randn(8, 5, seed=32)), normalised(randn(8, 5, seed=33))
    got = content_loss(x_unit, self_similarity(c_unit))
    torch.testing.assert_close(got, brute_content(x_unit, c_unit, dot_distance), **TOL[F64])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_content_loss_through_unit_rows_matches_cosine_distance(dtype: torch.dtype) -> None:
    """Gradient checked w.r.t. the raw rows: w.r.t. unit rows as free variables the diagonal
    ``1 - |x_i|^2`` sits exactly on the kink of ``|D_X - D_C|`` (both diagonals are 0), so
    the subgradient there is decided by rounding; ``unit_rows`` projects that direction out."""
    x, c = randn(8, 5, seed=34) * 2.0, randn(8, 5, seed=35)
    target = self_similarity(unit_rows(c.to(dtype)))
    assert_value_and_grad(lambda t: content_loss(unit_rows(t), target),
                          lambda t: brute_content(t, c, cosine_distance), x, dtype)
    assert float(content_loss(unit_rows(c), self_similarity(unit_rows(c)))) == pytest.approx(0.0, abs=1e-14)


def test_self_similarity_target_is_the_graph_formula_bit_for_bit() -> None:
    x = normalised(randn(600, 9, seed=38, dtype=torch.float32))
    with torch.no_grad():
        target = self_similarity(x)
    graph = self_similarity(x.clone().requires_grad_(True))
    assert graph.requires_grad and not target.requires_grad
    assert torch.equal(target, graph.detach())


def test_target_from_a_gathered_similarity_is_the_formula_bit_for_bit() -> None:
    """The optimiser's precomputed path: rows and columns gathered from a full similarity."""
    from strotss_video.losses.content import normalise_columns, target_from_similarity_

    x = normalised(randn(40, 6, seed=39, dtype=torch.float32))
    sim = x @ x.t()
    rows = torch.tensor([3, 17, 5, 29, 0, 11])
    want = normalise_columns(1.0 - sim[rows][:, rows])
    assert torch.equal(target_from_similarity_(sim[rows][:, rows]), want)


def test_fused_content_loss_matches_autograd_through_self_similarity() -> None:
    """The fused loss against autograd through the (N,N) expression, at a size where the
    product runs in blocks, with a scaled upstream gradient and a second (retained) backward."""
    x = normalised(randn(520, 12, seed=36)).requires_grad_(True)
    target = self_similarity(normalised(randn(520, 12, seed=37)))
    want = (self_similarity(x) - target).abs().mean() * x.shape[0]
    (want_grad,) = torch.autograd.grad(want * 3.5, x)
    got = content_loss(x, target)
    torch.testing.assert_close(got, want, **TOL[F64])
    first = torch.autograd.grad(got * 3.5, x, retain_graph=True)[0]
    second = torch.autograd.grad(got * 3.5, x)[0]
    torch.testing.assert_close(first, want_grad, **TOL[F64])
    torch.testing.assert_close(second, first, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# Total
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha,expected", [(16.0, (16 + 2 + 3 + 4 / 16) / 18),
                                            (1.0, (1 + 2 + 3 + 4) / 3),
                                            (0.5, (0.5 + 2 + 3 + 4) / 2.5)])
def test_combine(alpha: float, expected: float) -> None:
    terms = [torch.tensor(v, dtype=F64) for v in (1.0, 2.0, 3.0, 4.0)]
    assert float(combine(alpha, *terms)) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("k,expected", [(0, 16.0), (1, 8.0), (2, 4.0), (3, 2.0)])
def test_alpha_at(k: int, expected: float) -> None:
    assert alpha_at(1.0, 16.0, k) == expected
    assert alpha_at(0.5, 16.0, k) == expected / 2


def _separate_terms(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(remd, moment, palette) of output points a against style points b, each on its own."""
    mu_b, cov_b = moments(b)
    return (remd_cosine(unit_rows(a), unit_rows(b)), moment_loss(a, mu_b, cov_b),
            remd_palette(a[:, :3], b[:, :3]))


def _assert_terms(terms: object, expected: dict[str, torch.Tensor]) -> None:
    for name, want in expected.items():
        torch.testing.assert_close(getattr(terms, name), want, **TOL[F64], msg=name)


@pytest.mark.parametrize("alpha", [16.0, 0.5])
def test_strotss_loss_single_region_equals_combined_terms(alpha: float) -> None:
    a, c, b = rand(20, 7, seed=41), rand(20, 7, seed=42), rand(30, 7, seed=43)
    target = self_similarity(unit_rows(c))
    terms = strotss_loss(a, target, [StyleTarget.from_hypercolumns(b)], alpha)
    l_c = content_loss(unit_rows(a), target)
    l_r, l_m, l_p = _separate_terms(a, b)
    _assert_terms(terms, dict(content=l_c, remd=l_r, moment=l_m, palette=l_p,
                              total=combine(alpha, l_c, l_r, l_m, l_p)))
    floats = terms.as_floats()
    assert set(floats) == {"total", "content", "remd", "moment", "palette", "style"}
    assert floats["style"] == pytest.approx(floats["remd"] + floats["moment"] + floats["palette"])
    assert_value_and_grad(lambda t: strotss_loss(t, target, [StyleTarget.from_hypercolumns(b)],
                                                 alpha).total,
                          lambda t: combine(alpha, content_loss(unit_rows(t), target),
                                            *_separate_terms(t, b)), a)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cost_matrices_in_a_kept_scratch_buffer_change_nothing(dtype: torch.dtype) -> None:
    """Both relaxed EMDs writing their (N,M) matrix into one caller's buffer, as the optimiser
    does on CPU: the same loss terms and gradient bit for bit, whatever the buffer held; a
    buffer of another shape (a region's points) is ignored."""
    a, c, b = rand(20, 7, seed=44), rand(20, 7, seed=45), rand(30, 7, seed=46)
    a, c, b = a.to(dtype), c.to(dtype), b.to(dtype)
    target = self_similarity(unit_rows(c))
    style = StyleTarget.from_hypercolumns(b)
    results = []
    for scratch in (None, torch.full((20, 30), float("nan"), dtype=dtype),
                    torch.empty(19, 30, dtype=dtype)):
        x = a.clone().requires_grad_(True)
        terms = strotss_loss(x, target, [style], 4.0, scratch=scratch)
        terms.total.backward()
        results.append((terms, x.grad))
        if scratch is not None and scratch.shape == (20, 30):
            assert not torch.isnan(scratch).any()  # it was used
    for terms, grad in results[1:]:
        for name in ("total", "content", "remd", "moment", "palette"):
            assert torch.equal(getattr(terms, name), getattr(results[0][0], name)), name
        assert torch.equal(grad, results[0][1])
    # Each relaxed EMD alone, with the buffer.
    buf = torch.empty(20, 30, dtype=dtype)
    au, bu = unit_rows(a), unit_rows(b)
    assert torch.equal(remd_cosine(au, bu, out=buf), remd_cosine(au, bu))
    assert torch.equal(remd_palette(a[:, :3], b[:, :3], out=buf), remd_palette(a[:, :3], b[:, :3]))


@pytest.mark.parametrize("labels,n_styles", [((0, 1), 2), ((0, 2), 3)],
                         ids=["two_regions", "empty_middle_region_skipped"])
def test_strotss_loss_regions_average_per_region_terms(labels: tuple[int, int], n_styles: int) -> None:
    a, c = rand(24, 6, seed=51), rand(24, 6, seed=52)
    styles_b = [rand(15 + 3 * r, 6, seed=53 + r) for r in range(n_styles)]
    regions = torch.tensor([labels[int(v)] for v in rand(24, seed=54) > 0.4])
    target = self_similarity(unit_rows(c))
    terms = strotss_loss(a, target, [StyleTarget.from_hypercolumns(b) for b in styles_b], 4.0,
                         regions)
    per_region = [_separate_terms(a[regions == r], styles_b[r]) for r in labels]
    assert all(int((regions == r).sum()) >= 5 for r in labels)
    l_r, l_m, l_p = (sum(t[k] for t in per_region) / 2 for k in range(3))
    l_c = content_loss(unit_rows(a), target)  # over all points, regions ignored
    _assert_terms(terms, dict(content=l_c, remd=l_r, moment=l_m, palette=l_p,
                              total=combine(4.0, l_c, l_r, l_m, l_p)))
    assert torch.isfinite(terms.total)
