"""Shared fixtures: tiny real data made on the fly, and a small feature extractor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from strotss_video.features.vgg import VGGHypercolumns

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class TinyExtractor(nn.Module):
    """A small random conv net with the extractor protocol: maps at strides 1, 1, 2."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.requires_grad_(False)
        self.strides = (1, 1, 2)
        self.channels = (3, 8, 16)

    @property
    def dim(self) -> int:
        return sum(self.channels)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        a = torch.relu(self.conv1(image))
        b = torch.relu(self.conv2(nn.functional.max_pool2d(a, 2)))
        return [image, a, b]


@pytest.fixture
def tiny_extractor() -> TinyExtractor:
    return TinyExtractor()


@pytest.fixture(scope="session")
def vgg_extractor() -> VGGHypercolumns:
    """The real VGG16 hypercolumn extractor (weights resolved offline by `make setup`)."""
    from strotss_video.config import RuntimeConfig
    from strotss_video.pipeline.runtime import load_extractor

    return load_extractor(RuntimeConfig(), torch.device("cpu"), progress=False).model  # type: ignore[return-value]


def pattern_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth coloured test pattern, uint8 RGB (h,w,3)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w] / max(h, w)
    chans = [0.5 + 0.4 * np.sin(rng.uniform(4, 14) * xs + rng.uniform(4, 14) * ys + rng.uniform(0, 6))
             for _ in range(3)]
    img = np.stack(chans, axis=-1) + rng.uniform(0, 0.08, (h, w, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def save_rgb(path: Path, rgb: np.ndarray) -> Path:
    import cv2

    assert cv2.imwrite(str(path), rgb[..., ::-1].copy())
    return path


@pytest.fixture
def content_png(tmp_path: Path) -> Path:
    return save_rgb(tmp_path / "content.png", pattern_image(48, 64, seed=1))


@pytest.fixture
def style_png(tmp_path: Path) -> Path:
    return save_rgb(tmp_path / "style.png", pattern_image(64, 64, seed=2))


@pytest.fixture(autouse=True)
def _work_root(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work directories of every test (and of CLI subprocesses) under a temporary root."""
    root = tmp_path_factory.mktemp("work")
    monkeypatch.setenv("STROTSS_WORK_DIR", str(root))
    return root
