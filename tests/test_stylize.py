"""The coarse-to-fine optimiser: real runs on tiny images."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
import torch
from conftest import pattern_image

from strotss_video.config import StrotssConfig
from strotss_video.errors import ConfigError, Notice
from strotss_video.io.image import read_image
from strotss_video.pipeline.image import stylize_image
from strotss_video.stylize import step as step_module
from strotss_video.stylize.guidance import build_guidance
from strotss_video.stylize.optimize import (
    ScaleStep,
    StyleBank,
    default_plan,
    final_scale_plan,
    fit_scales,
    stylize,
)
from strotss_video.stylize.pyramid import laplacian_band

TINY = StrotssConfig(max_size=32, scales=2, iters=3, output_points=64, style_points=128)


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 24, 32, generator=g), torch.rand(1, 3, 40, 40, generator=g)


def test_default_plan_follows_the_reference_schedule() -> None:
    plan = default_plan(StrotssConfig())
    assert [s.long_side for s in plan] == [64, 128, 256, 512]
    assert [s.alpha for s in plan] == [16.0, 8.0, 4.0, 2.0]
    assert [s.lr for s in plan] == [2e-3, 2e-3, 2e-3, 1e-3]
    assert [s.add_content_band for s in plan] == [True, True, True, False]
    assert all(s.iters == 250 for s in plan)
    warm = final_scale_plan(StrotssConfig(), 40)
    assert len(warm) == 1 and warm[0].long_side == 512 and warm[0].iters == 40
    assert not warm[0].add_content_band and warm[0].lr == 1e-3


def test_runs_every_scale_and_is_deterministic(tiny_extractor: torch.nn.Module) -> None:
    content, style = _images()
    runs = [stylize(content, StyleBank(tiny_extractor, style, TINY, seed=5), tiny_extractor, TINY,
                    seed=5, progress=False) for _ in range(2)]
    assert runs[0].image.shape == (1, 3, 24, 32)
    assert [s.long_side for s in runs[0].scales] == [16, 32]
    assert runs[0].iterations == 6
    assert torch.equal(runs[0].image, runs[1].image)
    assert 0.0 <= float(runs[0].image.min()) and float(runs[0].image.max()) <= 1.0


def test_first_scale_starts_from_style_mean_plus_content_band(tiny_extractor: torch.nn.Module) -> None:
    content, style = _images()
    bank = StyleBank(tiny_extractor, style, TINY)
    # Zero iterations: the result is the initial canvas itself (then clamped).
    plan = [ScaleStep(32, 0, 1e-3, 2.0, add_content_band=True)]
    out = stylize(content, bank, tiny_extractor, TINY, plan=plan, progress=False).image
    expected = (style.mean(dim=(2, 3), keepdim=True) + laplacian_band(content)).clamp(0, 1)
    assert torch.allclose(out, expected, atol=1e-5)


def test_warm_start_uses_the_given_initial_image(tiny_extractor: torch.nn.Module) -> None:
    content, style = _images()
    bank = StyleBank(tiny_extractor, style, TINY)
    init = torch.rand(1, 3, 24, 32)
    same = stylize(content, bank, tiny_extractor, TINY, plan=final_scale_plan(TINY, 0), init=init,
                   progress=False)
    assert torch.allclose(same.image, init, atol=1e-5)
    moved = stylize(content, bank, tiny_extractor, TINY, plan=final_scale_plan(TINY, 5), init=init,
                    progress=False)
    assert len(moved.scales) == 1 and moved.scales[0].iterations == 5
    change = (moved.image - init).abs().mean()
    assert 0 < float(change) < 0.05  # optimised from the init, not restarted


def test_rate_map_scales_how_far_each_pixel_moves(tiny_extractor: torch.nn.Module) -> None:
    """``rate`` is a per-pixel learning-rate multiplier: all ones changes nothing; RMSprop's
    first step moves every coefficient by about 10 lr whatever its gradient, so a uniform rate
    of 2 moves the image twice as far; a rate raised on one half moves that half further."""
    content, style = _images()
    bank = StyleBank(tiny_extractor, style, TINY)
    # Mid-grey start: no pixel reaches the [0, 1] clamp in one step.
    init = 0.3 + 0.4 * torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(1))

    def change(rate: torch.Tensor | None, iters: int = 1) -> torch.Tensor:
        out = stylize(content, bank, tiny_extractor, TINY, plan=final_scale_plan(TINY, iters),
                      init=init, progress=False, rate=rate).image
        return (out - init).abs()

    plain = change(None, 3)
    assert torch.equal(change(torch.ones(1, 1, 24, 32), 3), plain)
    one, two = change(None), change(torch.full((1, 1, 24, 32), 2.0))
    assert float(two.mean() / one.mean()) == pytest.approx(2.0, rel=0.02)
    half = torch.ones(1, 1, 24, 32)
    half[..., :16] = 4.0
    raised = change(half)
    # The coarse levels see the mean rate of larger areas, so the halves do not separate fully.
    left, right = float(raised[..., :16].mean()), float(raised[..., 16:].mean())
    assert left > 3.0 * float(one[..., :16].mean())  # ~3.7: most of the raised rate
    assert right < 2.0 * float(one[..., 16:].mean())  # ~1.4: the coarse levels' spill-over
    assert left > 1.5 * right


def test_autotune_final_times_algorithms_for_the_last_scale_only(
        tiny_extractor: torch.nn.Module) -> None:
    """``autotune="final"``: cuDNN's benchmark flag is off for the style targets and the
    coarser scales, on for the last scale (the one warm frames reuse), and restored after;
    without it the caller's flag is left alone. The flag is read at each forward."""
    content, style = _images()
    seen: list[tuple[int, bool]] = []

    class Recording(torch.nn.Module):
        strides = tiny_extractor.strides

        def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
            seen.append((max(image.shape[-2:]), torch.backends.cudnn.benchmark))
            return tiny_extractor(image)

    recording = Recording()
    before = torch.backends.cudnn.benchmark
    try:
        for caller_flag in (False, True):
            torch.backends.cudnn.benchmark = caller_flag
            seen.clear()
            bank = StyleBank(recording, style, TINY)  # type: ignore[arg-type]
            stylize(content, bank, recording, TINY, progress=False,  # type: ignore[arg-type]
                    autotune="final")
            assert torch.backends.cudnn.benchmark is caller_flag
            plan = default_plan(TINY)
            last = plan[-1].long_side
            # The first forward of each scale is its style target's: never timed.
            firsts = {side: flag for side, flag in reversed(seen)}
            assert set(firsts) == {s.long_side for s in plan} and not any(firsts.values())
            assert all(flag for _, flag in seen[-TINY.iters:]) and seen[-1][0] == last
            coarse = [flag for side, flag in seen if side != last]
            assert coarse and not any(coarse)
            seen.clear()
            stylize(content, bank, recording, TINY, progress=False)
            assert seen and all(flag is caller_flag for _, flag in seen)
    finally:
        torch.backends.cudnn.benchmark = before


