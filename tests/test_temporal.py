"""Tests of the temporal-coherence maths (strotss_video.temporal.coherence).

Ruder et al.'s short-term loss against brute force, the long-term weights on hand-computed
examples, the warm-start initialisation for every fill mode, and gradients of the term."""

from __future__ import annotations

import itertools

import pytest
import torch

from strotss_video.flow.warp import in_frame, warp
from strotss_video.temporal.coherence import (
    FLAT_REACH,
    TemporalTerm,
    checked_mask,
    long_term_weights,
    lowpass,
    neighbour_flow,
    temporal_loss,
    warm_start,
)
from strotss_video.tensorops import push_pull

H, W = 11, 13


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def translation(dx: int, dy: int, h: int = H, w: int = W) -> torch.Tensor:
    """Constant integer flow (1,2,h,w): out(x, y) = image(x + dx, y + dy)."""
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def binary_mask(seed: int, h: int = H, w: int = W, p: float = 0.5) -> torch.Tensor:
    return (rand(1, 1, h, w, seed=seed) < p).float()


def brute_force_loss(x: torch.Tensor, w: torch.Tensor, c: torch.Tensor) -> float:
    """(1/(H*W*C)) sum_{y,x,k} c[y,x] (x_k - w_k)^2, one element at a time."""
    _, channels, h, width = x.shape
    total = 0.0
    for k, i, j in itertools.product(range(channels), range(h), range(width)):
        total += float(c[0, 0, i, j]) * (float(x[0, k, i, j]) - float(w[0, k, i, j])) ** 2
    return total / (h * width * channels)


# --------------------------------------------------------------------------- temporal_loss


def test_loss_is_exactly_zero_on_the_exactly_warped_frame() -> None:
    previous = rand(1, 3, H, W, seed=1)
    warped = warp(previous, translation(2, -1))
    # An integer flow is an exact pixel shift (zeros where it leaves the frame).
    assert torch.equal(warped[..., 1:, :W - 2], previous[..., :H - 1, 2:])
    assert torch.count_nonzero(warped[..., 0, :]) == 0  # row -1 of the source is outside
    assert torch.count_nonzero(warped[..., -2:]) == 0  # so are columns W, W+1
    mask = torch.ones(1, 1, H, W)
    image = warped.clone()
    assert float(temporal_loss(image, warped, mask)) == 0.0
    # Any change at a reliable pixel makes it positive, by exactly c * delta^2 / D.
    image[0, 1, 4, 5] += 0.25
    loss = float(temporal_loss(image, warped, mask))
    assert loss > 0
    assert loss == pytest.approx(0.25 ** 2 / (3 * H * W), rel=1e-6)


@pytest.mark.parametrize("soft", [False, True], ids=["binary-mask", "soft-mask"])
def test_loss_matches_brute_force(soft: bool) -> None:
    x, w = rand(1, 3, H, W, seed=2), rand(1, 3, H, W, seed=3)
    c = rand(1, 1, H, W, seed=4) if soft else binary_mask(5)
    got = float(temporal_loss(x, w, c))
    assert got > 0
    assert got == pytest.approx(brute_force_loss(x, w, c), rel=1e-5)
    # Normalised by H*W*C (the full element count), not by the number of reliable pixels.
    ones = float(temporal_loss(x, w, torch.ones_like(c)))
    assert ones == pytest.approx(float((x - w).square().mean()), rel=1e-6)


def test_masked_pixels_contribute_nothing() -> None:
    x, w = rand(1, 3, H, W, seed=6), rand(1, 3, H, W, seed=7)
    c = binary_mask(8)
    assert 0 < float(c.sum()) < H * W
    before = temporal_loss(x, w, c)
    # Arbitrary changes where c = 0, in every channel, leave the loss bit-identical.
    y = torch.where(c.bool().expand_as(x), x, x + 100.0 * rand(1, 3, H, W, seed=9))
    assert not torch.equal(x, y)
    assert torch.equal(temporal_loss(y, w, c), before)
    # All-zero mask: nothing constrained at all.
    assert float(temporal_loss(x, w, torch.zeros_like(c))) == 0.0


