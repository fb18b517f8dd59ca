"""Encoder settings: quality/speed options per codec, reproducible x264, and the checks that
refuse an encoder or pixel format before any work.

Reproducible x264: the same frames give the same bytes every time. x264 is deterministic for a
fixed thread count, except in its AVX-512 code: the macroblock-tree propagation works on 8
macroblocks per step without masking the end of a row, so when a frame's width in 16-pixel
macroblocks is not a multiple of 8 it adds in whatever lies in memory past the row, and two
encodes of the same frames differ. Its AVX2 code stops at the row's end. So x264 runs without
AVX-512, and with a fixed number of frame threads rather than a number chosen from the
machine's core count."""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any

import av
import av.error
import av.logging

from ..errors import OutputError

__all__ = ["ENCODER_PRESETS", "X264_THREADS", "check_encoder", "check_encoder_settings",
           "check_pix_fmt", "codec_options", "configure_threads"]

X264_THREADS = 8
"""x264 frame threads, fixed so the bytes written do not depend on the machine's cores."""

_X264 = ("libx264", "libx264rgb")
# x264-style preset names mapped to the speed knobs of encoders that have no such presets.
ENCODER_PRESETS = _PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
            "veryslow", "placebo")
_VPX_CPU_USED = dict(zip(_PRESETS, ("8", "7", "6", "5", "4", "3", "2", "1", "0", "0")))
_SVT_PRESET = dict(zip(_PRESETS, ("12", "11", "10", "9", "8", "7", "5", "4", "2", "1")))
_X264_CAPABILITIES = "using cpu capabilities:"


def codec_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """Quality/speed options that ``codec`` understands (others simply get none)."""
    if codec in _X264:
        options = {"crf": str(crf), "preset": preset}
        asm = _x264_asm_without_avx512()
        if asm:
            options["x264-params"] = f"asm={asm}"
        return options
    if codec == "libx265":
        return {"crf": str(crf), "preset": preset, "x265-params": "log-level=error"}
    if codec in ("libvpx-vp9", "libvpx", "libaom-av1"):
        # Constant-quality mode needs the bitrate cap switched off.
        return {"crf": str(crf), "b": "0", "cpu-used": _VPX_CPU_USED.get(preset, "3")}
    if codec == "libsvtav1":
        return {"crf": str(crf), "preset": _SVT_PRESET.get(preset, "7")}
    if codec in ("mpeg4", "mpeg2video", "mpeg1video", "mjpeg", "msmpeg4v3", "h263p"):
        # Fixed quantiser: crf 18 -> q 3 (visually clean), crf 51 -> q 9.
        q = min(31, max(2, round(crf / 6)))
        return {"flags": "+qscale", "global_quality": str(q * 118)}  # 118 = FF_QP2LAMBDA
    return {}


def configure_threads(codec_context: Any, codec: str) -> None:
    """Give x264 a fixed number of frame threads (with PyAV's default, x264 cuts every frame
    into one slice per core); other encoders keep their defaults."""
    if codec in _X264:
        codec_context.thread_type = "FRAME"
        codec_context.thread_count = X264_THREADS


@functools.cache
def _x264_asm_without_avx512() -> str | None:
    """x264's ``asm`` value for the instruction sets it detects here minus AVX-512, or None
    when it would use no AVX-512 anyway (or does not say what it uses)."""
    # x264 reports its detection only in its log, in the very names its `asm` option parses.
    names = _x264_capabilities()
    if names is None or "AVX512" not in names:
        return None
    return ",".join(n for n in names if n != "AVX512")


def _x264_capabilities() -> list[str] | None:
    """The instruction sets x264 detects, as its log line at encoder start names them."""
    try:
        ctx = av.CodecContext.create("libx264", "w")
    except (av.error.FFmpegError, ValueError):
        return None
    ctx.width, ctx.height, ctx.pix_fmt = 16, 16, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    level = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        with av.logging.Capture(local=False) as logs:
            ctx.open()
    except (av.error.FFmpegError, ValueError):
        return None
    finally:
        av.logging.set_level(level)
    for _, name, message in logs:
        if name == "libx264" and message.startswith(_X264_CAPABILITIES):
            return message[len(_X264_CAPABILITIES):].split()
    return None


def check_pix_fmt(pix_fmt: str, width: int, height: int) -> Any:
    """The ``av.VideoFormat`` of ``pix_fmt``; OutputError if unknown or if its subsampled
    chroma does not tile a ``width`` x ``height`` picture."""
    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, av.error.FFmpegError):
        raise OutputError(f"unknown pixel format {pix_fmt!r}; use yuv420p") from None
    # Subsampled chroma planes must tile the picture exactly or encoders refuse / crop.
    probe_fmt = av.VideoFormat(pix_fmt, 64, 64)
    chroma = [c for c in probe_fmt.components if c.is_chroma and c.width and c.height]
    step_w = max((64 // c.width for c in chroma), default=1)
    step_h = max((64 // c.height for c in chroma), default=1)
    if width % step_w or height % step_h:
        raise OutputError(f"{pix_fmt} needs a video size divisible by {step_w}x{step_h}, got "
                          f"{width}x{height}; resize to even dimensions")
    return fmt


def check_encoder(codec: str, pix_fmt: str = "yuv420p") -> None:
    """Refuse, before any work, an encoder this FFmpeg build lacks (OutputError, one line)."""
    try:
        c = av.Codec(codec, "w")
    except (ValueError, av.error.FFmpegError):
        raise OutputError(f"unknown video encoder {codec!r} for --codec; use libx264, libx265, "
                          "libvpx-vp9, mpeg4 or ffv1") from None
    if c.type != "video":
        raise OutputError(f"--codec {codec} is not a video encoder; use libx264")
    formats = c.video_formats
    if formats and pix_fmt not in {f.name for f in formats}:
        names = ", ".join(f.name for f in formats[:6])
        raise OutputError(f"--codec {codec} cannot encode {pix_fmt}; use one of {names}")


def check_encoder_settings(codec: str, crf: int, preset: str, pix_fmt: str = "yuv420p") -> None:
    """Refuse, before any work, encoder settings the encoder would reject only when the output
    is written: the codec and pixel format, the preset's name, then a trial open of the encoder
    with every option (OutputError, one line)."""
    check_encoder(codec, pix_fmt)
    if preset not in _PRESETS:
        raise OutputError(f"unknown --encoder-preset {preset!r}; use one of {', '.join(_PRESETS)}")
    ctx: Any = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = 64, 64, pix_fmt
    ctx.time_base = Fraction(1, 25)
    ctx.options = codec_options(codec, crf, preset)
    try:
        with av.logging.Capture(local=False):  # the encoder's own complaint would be a 2nd line
            ctx.open()
    except (av.error.FFmpegError, ValueError) as exc:
        raise OutputError(f"the {codec} encoder refuses --crf {crf} --encoder-preset {preset} "
                          f"({exc}); check --codec, --crf and --encoder-preset") from None
