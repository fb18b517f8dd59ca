"""Tests of still-image reading and writing (strotss_video.io.image).

``read_image`` converts every common layout (grey, RGBA, palette, 16-bit, CMYK) to float32 RGB
(1,3,H,W) in [0,1] instead of rejecting it; ``write_image`` is exact for uint8 values and
atomic."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from clitools import run_cli
from conftest import pattern_image, save_rgb
from PIL import Image

from strotss_video.errors import InputError, OutputError
from strotss_video.io import image as image_io
from strotss_video.io.image import read_image, write_image
from strotss_video.io.paths import WRITABLE_EXTENSIONS

REPO = Path(__file__).resolve().parents[1]
H, W = 24, 32


def as_hwc(t: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) tensor -> (H,W,3) float array, after checking the read_image contract."""
    assert isinstance(t, torch.Tensor)
    assert t.dtype == torch.float32
    assert t.ndim == 4 and t.shape[:2] == (1, 3)
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    return t[0].permute(1, 2, 0).numpy()


@pytest.fixture
def rgb() -> np.ndarray:
    """uint8 RGB (H,W,3) whose three channels differ (catches BGR/RGB swaps)."""
    img = pattern_image(H, W, seed=7)
    assert not np.array_equal(img[..., 0], img[..., 2])
    return img


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


# --------------------------------------------------------------------------- read_image converts


def test_rgb_png_exact(tmp_path: Path, rgb: np.ndarray) -> None:
    out = as_hwc(read_image(save_rgb(tmp_path / "a.png", rgb)))
    assert out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, rgb.astype(np.float32) / 255)


def test_grey_png(tmp_path: Path, rgb: np.ndarray) -> None:
    grey = rgb[..., 1]
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    out = as_hwc(read_image(tmp_path / "g.png"))
    np.testing.assert_allclose(out, np.repeat(grey[..., None], 3, axis=2) / 255, atol=1e-6)


def test_rgba_png_composited_on_white(tmp_path: Path, rgb: np.ndarray) -> None:
    alpha = np.full((H, W), 255, np.uint8)
    alpha[:6, :6] = 0  # transparent
    alpha[6:12, :6] = 128  # half
    rgba = np.dstack([rgb, alpha])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = as_hwc(read_image(tmp_path / "a.png"))
    np.testing.assert_array_equal(out[:6, :6], 1.0)  # white, not the hidden RGB
    a = 128 / 255
    np.testing.assert_allclose(out[6:12, :6], rgb[6:12, :6] / 255 * a + (1 - a), atol=1e-5)
    np.testing.assert_allclose(out[12:], rgb[12:] / 255, atol=1e-6)  # opaque: unchanged


def test_grey_alpha_png(tmp_path: Path) -> None:
    la = np.zeros((H, W, 2), np.uint8)
    la[..., 0], la[..., 1] = 100, 255
    la[:5, :5, 1] = 0
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = as_hwc(read_image(tmp_path / "la.png"))
    np.testing.assert_array_equal(out[:5, :5], 1.0)
    np.testing.assert_allclose(out[10, 10], [100 / 255] * 3, atol=1e-6)


