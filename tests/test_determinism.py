"""Deterministic output: the same finished frames always encode to the same bytes, and the same
command and seed give the same file (on the same machine and thread count)."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from strotss_video.io.writer import VideoWriter

# 37.5 macroblocks wide: x264's AVX-512 macroblock-tree code read past the end of such rows,
# and two encodes of the same frames differed (see strotss_video.io.encoding).
H, W, FRAMES = 160, 600, 24


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Noisy waves panned 3 px right and 1 px down per frame: real motion for x264's lookahead
    and macroblock tree; uint8 RGB (H, W, 3)."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:2 * H, 0:4 * W].astype(np.float32)
    waves = np.stack([128 + 100 * np.sin(xs / 17 + ys / 23), 128 + 100 * np.sin(xs / 11 - ys / 7),
                      128 + 80 * np.cos((xs + ys) / 29)], axis=-1)
    canvas = np.clip(waves + rng.normal(0, 8, waves.shape), 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(canvas[i:i + H, 3 * i:3 * i + W]) for i in range(FRAMES)]


def encode(frames: list[np.ndarray], path: Path) -> str:
    """Write ``frames`` at the writer's default settings (25 fps); the file's SHA-256."""
    with VideoWriter(path, width=W, height=H, time_base=Fraction(1, 1000),
                     average_rate=Fraction(25)) as writer:
        for i, image in enumerate(frames):
            writer.write(image, i * 40)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".mov"])
def test_the_same_frames_give_the_same_file(frames: list[np.ndarray], tmp_path: Path,
                                            ext: str) -> None:
    digests = {encode(frames, tmp_path / f"out{k}{ext}") for k in range(8)}
    assert len(digests) == 1, f"{len(digests)} different files from the same frames"