def test_content_similarity_is_precomputed_only_when_it_is_less_work() -> None:
    # 5800 candidates, 1024 points: one big product costs as much as ~32 per-step ones.
    assert not step_module.precompute_similarity(5800, 1024, 10)
    assert step_module.precompute_similarity(5800, 1024, 40)
    assert step_module.precompute_similarity(500, 1024, 1)  # fewer candidates than points
    assert not step_module.precompute_similarity(9000, 1024, 250)  # over the memory cap


def test_precomputed_and_per_step_content_targets_agree(tiny_extractor: torch.nn.Module,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    content, style = _images()
    cfg = StrotssConfig(max_size=32, scales=1, iters=40, output_points=256, style_points=64)
    # 24x32 has 768 candidates: 40 steps of 256 points make the precomputation pay.
    assert step_module.precompute_similarity(24 * 32, 256, 40)
    bank = StyleBank(tiny_extractor, style, cfg)
    precomputed = stylize(content, bank, tiny_extractor, cfg, progress=False)
    monkeypatch.setattr(step_module, "PRECOMPUTE_SIMILARITY_MAX", 0)
    per_step = stylize(content, bank, tiny_extractor, cfg, progress=False)
    torch.testing.assert_close(per_step.image, precomputed.image, rtol=0, atol=1e-5)
    assert per_step.scales[0].losses["content"] == pytest.approx(
        precomputed.scales[0].losses["content"], rel=1e-4)


def test_style_targets_are_computed_once_per_scale(tiny_extractor: torch.nn.Module) -> None:
    _, style = _images()
    bank = StyleBank(tiny_extractor, style, TINY)
    first = bank.targets(32)
    assert bank.targets(32) is first
    target = first[0]
    assert target.unit.shape == (TINY.style_points, tiny_extractor.dim)
    assert torch.allclose(target.unit.norm(dim=1), torch.ones(TINY.style_points), atol=1e-5)
    assert torch.equal(target.unit_t, target.unit.t())


def test_region_guidance_runs_per_region(tiny_extractor: torch.nn.Module) -> None:
    content, style = _images()
    cmask = torch.zeros(1, 3, 24, 32)
    cmask[:, 0, :, :16] = 1.0  # left red, right black
    smask = torch.zeros(1, 3, 40, 40)
    smask[:, 0, :20] = 1.0  # top red, bottom black
    cfg = StrotssConfig(max_size=32, scales=1, iters=2, output_points=64, style_points=64,
                        min_region_pixels=50)
    guidance = build_guidance(cmask, smask, cfg.min_region_pixels)
    assert guidance.regions == 2
    bank = StyleBank(tiny_extractor, style, cfg, guidance=guidance)
    assert len(bank.targets(32)) == 2
    out = stylize(content, bank, tiny_extractor, cfg, guidance=guidance, progress=False)
    assert out.image.shape == content.shape and torch.isfinite(out.image).all()


@pytest.mark.weights
def test_real_weights_64px_lowers_the_style_loss(content_png: Path, style_png: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    result = stylize_image(content_png, style_png, out, max_size=64, scales=2, iters=40,
                           output_points=512, style_points=2000, device="cpu", progress=False)
    decoded = cv2.imread(str(out))
    assert decoded is not None and decoded.shape == (48, 64, 3)
    assert torch.allclose(read_image(out), result.image, atol=1 / 255)
    first, last = result.stats["scales"][0], result.stats["scales"][-1]

    def style_loss(terms: dict[str, float]) -> float:
        return terms["remd"] + terms["moment"] + terms["palette"]

    assert style_loss(last["losses"]) < 0.7 * style_loss(first["initial_losses"])
    for scale in result.stats["scales"]:  # and within every scale
        assert style_loss(scale["losses"]) < 0.85 * style_loss(scale["initial_losses"])
        assert scale["losses"]["total"] < scale["initial_losses"]["total"]
    assert result.stats["iterations"] == 80
    assert result.stats["vgg_seconds"] > 0 and result.stats["loss_seconds"] > 0


def test_scales_too_small_for_vgg_are_refused_up_front() -> None:
    from strotss_video.stylize.optimize import check_scale_sizes

    plan = default_plan(StrotssConfig(max_size=64, scales=2))  # 32 then 64 px long side
    check_scale_sizes(48, 64, plan)  # 24x32 at the first scale: fine
    with pytest.raises(ConfigError, match="below the 16 px"):
        check_scale_sizes(20, 64, plan)  # 10x32 at the first scale


def test_fit_scales_drops_the_coarsest_and_keeps_the_rest_as_they_were() -> None:
    """At 64x48 the default 8 and 16 px scales would be 8x6 and 16x12: dropped, with one
    notice; the 32 and 64 px scales keep their weights bit for bit, warm plans included."""
    cfg = StrotssConfig(max_size=64, scales=4, content_weight=0.7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = fit_scales(cfg, 48, 64)
    assert [(w.category, str(w.message)) for w in caught] == [
        (Notice, "dropped the 8, 16 px scales: their frames (8x6, 16x12) would be below the "
                 "16 px VGG needs; running the 32, 64 px scales")]
    assert fitted.scale_sizes() == [32, 64]
    assert default_plan(fitted) == default_plan(cfg)[2:]
    assert final_scale_plan(fitted, 5) == final_scale_plan(cfg, 5)
    with pytest.warns(Notice, match=r"the 16 px scale: its frame \(16x9\)"):
        assert fit_scales(StrotssConfig(max_size=64, scales=3), 36, 64).scale_sizes() == [32, 64]


def test_fit_scales_leaves_a_schedule_that_fits_alone() -> None:
    cfg = StrotssConfig(max_size=64, scales=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_scales(cfg, 48, 64) is cfg
        # A smaller extractor (coarsest stride 2) fits every scale.
        assert fit_scales(StrotssConfig(max_size=16, scales=4), 12, 16, min_side=2).scales == 4


def test_fit_scales_refuses_a_frame_no_scale_fits() -> None:
    with pytest.raises(ConfigError, match="at --max-size 16 the frame would be 16x12, below "
                                          "the 16 px VGG needs"):
        fit_scales(StrotssConfig(max_size=16, scales=2), 12, 16)


@torch.no_grad()
def _measured_terms(output: torch.Tensor, content: torch.Tensor, bank: StyleBank,
                    extractor: torch.nn.Module, draws: int = 4, points: int = 512
                    ) -> tuple[float, float]:
    """(style, content) terms of ``output`` (1,3,h,w), the mean of ``draws`` fixed draws of
    ``points`` pixels, measured by ``extractor``: one measurement for results of two runs."""
    from strotss_video.features.sampling import random_pixels, read_bilinear
    from strotss_video.losses import strotss_loss
    from strotss_video.losses.content import self_similarity
    from strotss_video.losses.ops import unit_rows

    h, w = output.shape[-2:]
    maps, cmaps = extractor(output), extractor(content)
    targets = bank.targets(max(h, w))
    style, cont = 0.0, 0.0
    for draw in range(draws):
        at = random_pixels(h, w, points, torch.Generator().manual_seed(100 + draw))
        feats = read_bilinear(maps, extractor.strides, at)
        similarity = self_similarity(unit_rows(read_bilinear(cmaps, extractor.strides, at)))
        terms = strotss_loss(feats, similarity, targets, alpha=1.0)
        style, cont = style + float(terms.style) / draws, cont + float(terms.content) / draws
    return style, cont


@pytest.mark.weights
def test_mixed_precision_extractor_keeps_maps_float32_and_losses_close() -> None:
    """bfloat16 VGG (runtime.precision=mixed) returns float32 maps within ~1% of float32's and
    changes the optimised result's losses only slightly; the model is restored to float32.

    The results of both runs are measured alike (float32 VGG, 4 draws of 512 points): the last
    step's own loss terms are one draw of 128 points, each measured by its own model, and on an
    AVX2-only CPU their content term moved 8.7% between the two trajectories while the same
    measurement of both images differed by under 3%. Each term is compared as a mean over three
    seeds of 512-point runs: one trajectory is too chaotic for a 5% bound (on a CPU with native
    bfloat16, seed 2 of 128-point runs ended 10% apart in content, while float32 alone spread
    0.048-0.062 over eight seeds and the mixed / float32 ratio had median 0.99)."""
    from strotss_video.config import RuntimeConfig
    from strotss_video.pipeline.runtime import extractor_for

    cfg = StrotssConfig(max_size=64, scales=1, iters=15, output_points=512, style_points=1024)
    content, style = (torch.from_numpy(pattern_image(h, 64, seed)).permute(2, 0, 1)[None] / 255.0
                      for h, seed in ((48, 1), (64, 2)))
    seeds = (0, 1, 2)
    results, maps = {}, {}
    for precision in ("float32", "mixed"):
        model, _ = extractor_for(RuntimeConfig(precision=precision), torch.device("cpu"), None,
                                 False)
        maps[precision] = model(content)
        assert all(m.dtype == torch.float32 for m in maps[precision])
        bank = StyleBank(model, style, cfg, seed=1)
        results[precision] = [stylize(content, bank, model, cfg, seed=s, progress=False).image
                              for s in seeds]
    # Explicit float32: "auto" resolves to mixed on CPUs with native bfloat16.
    model, _ = extractor_for(RuntimeConfig(precision="float32"), torch.device("cpu"), None, False)
    assert model.autocast is None
    for f32, mixed in zip(maps["float32"], maps["mixed"]):
        assert float((mixed - f32).norm() / f32.norm()) < 0.02
    bank = StyleBank(model, style, cfg, seed=1)
    f32, mixed = ([_measured_terms(image, content, bank, model) for image in results[p]]
                  for p in ("float32", "mixed"))
    for k, name in enumerate(("style", "content")):
        mean_mixed = sum(t[k] for t in mixed) / len(seeds)
        mean_f32 = sum(t[k] for t in f32) / len(seeds)
        assert mean_mixed == pytest.approx(mean_f32, rel=0.05), name


def test_low_precision_extractor_matches_autocast_bit_for_bit() -> None:
    """``autocast = bfloat16`` runs a bfloat16 copy of the body (made once) instead of casting
    every weight at every forward: the maps and the image gradient are exactly what autocast
    over the float32 body gives, and switching back to float32 uses the float32 body."""
    from torchvision.models.vgg import cfgs, make_layers

    from strotss_video.features.vgg import VGGHypercolumns, forward_under_autocast

    torch.manual_seed(0)
    model = VGGHypercolumns(make_layers(cfgs["D"], batch_norm=False)).to(
        memory_format=torch.channels_last)
    image = torch.rand(1, 3, 40, 56)

    def maps_and_grad(run: Callable[[torch.Tensor], list[torch.Tensor]]
                      ) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = image.clone().requires_grad_(True)
        maps = run(x)
        torch.autograd.backward(maps[1:], [torch.cos(torch.arange(m.numel()).view_as(m) * 0.1)
                                           for m in maps[1:]])
        return [m.detach() for m in maps], x.grad

    ref_maps, ref_grad = maps_and_grad(lambda x: forward_under_autocast(model, x))
    model.autocast = torch.bfloat16
    low_maps, low_grad = maps_and_grad(model)
    assert all(m.dtype == torch.float32 for m in low_maps)
    for a, b in zip(low_maps, ref_maps):
        assert torch.equal(a, b)
    assert torch.equal(low_grad, ref_grad)
    assert len(model._low) == 1 and next(model.parameters()).dtype == torch.float32
    model.autocast = None
    f32_maps, _ = maps_and_grad(model)
    assert not all(torch.equal(a, b) for a, b in zip(f32_maps[1:], low_maps[1:]))


def _random_vgg() -> torch.nn.Module:
    """VGG16 hypercolumns with random weights (no download), channels-last as built."""
    from torchvision.models.vgg import cfgs, make_layers

    from strotss_video.features.vgg import VGGHypercolumns

    torch.manual_seed(0)
    return VGGHypercolumns(make_layers(cfgs["D"], batch_norm=False)).to(
        memory_format=torch.channels_last)


@pytest.mark.parametrize("autocast,grad_tol", [(None, 1e-5), (torch.bfloat16, 0.02)])
def test_vgg_columns_match_reads_of_its_maps(autocast: torch.dtype | None,
                                             grad_tol: float) -> None:
    """``columns`` reads inside the forward: the same float32 values as reading the returned
    maps, and the image gradient of a loss on them the same (up to sum order in float32; in
    bfloat16 each row is rounded before it is added, far inside bfloat16's own error)."""
    from strotss_video.features.sampling import random_pixels, read_bilinear_columns

    model = _random_vgg()
    model.autocast = autocast
    image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    points = random_pixels(40, 56, 200, torch.Generator().manual_seed(2))
    probe = torch.randn(200, model.dim, generator=torch.Generator().manual_seed(3))

    # The reference: plain autograd through reads of the returned maps.
    x_ref = image.clone().requires_grad_(True)
    want = torch.cat(read_bilinear_columns(model(x_ref), model.strides, points), dim=1)
    (want.square() * probe).sum().backward()

    x = image.clone().requires_grad_(True)
    got = torch.cat(model.columns(x, points), dim=1)
    assert got.dtype == torch.float32 and torch.equal(got, want.detach())
    (got.square() * probe).sum().backward()
    assert float((x.grad - x_ref.grad).norm() / x_ref.grad.norm()) < grad_tol


class _MapsOnly(torch.nn.Module):
    """The same extractor without ``columns``: the optimiser reads its returned maps."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.strides, self.channels = inner.strides, inner.channels

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        return self.inner(image)


def test_stylize_with_tapped_reads_matches_reading_the_maps() -> None:
    """On CPU the optimiser reads through ``columns`` when the extractor has it: the result
    is what reading the returned maps gives, up to float32 sum order (which RMSprop's first
    steps, about ten times the learning rate whatever the gradient's size, can amplify for
    gradients near zero)."""
    model = _random_vgg()
    content, style = _images()
    cfg = StrotssConfig(max_size=32, scales=1, iters=4, output_points=64, style_points=128)
    results = []
    for extractor in (model, _MapsOnly(model)):
        bank = StyleBank(extractor, style, cfg, seed=0)
        results.append(stylize(content, bank, extractor, cfg, seed=3, progress=False).image)
    differ = float((results[0] - results[1]).abs().mean())
    assert differ < 1e-5 and float((results[0] - results[1]).abs().max()) < 1e-3
    assert float((results[0] - content).abs().mean()) > 100 * differ