def test_palette_png(tmp_path: Path, rgb: np.ndarray) -> None:
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    expected = np.asarray(pal.convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_allclose(as_hwc(read_image(tmp_path / "p.png")), expected, atol=1e-6)


def test_palette_png_with_transparency(tmp_path: Path, rgb: np.ndarray) -> None:
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    index = pal.getpixel((0, 0))
    pal.save(tmp_path / "pt.png", transparency=index)
    out = as_hwc(read_image(tmp_path / "pt.png"))
    np.testing.assert_array_equal(out[0, 0], 1.0)  # the transparent index becomes white


def test_16bit_grey_png_keeps_depth(tmp_path: Path) -> None:
    values = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 83 % 65536).astype(np.uint16)
    values[0, 0], values[0, 1], values[0, 2] = 65535, 0, 25701  # 25701 = 257*100 + 1
    assert cv2.imwrite(str(tmp_path / "g16.png"), values)
    assert cv2.imread(str(tmp_path / "g16.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    out = as_hwc(read_image(tmp_path / "g16.png"))
    np.testing.assert_array_equal(out[0, 0], 1.0)
    np.testing.assert_array_equal(out[0, 1], 0.0)
    # 16-bit precision, not squashed to 8 bits (which would give 100/255 = 0.392157).
    np.testing.assert_allclose(out[0, 2], [25701 / 65535] * 3, rtol=0, atol=1e-7)
    np.testing.assert_allclose(out[..., 0], values / 65535, rtol=0, atol=1e-6)


def test_16bit_rgba_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    bgra = rng.integers(0, 65536, (H, W, 4), dtype=np.uint16)
    bgra[..., 3] = 65535
    bgra[:4, :4, 3] = 0
    assert cv2.imwrite(str(tmp_path / "c16.png"), bgra)
    out = as_hwc(read_image(tmp_path / "c16.png"))
    np.testing.assert_array_equal(out[:4, :4], 1.0)
    np.testing.assert_allclose(out[4:], bgra[4:, :, 2::-1] / 65535, rtol=0, atol=1e-6)


def test_cmyk_jpeg(tmp_path: Path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    diff = np.abs(as_hwc(read_image(tmp_path / "c.jpg")) * 255 - rgb)
    assert diff.mean() < 4, diff.mean()  # JPEG tolerance; inverted or swapped inks are ~100
    assert diff.max() < 32, diff.max()


def test_float_tiff_is_clipped(tmp_path: Path) -> None:
    bgr = np.linspace(-0.5, 1.5, H * W * 3, dtype=np.float32).reshape(H, W, 3)
    assert cv2.imwrite(str(tmp_path / "f.tiff"), bgr)
    out = as_hwc(read_image(tmp_path / "f.tiff"))
    np.testing.assert_allclose(out, np.clip(bgr[..., ::-1], 0, 1), atol=1e-6)


# --------------------------------------------------------------------------- read_image errors


@pytest.mark.parametrize("kind", ["missing", "directory", "text", "empty", "random-bytes",
                                  "truncated-png"])
def test_read_errors_are_one_line_input_errors(tmp_path: Path, rgb: np.ndarray, kind: str) -> None:
    path = tmp_path / "thing.png"
    if kind == "directory":
        path.mkdir()
    elif kind == "text":
        path.write_text("hello, this is not an image\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "truncated-png":
        path.write_bytes(save_rgb(tmp_path / "full.png", rgb).read_bytes()[:200])
    with pytest.raises(InputError) as info:
        read_image(path, "style image")
    message = str(info.value)
    assert message and "\n" not in message
    assert "style image" in message  # names the role it was given
    assert "thing.png" in message
    assert info.value.exit_code == 2


# --------------------------------------------------------------------------- write_image


def test_write_png_round_trip_exact(tmp_path: Path, rgb: np.ndarray) -> None:
    tensor = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
    path = tmp_path / "out.png"
    write_image(path, tensor)
    assert listing(tmp_path) == ["out.png"]  # no temporary file left beside it
    assert torch.equal(read_image(path), tensor)
    # A standard file: other readers see the same RGB (channel order on disk is right).
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), rgb)


def test_write_clamps_and_rounds(tmp_path: Path) -> None:
    values = torch.tensor([-0.5, 0.0, 0.5, 1.0, 1.5, 0.2 / 255])
    tensor = values.reshape(1, 1, 1, 6).expand(1, 3, 1, 6)
    write_image(tmp_path / "c.png", tensor)
    got = cv2.imread(str(tmp_path / "c.png"), cv2.IMREAD_UNCHANGED)[0, :, 0]
    assert got.tolist() == [0, 0, 128, 255, 255, 0]


@pytest.mark.parametrize("ext", WRITABLE_EXTENSIONS)
def test_every_writable_extension_writes(tmp_path: Path, rgb: np.ndarray, ext: str) -> None:
    tensor = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
    path = tmp_path / f"out{ext.upper()}"  # the extension's case does not matter
    write_image(path, tensor)
    assert listing(tmp_path) == [path.name]
    back = as_hwc(read_image(path))
    assert back.shape == (H, W, 3)
    assert np.abs(back * 255 - rgb).mean() < 8  # lossy formats included


def test_write_replaces_existing_file_atomically(tmp_path: Path, rgb: np.ndarray) -> None:
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    write_image(path, torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None])
    assert listing(tmp_path) == ["out.png"]
    assert cv2.imread(str(path)) is not None


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path, rgb: np.ndarray,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.png"
    path.write_bytes(b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(image_io.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_image(path, torch.zeros(1, 3, 4, 4))
    monkeypatch.undo()
    assert listing(tmp_path) == ["out.png"]
    assert path.read_bytes() == b"old"


@pytest.mark.parametrize("name", ["out.xyz", "out.txt", "out"])
def test_unencodable_extension_leaves_nothing(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError):
        write_image(tmp_path / name, torch.zeros(1, 3, 4, 4))
    assert listing(tmp_path) == []


@pytest.mark.parametrize("name", ["out.xyz", "out"])
def test_unencodable_extension_is_output_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError) as info:
        write_image(tmp_path / name, torch.zeros(1, 3, 4, 4))
    assert "\n" not in str(info.value)
    assert listing(tmp_path) == []


# --------------------------------------------------------------------------- through the CLI


def test_cli_converts_cmyk_jpeg_content_and_16bit_grey_style(tmp_path: Path) -> None:
    content = tmp_path / "content.jpg"
    Image.fromarray(pattern_image(48, 64, seed=1)).convert("CMYK").save(content, quality=95)
    grey = pattern_image(64, 64, seed=2)[..., 0].astype(np.float64)
    style16 = (grey * 257 * 0.999).astype(np.uint16)  # mostly not multiples of 257
    style = tmp_path / "style.png"
    assert cv2.imwrite(str(style), style16)
    out = tmp_path / "out.png"

    proc = run_cli("image", content, style, out, "--preset", "test", "--iters", "1", "--scales", "1",
                   "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written is not None and written.shape == (48, 64, 3) and written.dtype == np.uint8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content.jpg", "out.png", "style.png"]


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    """Atomic writes go through mkstemp (0600); the result must look like any new file."""
    old = os.umask(0o022)
    try:
        write_image(tmp_path / "a.png", torch.zeros(1, 3, 4, 4))
    finally:
        os.umask(old)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644
