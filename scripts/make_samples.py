#!/usr/bin/env python
"""Generate the demo's sample inputs (no third-party data): a content scene, a style image
and a short clip panning across the scene.

    python scripts/make_samples.py OUT_DIR [--frames N]
        -> OUT_DIR/content.png, OUT_DIR/style.png, OUT_DIR/clip.mp4
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


def content_scene(h: int = 384, w: int = 512, seed: int = 0, sun: bool = True) -> np.ndarray:
    """A simple landscape: sky gradient, sun, hills, a house and a tree. BGR uint8."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None, None]
    sky = (1 - y) * np.array([235, 190, 120]) + y * np.array([250, 230, 200])
    img = np.broadcast_to(sky, (h, w, 3)).astype(np.float64).copy()
    img = img.astype(np.uint8)
    if sun:
        cv2.circle(img, (int(w * 0.78), int(h * 0.2)), int(h * 0.09), (80, 200, 255), -1,
                   cv2.LINE_AA)
    xs = np.arange(w)
    for k, (base, amp, colour) in enumerate([(0.62, 0.08, (90, 150, 80)), (0.75, 0.05, (60, 120, 50))]):
        ridge = (h * (base + amp * np.sin(xs / w * (5 + 3 * k) + k))).astype(np.int32)
        pts = np.concatenate([np.stack([xs, ridge], 1), [[w - 1, h - 1], [0, h - 1]]]).astype(np.int32)
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    x0, y0 = int(w * 0.22), int(h * 0.58)
    cv2.rectangle(img, (x0, y0), (x0 + 90, y0 + 70), (70, 90, 200), -1)
    cv2.fillPoly(img, [np.array([[x0 - 10, y0], [x0 + 45, y0 - 45], [x0 + 100, y0]], np.int32)],
                 (40, 40, 120), cv2.LINE_AA)
    cv2.rectangle(img, (x0 + 35, y0 + 30), (x0 + 55, y0 + 70), (30, 50, 90), -1)
    tx, ty = int(w * 0.62), int(h * 0.62)
    cv2.rectangle(img, (tx - 6, ty), (tx + 6, ty + 60), (30, 60, 100), -1)
    cv2.circle(img, (tx, ty - 10), 38, (40, 110, 40), -1, cv2.LINE_AA)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def style_strokes(size: int = 512, seed: int = 1) -> np.ndarray:
    """Swirling coloured brush strokes on a warm ground. BGR uint8."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), (40, 70, 110), np.uint8)
    palette = np.array([(30, 40, 170), (40, 160, 230), (160, 90, 30), (200, 200, 230),
                        (60, 130, 60), (20, 20, 40)])
    for _ in range(900):
        cx, cy = rng.uniform(0, size, 2)
        angle = np.arctan2(cy - size / 2, cx - size / 2) + np.pi / 2 + rng.normal(0, 0.3)
        length = rng.uniform(15, 45)
        dx, dy = np.cos(angle) * length, np.sin(angle) * length
        colour = tuple(int(c) for c in np.clip(palette[rng.integers(len(palette))]
                                               + rng.normal(0, 18, 3), 0, 255))
        cv2.line(img, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), colour,
                 int(rng.integers(3, 9)), cv2.LINE_AA)
    return cv2.GaussianBlur(img, (3, 3), 0)


def write_clip(path: Path, frames: int, size: tuple[int, int] = (320, 240), rate: int = 24) -> None:
    """A camera pan across a wide version of the scene while the sun rises. H.264, no audio."""
    from strotss_video.io.writer import VideoWriter

    w, h = size
    wide = content_scene(h, w * 2, seed=3, sun=False)
    time_base = Fraction(1, rate * 512)
    with VideoWriter(path, width=w, height=h, time_base=time_base, average_rate=Fraction(rate),
                     crf=16, preset="fast") as writer:
        for i in range(frames):
            x0 = int(round(i * (w - 1) / max(frames - 1, 1)))
            view = wide[:, x0:x0 + w].copy()
            cv2.circle(view, (w - 60 - i, 70 - i), 22, (60, 190, 255), -1, cv2.LINE_AA)
            writer.write(np.ascontiguousarray(view[..., ::-1]), i * 512)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="out/samples")
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "content.png"), content_scene())
    cv2.imwrite(str(out / "style.png"), style_strokes())
    write_clip(out / "clip.mp4", args.frames)
    for name in ("content.png", "style.png", "clip.mp4"):
        print(out / name)


if __name__ == "__main__":
    main()
