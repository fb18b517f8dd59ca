"""Encoder settings: quality/speed options per codec, and the checks that refuse an encoder
or pixel format before any work."""

from __future__ import annotations

from typing import Any

import av
import av.error

from ..errors import OutputError

__all__ = ["check_encoder", "check_pix_fmt", "codec_options"]

# x264-style preset names mapped to the speed knobs of encoders that have no such presets.
_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
            "veryslow", "placebo")
_VPX_CPU_USED = dict(zip(_PRESETS, ("8", "7", "6", "5", "4", "3", "2", "1", "0", "0")))
_SVT_PRESET = dict(zip(_PRESETS, ("12", "11", "10", "9", "8", "7", "5", "4", "2", "1")))


def codec_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """Quality/speed options that ``codec`` understands (others simply get none)."""
    if codec in ("libx264", "libx264rgb"):
        return {"crf": str(crf), "preset": preset}
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