# --------------------------------------------------------------------------- long_term_weights


def test_long_term_weights_closest_reliable_frame_wins() -> None:
    # 4 pixels x 3 past frames (nearest first); 1 = reliable.
    masks = [torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 1, 4),
             torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 1, 4),
             torch.tensor([1.0, 1.0, 1.0, 0.0]).view(1, 1, 1, 4)]
    originals = [m.clone() for m in masks]
    weights = long_term_weights(masks)
    assert len(weights) == 3
    expected = [[1, 0, 0, 0],  # pixel 0: the previous frame is reliable, the older ones unused
                [0, 1, 0, 0],  # pixel 1: first reliable at distance 2
                [0, 0, 1, 0]]  # pixel 2: only the oldest; pixel 3: none, so unconstrained
    for got, want in zip(weights, expected):
        assert got.shape == (1, 1, 1, 4)
        assert got.flatten().tolist() == want
    assert all(torch.equal(m, o) for m, o in zip(masks, originals))  # inputs untouched


def test_long_term_weights_random_binary_masks_are_one_hot() -> None:
    masks = [binary_mask(20 + j, p=0.4) for j in range(4)]
    weights = torch.cat(long_term_weights(masks), dim=1)[0]  # (J, H, W)
    stacked = torch.cat(masks, dim=1)[0]
    for i, j in itertools.product(range(H), range(W)):
        reliable = torch.nonzero(stacked[:, i, j]).flatten().tolist()
        want = torch.zeros(4)
        if reliable:
            want[reliable[0]] = 1.0
        assert torch.equal(weights[:, i, j], want), (i, j, stacked[:, i, j])


def test_long_term_weights_soft_hand_computed() -> None:
    # c_j' = max(c_j - sum_{k<j} c_k, 0)
    m1 = torch.tensor([1.0, 0.0, 0.5, 0.0, 0.25]).view(1, 1, 1, 5)
    m2 = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.5]).view(1, 1, 1, 5)
    m3 = torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0]).view(1, 1, 1, 5)
    w1, w2, w3 = (w.flatten().tolist() for w in long_term_weights([m1, m2, m3]))
    assert w1 == [1.0, 0.0, 0.5, 0.0, 0.25]
    assert w2 == [0.0, 1.0, 0.5, 0.0, 0.25]  # m2 - m1, clamped at 0
    assert w3 == [0.0, 0.0, 0.0, 1.0, 0.25]  # m3 - m1 - m2, clamped at 0
    # One mask: the weights are the mask itself.
    only = long_term_weights([m1])
    assert len(only) == 1 and torch.equal(only[0], m1)


# --------------------------------------------------------------------------- warm_start


@pytest.mark.parametrize("fill", ["blur", "texture", "content", "mean"])
def test_warm_start_uses_warped_output_where_reliable_and_fill_elsewhere(fill: str) -> None:
    h, w = 24, 32
    previous = rand(1, 3, h, w, seed=30)
    content = rand(1, 3, h, w, seed=31)
    style_mean = torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1)
    flow = translation(3, 2, h, w)
    mask = binary_mask(32, h, w)
    init, warped = warm_start(previous, flow, mask, content, fill, style_mean)
    assert init.shape == warped.shape == (1, 3, h, w)
    assert torch.equal(warped, warp(previous, flow))
    filler = {"blur": lowpass(content, 3), "content": content,
              "texture": lowpass(content, 3) + previous - lowpass(previous, 3),
              "mean": style_mean.expand(1, 3, h, w)}[fill]
    on = mask.bool().expand_as(init)
    assert torch.equal(init[on], warped[on])
    assert torch.allclose(init[~on], filler[~on], atol=1e-6)
    if fill == "blur":  # a real low-pass, not the content itself
        assert (filler - content).abs().max() > 0.1
        assert filler.var() < content.var()
    if fill == "texture":  # the previous output's fine detail, at the same place, not warped
        detail = previous - lowpass(previous, 3)
        assert torch.allclose((init - lowpass(content, 3))[~on], detail[~on], atol=1e-6)


