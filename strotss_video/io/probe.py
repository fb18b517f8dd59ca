"""What a video file holds, read with PyAV: size, rotation, time base, rate, durations.

Also the input checks every reader shares (:func:`check_input_path`, :func:`open_input`,
:func:`video_stream`), so probing, reading and copying audio refuse a bad file with the same
one-line error. :func:`probe` bounds the frame size from the stream's header, before a frame
is decoded."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from ..config import MAX_INPUT_PIXELS
from ..errors import InputError
from .decode import check_pixels
from .paths import existing_file
from .timecode import parse_time

__all__ = ["VideoInfo", "check_input_path", "open_input", "probe", "probe_container",
           "video_stream"]

# A probe gives up on finding a decodable first frame after this many packets (a damaged file).
_PROBE_MAX_PACKETS = 500


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, read from its container (plus one decoded frame)."""

    path: Path
    width: int  # display width (after rotation)
    height: int  # display height
    rotation: int  # clockwise degrees that make stored frames upright: 0, 90, 180 or 270
    time_base: Fraction  # video stream time base
    average_rate: Fraction | None
    frames: int | None  # container's frame count if it stores one; never counted by decoding
    duration: Fraction | None  # seconds
    start_time: Fraction  # seconds of the first video pts (0 if unknown)
    codec: str
    pix_fmt: str | None
    audio_streams: int


def check_input_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path if it is a non-empty file; else a one-line InputError."""
    p = existing_file(path, "video", "a video file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read video {p}: {exc.strerror}") from None
    if size == 0:
        raise InputError(f"video {p} is empty (0 bytes); pass a complete video file")
    return p


def open_input(p: Path) -> Any:
    """Open ``p`` for reading (an ``av`` input container); InputError if FFmpeg cannot."""
    try:
        return av.open(str(p), mode="r")
    except PermissionError:
        raise InputError(f"cannot read video {p}: permission denied") from None
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).split(":")[0]
        raise InputError(f"{p} is not a video FFmpeg can read ({reason}); pass an .mp4, .mov "
                         "or .mkv file (a truncated .mp4 lacks its index and cannot be read)"
                         ) from None


def _is_image_format(format_name: str) -> bool:
    # Stills open as one-frame "videos" through the image2 / *_pipe demuxers.
    return any(n == "image2" or n.endswith("_pipe") for n in format_name.split(","))


def video_stream(container: Any, p: Path) -> Any:
    """The first real video stream (cover art in audio files is a video stream too)."""
    attached = av.stream.Disposition.attached_pic
    for stream in container.streams.video:
        if not stream.disposition & attached:
            return stream
    kinds = "audio only" if container.streams.audio else "no audio either"
    raise InputError(f"{p} has no video stream ({kinds}); pass a video file")


def _rotation_of(frame: Any) -> int:
    # VideoFrame.rotation is the display matrix's counter-clockwise angle; FFmpeg's players
    # apply its negation clockwise (fftools get_rotation), so do the same.
    clockwise = -float(frame.rotation)
    return int(round(clockwise / 90.0)) * 90 % 360


def _fraction(value: Any) -> Fraction | None:
    return Fraction(value) if value else None


def _matroska_duration(tag: str | None) -> Fraction | None:
    """Matroska stores per-stream durations only as a "HH:MM:SS.nnnnnnnnn" tag."""
    if not tag:
        return None
    try:
        seconds = parse_time(tag)
    except InputError:
        return None
    return seconds if isinstance(seconds, Fraction) else Fraction(seconds)


def _first_frame(container: Any, stream: Any) -> Any:
    """The first frame ``stream`` decodes to, or None (damaged file, unsupported codec)."""
    try:
        for n, packet in enumerate(container.demux(stream)):
            if n >= _PROBE_MAX_PACKETS:
                return None
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                continue
            if decoded:
                return decoded[0]
    except av.error.FFmpegError:
        pass
    return None


def probe_container(container: Any, p: Path, max_pixels: int | None = None
                    ) -> tuple[VideoInfo, Fraction | None]:
    """Probe an opened container; returns the info and the video stream's own duration.
    ``max_pixels``: refuse larger frames (InputError) before decoding one."""
    if _is_image_format(container.format.name):
        raise InputError(f"{p} is an image, not a video; use `strotss-video image`")
    stream = video_stream(container, p)
    ctx = stream.codec_context
    codec = ctx.name if ctx is not None else "unknown"
    if ctx is None or stream.time_base is None:
        raise InputError(f"the video codec of {p} is not supported; re-encode it, e.g. "
                         "`ffmpeg -i IN -c:v libx264 OUT.mp4`")
    if max_pixels is not None:  # the stream's declared size: nothing decoded yet
        check_pixels(ctx.width, ctx.height, max_pixels, f"video {p}")
    # The display matrix reaches us only on decoded frames, and decoding one frame is also the
    # only real proof that the codec is supported.
    first = _first_frame(container, stream)
    if first is None:
        raise InputError(f"cannot decode the {codec} video in {p} (damaged file or unsupported "
                         "codec); re-encode it, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`")
    if max_pixels is not None:  # a header may understate what the decoder produces
        check_pixels(first.width, first.height, max_pixels, f"video {p}")
    rotation = _rotation_of(first)
    width, height = first.width, first.height
    if rotation in (90, 270):
        width, height = height, width
    tb = Fraction(stream.time_base)
    stream_duration = (Fraction(stream.duration) * tb if stream.duration
                       else _matroska_duration(stream.metadata.get("DURATION")))
    duration = stream_duration
    if duration is None and container.duration:
        duration = Fraction(container.duration, av.time_base)
    info = VideoInfo(
        path=p,
        width=width,
        height=height,
        rotation=rotation,
        time_base=tb,
        average_rate=_fraction(stream.average_rate),
        frames=stream.frames or None,
        duration=duration,
        start_time=Fraction(stream.start_time) * tb if stream.start_time is not None else
        Fraction(0),
        codec=codec,
        pix_fmt=first.format.name if first.format is not None else ctx.pix_fmt,
        audio_streams=len(container.streams.audio),
    )
    return info, stream_duration


def probe(path: str | os.PathLike[str], max_pixels: int = MAX_INPUT_PIXELS) -> VideoInfo:
    """Describe the video at ``path``; :class:`InputError` if it is not a readable video or its
    frames have more than ``max_pixels`` pixels."""
    p = check_input_path(path)
    container = open_input(p)
    try:
        return probe_container(container, p, max_pixels)[0]
    finally:
        container.close()
