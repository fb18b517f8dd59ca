"""Tiny real media files for tests, generated on the fly with PyAV (tests only; the package
itself imports PyAV only inside ``strotss_video/io/``).

Main entry point::

    clip = make_clip(tmp_path / "a.mp4", frames=12, size=(66, 50), vfr=True, rotation=90)

writes a real video and returns a :class:`Clip` describing it: the upright RGB frames that were
encoded (before lossy compression), the exact timestamps as stored by the container, and the
true motion. Content is a textured, shape-filled canvas panned by a whole number of pixels per
frame, so frame ``i + 1`` equals frame ``i`` translated by ``clip.shift = (dx, dy)`` (in display
pixels, x right, y down) except for the strip entering at the border: ``frame[i+1][y + dy,
x + dx] == frame[i][y, x]``. ``pattern="cut"`` switches to an unrelated canvas halfway (a
shot cut at frame ``clip.cut``); ``pattern="static"`` never moves.

Other helpers: :func:`make_audio_only` (an .m4a/.mka with no video), :func:`make_jpeg`,
:func:`make_bilevel_png` (a tiny PNG declaring a huge image),
:func:`corrupt_packet` (damage one video packet in place), :func:`truncate` (cut a file),
:func:`demux_summary` (packet order/timestamps/bytes of a file, for comparisons).

Containers by extension: .mp4 / .mov (audio AAC) and .mkv (audio FLAC). Matroska stores times in
milliseconds, so its ``clip.times`` are the rounded values actually stored."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["Clip", "make_clip", "make_audio_only", "make_jpeg", "make_bilevel_png",
           "corrupt_packet", "truncate", "demux_summary", "PacketInfo", "upright_to_stored"]

# VFR gaps alternate between these (in 1/30000 s): 29.97 and 14.985 fps, like phone footage.
VFR_TIME_BASE = Fraction(1, 30000)
VFR_GAPS = (1001, 2002)
AUDIO_RATE = 48000


@dataclass(frozen=True)
class Clip:
    """A generated clip and the ground truth about it."""

    path: Path
    size: tuple[int, int]  # display (W, H)
    images: list[np.ndarray] = field(repr=False)  # upright uint8 RGB (H, W, 3) as encoded
    pts: list[int]  # stored presentation timestamps, in order
    time_base: Fraction  # stored video time base
    rotation: int  # clockwise degrees a player applies (what probe() should report)
    shift: tuple[int, int]  # per-frame translation (dx, dy) of the content, display pixels
    cut: int | None  # index of the first frame after a shot cut (pattern="cut"; else cuts[0])
    audio_codec: str | None
    rate: Fraction  # nominal rate (CFR rate, or the fast rate of a VFR clip)
    cuts: tuple[int, ...] = ()  # every frame index that starts a new shot (a new canvas)

    @property
    def times(self) -> list[Fraction]:
        """Exact presentation times in seconds, as stored."""
        return [p * self.time_base for p in self.pts]

    @property
    def frames(self) -> int:
        return len(self.images)

    def offset(self, i: int) -> tuple[int, int]:
        """Total content translation (x, y) of frame ``i`` relative to frame 0 (within a shot)."""
        k = i - max((c for c in self.cuts if c <= i), default=0)
        return (k * self.shift[0], k * self.shift[1])


def _canvas(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth texture plus a few solid shapes: trackable, compresses well, colours differ."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    chans = []
    for _ in range(3):
        fx, fy, ph = rng.uniform(0.08, 0.3), rng.uniform(0.08, 0.3), rng.uniform(0, 6)
        chans.append(0.5 + 0.3 * np.sin(fx * xs + ph) * np.cos(fy * ys + ph / 2))
    img = np.stack(chans, axis=-1)
    for _ in range(6):  # rectangles and discs with distinct colours
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        r = int(rng.integers(3, max(4, min(h, w) // 5)))
        colour = rng.uniform(0, 1, 3)
        if rng.random() < 0.5:
            img[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = colour
        else:
            img[(ys - cy) ** 2 + (xs - cx) ** 2 < r * r] = colour
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def upright_to_stored(image: np.ndarray, rotation: int) -> np.ndarray:
    """The stored (coded) picture that a player turns ``rotation`` degrees clockwise."""
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90))  # k>0: counter-clockwise


def _frames(n: int, w: int, h: int, shift: tuple[int, int], pattern: str, seed: int,
            cuts: tuple[int, ...]) -> list[np.ndarray]:
    dx, dy = shift if pattern != "static" else (0, 0)
    span = max(n, 1)
    pad_x, pad_y = abs(dx) * span + 1, abs(dy) * span + 1
    # Shot c shows canvas seed + 101 * c (the second one is what pattern="cut" always used).
    canvases = [_canvas(h + pad_y, w + pad_x, seed + 101 * c) for c in range(len(cuts) + 1)]
    out = []
    for i in range(n):
        c = sum(1 for b in cuts if b <= i)
        k = i - (cuts[c - 1] if c else 0)
        # Window origin moves by -shift so the content moves by +shift.
        x0 = (pad_x - 1 if dx > 0 else 0) - k * dx
        y0 = (pad_y - 1 if dy > 0 else 0) - k * dy
        out.append(np.ascontiguousarray(canvases[c][y0:y0 + h, x0:x0 + w]))
    return out


def make_clip(path: str | Path, frames: int = 12, size: tuple[int, int] = (66, 50),
              rate: Fraction = Fraction(30), vfr: bool = False, audio: bool | str = True,
              rotation: int = 0, codec: str = "libx264", pattern: str = "moving",
              shift: tuple[int, int] = (2, 1), pix_fmt: str | None = None,
              time_base: Fraction | None = None, audio_seconds: float | None = None,
              options: dict[str, str] | None = None,
              container_options: dict[str, str] | None = None, seed: int = 0,
              cuts: tuple[int, ...] | None = None) -> Clip:
    """Write a real video to ``path`` and describe it.

    ``size=(W, H)`` is the display size (after rotation). ``vfr`` stamps frames in 1/30000 s
    with gaps alternating 1001/2002; otherwise frames are ``1/rate`` apart in ``time_base``
    (default ``1/rate``). ``rotation`` (0/90/180/270, clockwise) is written as a display matrix
    and the stored picture is turned the other way, so decoders that honour it see
    ``clip.images``. ``audio``: ``True`` for the container's usual codec (AAC in mp4/mov, FLAC
    in mkv), a codec name (e.g. ``"pcm_s16le"``), or ``False``; a mono sine covering the video
    (or ``audio_seconds``). ``pix_fmt`` defaults to yuv420p, or yuv444p when a side is odd.
    ``codec`` may be any PyAV video encoder (e.g. ``"ffv1"``, ``"mjpeg"`` with
    ``pix_fmt="yuvj420p"``); ``options`` are its encoder options (x264/x265 default to crf 10,
    ultrafast) and ``container_options`` the muxer's (e.g. ``{"movflags": "+faststart"}``).
    """
    path = Path(path)
    w, h = size
    if rotation not in (0, 90, 180, 270):
        raise ValueError("rotation must be 0, 90, 180 or 270")
    if pattern not in ("moving", "static", "cut"):
        raise ValueError("pattern must be 'moving', 'static' or 'cut'")
    if cuts is None:
        cuts = (frames // 2,) if pattern == "cut" else ()
    elif pattern == "cut":
        raise ValueError("pass either pattern='cut' or cuts, not both")
    else:
        cuts = tuple(int(c) for c in cuts)
        if any(b <= a for a, b in zip(cuts, cuts[1:])) or any(not 0 < c < frames for c in cuts):
            raise ValueError(f"cuts must increase strictly inside (0, {frames}) (got {cuts})")
    images = _frames(frames, w, h, shift, pattern, seed, cuts)
    if vfr:
        tb = VFR_TIME_BASE
        pts = [0]
        for i in range(frames - 1):
            pts.append(pts[-1] + VFR_GAPS[i % 2])
        nominal = Fraction(30000, 1001)
    else:
        tb = time_base or 1 / Fraction(rate)
        step = 1 / (Fraction(rate) * tb)
        if step.denominator != 1:
            raise ValueError(f"time_base {tb} cannot express rate {rate}")
        pts = [i * int(step) for i in range(frames)]
        nominal = Fraction(rate)
    if pix_fmt is None:
        pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"

    container = av.open(str(path), mode="w", container_options=container_options or {})
    try:
        vs = container.add_stream(codec, rate=nominal)
        sw, sh = (h, w) if rotation in (90, 270) else (w, h)
        vs.width, vs.height, vs.pix_fmt = sw, sh, pix_fmt
        vs.time_base = tb
        vs.codec_context.time_base = tb
        if codec in ("libx264", "libx265"):
            vs.codec_context.options = {"crf": "10", "preset": "ultrafast", **(options or {})}
        elif options:
            vs.codec_context.options = dict(options)
        if rotation:
            # PyAV's angle is counter-clockwise (as VideoFrame.rotation reads it back); a player
            # turns the picture clockwise by its negation.
            vs.set_display_rotation(-rotation)
        audio_codec = None
        if audio:
            audio_codec = audio if isinstance(audio, str) else (
                "flac" if path.suffix.lower() == ".mkv" else "aac")
            ast = container.add_stream(audio_codec, rate=AUDIO_RATE)
            ast.layout = "mono"
        for img, p in zip(images, pts):
            frame = av.VideoFrame.from_ndarray(upright_to_stored(img, rotation), format="rgb24")
            frame.pts, frame.time_base = p, tb
            container.mux(vs.encode(frame))
        container.mux(vs.encode(None))
        if audio:
            seconds = audio_seconds if audio_seconds is not None else float(
                (pts[-1] + (pts[1] - pts[0] if frames > 1 else 1)) * tb)
            _write_sine(container, ast, seconds)
    finally:
        container.close()
    stored_pts, stored_tb = _stored_video_pts(path)
    return Clip(path=path, size=(w, h), images=images, pts=stored_pts, time_base=stored_tb,
                rotation=rotation, shift=(0, 0) if pattern == "static" else tuple(shift),
                cut=cuts[0] if cuts else None, audio_codec=audio_codec, rate=nominal,
                cuts=cuts)


def _write_sine(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                seconds: float) -> None:
    total = int(round(seconds * AUDIO_RATE))
    fmt = stream.format.name
    chunk, start = 1024, 0
    while start < total:
        n = min(chunk, total - start)
        t = np.arange(start, start + n) / AUDIO_RATE
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        if fmt.startswith("s16"):
            data = (wave * 32767).astype(np.int16)
        elif fmt.startswith("s32"):
            data = (wave * 2**31 * 0.99).astype(np.int32)
        else:
            data = wave
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts, frame.time_base = start, Fraction(1, AUDIO_RATE)
        container.mux(stream.encode(frame))
        start += n
    container.mux(stream.encode(None))


def _stored_video_pts(path: Path) -> tuple[list[int], Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        pts = sorted(p.pts for p in c.demux(s) if p.pts is not None)
        return pts, Fraction(s.time_base)


def make_audio_only(path: str | Path, seconds: float = 0.3) -> Path:
    """An audio-only file (.m4a -> AAC, .mka -> FLAC) with a sine tone."""
    path = Path(path)
    codec = "flac" if path.suffix.lower() == ".mka" else "aac"
    fmt = "matroska" if codec == "flac" else "mp4"
    with av.open(str(path), mode="w", format=fmt) as c:
        s = c.add_stream(codec, rate=AUDIO_RATE)
        s.layout = "mono"
        _write_sine(c, s, seconds)
    return path


def make_jpeg(path: str | Path, size: tuple[int, int] = (32, 24)) -> Path:
    """A real JPEG still (what a user might pass as a video by mistake)."""
    path = Path(path)
    w, h = size
    frame = av.VideoFrame.from_ndarray(_canvas(h, w, 3), format="rgb24")
    with av.open(str(path), mode="w", format="image2") as c:
        s = c.add_stream("mjpeg", rate=1)
        s.width, s.height, s.pix_fmt = w, h, "yuvj420p"
        c.mux(s.encode(frame.reformat(format="yuvj420p")))
        c.mux(s.encode(None))
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_bilevel_png(path: str | Path, width: int, height: int, pixels: bool = True) -> Path:
    """A black 1-bit PNG of ``width`` x ``height``: 16000x16000 takes 31 KB, decoded 768 MB as
    8-bit RGB. ``pixels=False`` writes the header alone (no image data: any size, instantly)."""
    path = Path(path)
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
    data = b""
    if pixels:
        row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
        packer = zlib.compressobj(9)
        data = _png_chunk(b"IDAT", b"".join(packer.compress(row) for _ in range(height)) +
                          packer.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + data + _png_chunk(b"IEND", b""))
    return path


def truncate(path: str | Path, fraction: float = 0.5, dest: str | Path | None = None) -> Path:
    """Keep the first ``fraction`` of the bytes (in place, or written to ``dest``)."""
    src = Path(path)
    data = src.read_bytes()
    out = Path(dest) if dest is not None else src
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def corrupt_packet(path: str | Path, index: int) -> int:
    """Overwrite the payload of the ``index``-th video packet (file order) with garbage, keeping
    the container intact. Returns that packet's pts."""
    path = Path(path)
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size, p.pts) for p in c.demux(video=0) if p.size]
    pos, size, pts = packets[index]
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(index)
    keep = min(8, size // 4)  # keep the first bytes (sizes, headers) so only the data is bad
    data[pos + keep:pos + size] = rng.integers(0, 256, size - keep, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return pts


@dataclass(frozen=True)
class PacketInfo:
    """One demuxed packet, for comparing files."""

    kind: str  # "video" or "audio"
    stream: int  # index among streams of that kind
    pts: int | None
    dts: int | None
    duration: int
    time_base: Fraction
    data: bytes = field(repr=False)

    @property
    def time(self) -> Fraction | None:
        stamp = self.pts if self.pts is not None else self.dts
        return None if stamp is None else stamp * self.time_base


def demux_summary(path: str | Path) -> list[PacketInfo]:
    """All packets of a file in demux (file) order, without decoding."""
    out = []
    with av.open(str(path)) as c:
        order = {s.index: i for i, s in enumerate(c.streams.video)}
        order.update({s.index: i for i, s in enumerate(c.streams.audio)})
        for p in c.demux():
            if p.size == 0 or p.stream.type not in ("video", "audio"):
                continue
            out.append(PacketInfo(kind=p.stream.type, stream=order[p.stream.index], pts=p.pts,
                                  dts=p.dts, duration=p.duration or 0,
                                  time_base=Fraction(p.time_base), data=bytes(p)))
    return out