def test_warped_fill_keeps_the_warped_output_wherever_the_flow_lands_in_frame() -> None:
    # Unreliable pixels inside the frame keep what the flow dragged there; only pixels whose
    # flow leaves the frame (nothing to warp) get the content's low-pass.
    h, w, dx, dy = 24, 32, 3, 2
    previous = rand(1, 3, h, w, seed=35)
    content = rand(1, 3, h, w, seed=36)
    flow = translation(dx, dy, h, w)
    mask = binary_mask(37, h, w)
    init, warped = warm_start(previous, flow, mask, content, "warped", torch.zeros(1, 3, 1, 1))
    inside = in_frame(flow).bool().expand_as(init)
    assert not inside.all() and inside.any()
    assert torch.equal(init[inside], warped[inside])
    assert torch.allclose(init[~inside], lowpass(content, 3)[~inside], atol=1e-6)
    # out(x, y) = previous(x + 3, y + 2): the last 3 columns and 2 rows come from outside.
    assert torch.equal(inside[0, 0], (torch.arange(h)[:, None] < h - dy)
                       & (torch.arange(w)[None, :] < w - dx))
    assert (~mask.bool()).any()  # some unreliable pixels inside the frame kept the warp


def _half_textured_scene(h: int, w: int, dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A previous input with noise left of column w/2 and flat grey right of it, and the
    current frame it becomes under ``translation(dx, dy)`` (same size, (1,3,h,w) each)."""
    previous_input = torch.full((1, 3, h, w), 0.5)
    previous_input[..., : w // 2] = rand(1, 3, h, w // 2, seed=60)
    flow = translation(dx, dy, h, w)
    inside = in_frame(flow)
    # What enters the frame is grey too, so the flat half stays flat up to the border.
    content = inside * warp(previous_input, flow) + (1.0 - inside) * 0.5
    return previous_input, content


def test_checked_mask_trusts_rejected_warps_only_where_textured_input_agrees() -> None:
    h, w, dx, dy = 24, 48, 2, 1
    previous_input, content = _half_textured_scene(h, w, dx, dy)
    flow = translation(dx, dy, h, w)
    rejected = torch.zeros(1, 1, h, w)  # the flow mask trusts nothing: only the check decides
    raised = checked_mask(rejected, previous_input, flow, content)
    assert raised.shape == (1, 1, h, w)
    # Interior of each half (away from the texture edge at column 22 and the frame's last
    # rows/columns, whose flow leaves the frame).
    textured, flat = (slice(0, h - 4), slice(0, 16)), (slice(0, h - 4), slice(30, w - 4))
    assert bool((raised[..., textured[0], textured[1]] == 1.0).all())
    # In the flat half any flow would match: no evidence.
    assert bool((raised[..., flat[0], flat[1]] == 0.0).all())
    # Where the flow leaves the frame there is nothing to keep.
    assert bool((raised[~in_frame(flow).bool()] == 0.0).all())
    # A vector that passed the forward-backward test (rejected only as a motion boundary) is
    # trusted in the flat half too, where its colours match; never out of frame.
    vouched = checked_mask(rejected, previous_input, flow, content, torch.ones(1, 1, h, w))
    assert bool((vouched[..., flat[0], flat[1]] == 1.0).all())
    assert bool((vouched[~in_frame(flow).bool()] == 0.0).all())
    # A previous input that the flow does not carry onto this frame: nothing is vouched for.
    unrelated = rand(1, 3, h, w, seed=62)
    assert bool((checked_mask(rejected, unrelated, flow, content) == 0.0).all())
    # The check only raises: reliable pixels stay reliable whatever it says.
    soft = rand(1, 1, h, w, seed=63)
    assert torch.equal(checked_mask(soft, unrelated, flow, content), soft)
    # As a warm start: the warp where the check vouches for it, the low-pass elsewhere.
    previous_output = rand(1, 3, h, w, seed=61)
    init, warped = warm_start(previous_output, flow, raised, content, "blur",
                              torch.zeros(1, 3, 1, 1))
    assert torch.equal(init[..., textured[0], textured[1]], warped[..., textured[0], textured[1]])
    assert torch.allclose(init[..., flat[0], flat[1]], lowpass(content, 3)[..., flat[0], flat[1]],
                          atol=1e-6)


def test_push_pull_fills_holes_from_the_nearest_weighted_pixels() -> None:
    values = rand(1, 2, 40, 56, seed=70)
    ones = torch.ones(1, 1, 40, 56)
    assert torch.allclose(push_pull(values, ones), values)  # nothing to fill
    # A constant field with a large hole: the hole gets the constant.
    field = torch.tensor([2.0, -1.0]).view(1, 2, 1, 1).expand(1, 2, 40, 56).clone()
    weight = ones.clone()
    weight[..., 5:35, 10:50] = 0.0
    field[..., 5:35, 10:50] = 100.0  # garbage where the weight is 0
    filled = push_pull(field, weight)
    assert torch.allclose(filled, torch.tensor([2.0, -1.0]).view(1, 2, 1, 1).expand_as(filled),
                          atol=1e-5)
    # Two sides of a hole: values stay between them, each side's near the side.
    two = torch.zeros(1, 1, 40, 56)
    two[..., 28:] = 1.0
    gap = ones.clone()
    gap[..., 20:36] = 0.0
    out = push_pull(two, gap)
    assert bool(((out >= -1e-6) & (out <= 1 + 1e-6)).all())
    assert float(out[..., 20].mean()) < 0.5 < float(out[..., 35].mean())


def test_neighbour_flow_moves_rejected_pixels_with_their_trusted_neighbours() -> None:
    """Rejected vectors take the trusted vectors around them where the input agrees: in a
    textured area (evidence), and deep inside a flat one (a prior), never near texture at
    either end, and never where the previous input does not carry onto this frame."""
    h, w, dx, dy = 48, 96, 2, 1
    previous_input, content = _half_textured_scene(h, w, dx, dy)
    flow = translation(dx, dy, h, w)
    garbage = flow + 6.0 * (rand(1, 2, h, w, seed=71) - 0.5)  # what DIS gives where it fails
    trusted = torch.ones(1, 1, h, w)
    trusted[..., w // 2:] = 0.0  # the flat half rejected,
    trusted[..., 10:20, 8:20] = 0.0  # and a textured block
    backward = torch.where(trusted.bool(), flow, garbage)
    moved, raised = neighbour_flow(backward, trusted, previous_input, content)
    assert moved.shape == backward.shape and raised.shape == trusted.shape
    # Trusted pixels keep their vector and their mask.
    keep = trusted.bool().expand_as(moved)
    assert torch.equal(moved[keep], backward[keep]) and bool((raised >= trusted).all())
    # The textured block: the neighbours' translation, vouched for by the input.
    assert torch.allclose(moved[..., 11:19, 9:19], flow[..., 11:19, 9:19], atol=1e-4)
    assert bool((raised[..., 11:19, 9:19] == 1.0).all())
    # Deep in the flat half (texture ends at column w/2 - 1 + dx here, the frame at the
    # bottom/right where the flow leaves it): taken on the prior.
    edge = w // 2 + dx + FLAT_REACH // 2 + 3
    deep = (slice(0, h - 4), slice(edge, w - 4))
    assert torch.allclose(moved[..., deep[0], deep[1]], flow[..., deep[0], deep[1]], atol=0.05)
    assert bool((raised[..., deep[0], deep[1]] == 1.0).all())
    # Next to the texture the flat pixels stay rejected, with their own vectors.
    near = (slice(0, h - 4), slice(w // 2 + 1, w // 2 + 4))
    assert torch.equal(moved[..., near[0], near[1]], backward[..., near[0], near[1]])
    assert bool((raised[..., near[0], near[1]] == 0.0).all())
    # A previous input that does not become this frame: the textured block is not taken.
    unrelated = rand(1, 3, h, w, seed=72)
    moved_u, raised_u = neighbour_flow(backward, trusted, unrelated, content)
    assert torch.equal(moved_u[..., 10:20, 8:20], backward[..., 10:20, 8:20])
    assert bool((raised_u[..., 10:20, 8:20] == 0.0).all())


def test_warm_start_rejects_an_unknown_fill() -> None:
    with pytest.raises(ValueError, match="unknown warm-start fill"):
        warm_start(rand(1, 3, H, W), torch.zeros(1, 2, H, W), torch.ones(1, 1, H, W),
                   rand(1, 3, H, W), "checked", torch.zeros(1, 3, 1, 1))


def test_warm_start_integer_translation_matches_shifted_previous_output() -> None:
    h, w, dx, dy = 24, 32, 3, -2
    previous = rand(1, 3, h, w, seed=40)
    content = rand(1, 3, h, w, seed=41)
    mask = torch.ones(1, 1, h, w)
    init, warped = warm_start(previous, translation(dx, dy, h, w), mask, content, "blur",
                              torch.zeros(1, 3, 1, 1))
    # out(x, y) = previous(x + dx, y + dy): rows 2.. and columns ..w-3 are inside the frame.
    assert torch.equal(warped[..., -dy:, :w - dx], previous[..., :h + dy, dx:])
    assert torch.equal(init, warped)  # everything reliable


def test_warm_start_soft_mask_blends_and_levels_are_honoured() -> None:
    h, w = 16, 16
    previous, content = rand(1, 3, h, w, seed=50), rand(1, 3, h, w, seed=51)
    mask = torch.full((1, 1, h, w), 0.25)
    init, warped = warm_start(previous, torch.zeros(1, 2, h, w), mask, content, "blur",
                              torch.zeros(1, 3, 1, 1), levels=2)
    assert torch.equal(warped, previous)  # zero flow is the identity
    assert torch.allclose(init, 0.25 * previous + 0.75 * lowpass(content, 2), atol=1e-6)
    # The low-pass of a constant image is that constant.
    flat = torch.full((1, 3, h, w), 0.4)
    assert torch.allclose(lowpass(flat, 3), flat, atol=1e-6)


# --------------------------------------------------------------------------- TemporalTerm


def test_temporal_term_value_and_gradient_reach_the_image() -> None:
    x = rand(1, 3, H, W, seed=60).requires_grad_(True)
    w1, w2 = rand(1, 3, H, W, seed=61), rand(1, 3, H, W, seed=62)
    m1 = binary_mask(63)
    m2 = long_term_weights([m1, binary_mask(64)])[1]
    term = TemporalTerm((w1, w2), (m1, m2), weight=3.0)
    loss = term(x)
    assert loss.ndim == 0 and loss.requires_grad
    expected = 3.0 * (temporal_loss(x, w1, m1) + temporal_loss(x, w2, m2))
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    loss.backward()
    assert x.grad is not None and torch.count_nonzero(x.grad) > 0
    d = 3 * H * W
    analytic = 3.0 * 2.0 * (m1 * (x - w1) + m2 * (x - w2)).detach() / d
    assert torch.allclose(x.grad, analytic, atol=1e-7)
    # Pixels no mask trusts get no gradient at all.
    free = ((m1 + m2) == 0).expand_as(x)
    assert bool(free.any()) and torch.count_nonzero(x.grad[free]) == 0


def test_temporal_term_with_weight_zero_is_inert() -> None:
    x = rand(1, 3, H, W, seed=70).requires_grad_(True)
    warped = warp(rand(1, 3, H, W, seed=71), translation(1, 1))
    term = TemporalTerm((warped,), (torch.ones(1, 1, H, W),), weight=0.0)
    loss = term(x)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert x.grad is not None and torch.count_nonzero(x.grad) == 0
