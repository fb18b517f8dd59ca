"""Video probing, reading and writing with PyAV (``av`` is imported only inside ``io/``).

Time stays rational: every frame carries its integer ``pts`` and the stream ``time_base`` from
decode to encode, so variable frame rates and odd time bases survive a round trip exactly.
Decoding is streamed (one frame at a time, threaded); writing goes to a hidden temporary file
beside the target that is renamed into place only when :meth:`VideoWriter.close` succeeds, so a
failed run never leaves a partial video. Audio is stream-copied (never re-encoded) and muxed as
the video goes, so memory stays flat."""

from __future__ import annotations

import heapq
import os
import re
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from ..errors import InputError, OutputError
from .paths import existing_file

__all__ = [
    "CONTAINER_FORMATS",
    "Frame",
    "VideoInfo",
    "VideoReadWarning",
    "VideoWriter",
    "parse_time",
    "probe",
    "read_frames",
]

# Output extension -> FFmpeg muxer. Only containers that hold H.264/H.265/VP9 and copied audio.
CONTAINER_FORMATS: dict[str, str] = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}

# A probe gives up on finding a decodable first frame after this many packets (a damaged file).
_PROBE_MAX_PACKETS = 500

# x264-style preset names mapped to the speed knobs of encoders that have no such presets.
_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
            "veryslow", "placebo")
_VPX_CPU_USED = dict(zip(_PRESETS, ("8", "7", "6", "5", "4", "3", "2", "1", "0", "0")))
_SVT_PRESET = dict(zip(_PRESETS, ("12", "11", "10", "9", "8", "7", "5", "4", "2", "1")))


class VideoReadWarning(UserWarning):
    """Frames of an input video could not be read (damaged or truncated file)."""


# --------------------------------------------------------------------------- probe


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


def _check_input_path(path: str | os.PathLike[str]) -> Path:
    p = existing_file(path, "video", "a video file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read video {p}: {exc.strerror}") from None
    if size == 0:
        raise InputError(f"video {p} is empty (0 bytes); pass a complete video file")
    return p


def _open_input(p: Path) -> Any:
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


def _video_stream(container: Any, p: Path) -> Any:
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


def _probe_open(container: Any, p: Path) -> tuple[VideoInfo, Fraction | None]:
    """Probe an opened container; returns the info and the video stream's own duration."""
    if _is_image_format(container.format.name):
        raise InputError(f"{p} is an image, not a video; use `strotss-video image`")
    stream = _video_stream(container, p)
    ctx = stream.codec_context
    codec = ctx.name if ctx is not None else "unknown"
    if ctx is None or stream.time_base is None:
        raise InputError(f"the video codec of {p} is not supported; re-encode it, e.g. "
                         "`ffmpeg -i IN -c:v libx264 OUT.mp4`")
    # The display matrix reaches us only on decoded frames, and decoding one frame is also the
    # only real proof that the codec is supported.
    first = None
    try:
        for n, packet in enumerate(container.demux(stream)):
            if n >= _PROBE_MAX_PACKETS:
                break
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                continue
            if decoded:
                first = decoded[0]
                break
    except av.error.FFmpegError:
        first = None
    if first is None:
        raise InputError(f"cannot decode the {codec} video in {p} (damaged file or unsupported "
                         "codec); re-encode it, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`")
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


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe the video at ``path``; :class:`InputError` if it is not a readable video."""
    p = _check_input_path(path)
    container = _open_input(p)
    try:
        return _probe_open(container, p)[0]
    finally:
        container.close()


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame: upright uint8 RGB plus its exact timestamp."""

    index: int  # 0-based, presentation order, within the whole stream
    pts: int
    time_base: Fraction
    image: np.ndarray = field(repr=False)  # uint8 RGB (H, W, 3), upright, C-contiguous
    duration: int | None = None  # in time_base units, when the stream says (VFR last frames)

    @property
    def time(self) -> Fraction:
        """Presentation time in seconds (exact)."""
        return self.pts * self.time_base


def _check_bound(name: str, value: int | Fraction | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        raise TypeError(f"{name} must be an int frame index or a Fraction of seconds, "
                        f"not {type(value).__name__}")
    if value < 0:
        raise InputError(f"the {name} of the frame range must not be negative (got {value})")


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 90:
        image = np.rot90(image, k=-1)  # k<0 turns clockwise
    elif rotation == 180:
        image = image[::-1, ::-1]
    elif rotation == 270:
        image = np.rot90(image, k=1)
    return np.ascontiguousarray(image)


def read_frames(path: str | os.PathLike[str], start: int | Fraction | None = None,
                end: int | Fraction | None = None, *,
                size: tuple[int, int] | None = None) -> Iterator[Frame]:
    """Stream the frames of ``path`` in presentation order.

    ``start``/``end`` select ``[start, end)``: an ``int`` is a frame index, a ``Fraction`` is
    seconds from the stream start (``start_time``). ``size=(H, W)`` scales to that display size
    inside the decoder's reformatter (area filter), so huge inputs never exist at full size in
    RGB. The file is validated (``probe``) before this returns; unreadable packets are skipped
    with a :class:`VideoReadWarning`, and :class:`InputError` is raised if no frame decodes."""
    p = _check_input_path(path)
    container = _open_input(p)
    try:
        info, stream_duration = _probe_open(container, p)
    finally:
        container.close()
    _check_bound("start", start)
    _check_bound("end", end)
    if start is not None and end is not None and type(start) is type(end) and start >= end:
        raise InputError(f"the frame range is empty: start {start} is not before end {end}")
    if size is not None:
        h, w = (int(v) for v in size)
        if h <= 0 or w <= 0:
            raise ValueError(f"size must be positive (H, W), got {size}")
        size = (h, w)
    return _iter_frames(info, stream_duration, start, end, size)


class _FrameClock:
    """Turns decoder timestamps into strictly increasing pts without ever dropping a frame."""

    def __init__(self, info: VideoInfo) -> None:
        self.last: int | None = None
        self.delta: int | None = None  # last gap between frames, for extrapolation
        rate = info.average_rate
        self.nominal = max(1, round(1 / (rate * info.time_base))) if rate else 1
        self.repaired = 0
        self.last_duration: int | None = None  # the last frame's own duration, if stored

    def __call__(self, frame: Any) -> int:
        self.last_duration = int(frame.duration) if frame.duration else None
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None or (self.last is not None and pts <= self.last):
            # PyAV does not expose best_effort_timestamp; missing or non-increasing stamps are
            # extrapolated from the last gap so every frame is kept and order stays strict.
            pts = (self.last + (self.delta or self.nominal)) if self.last is not None else 0
            self.repaired += 1
        elif self.last is not None:
            self.delta = pts - self.last
        self.last = pts
        return int(pts)

    def end_of_last(self) -> int | None:
        if self.last is None:
            return None
        return self.last + (self.last_duration or self.delta or self.nominal)


class _Ledger:
    """Counts frames that never came out of the decoder, so none vanish silently.

    Every demuxed packet promises one frame at its pts; decoders emit frames in pts order, so
    promised pts below the frame just emitted are lost (a packet that failed to decode, or
    one the decoder silently dropped). Without packet pts it falls back to counting errors."""

    def __init__(self) -> None:
        self.promised: list[int] = []  # min-heap of packet pts not yet seen as frames
        self.by_pts = True
        self.errors = 0  # decode errors since the last frame (fallback accounting)

    def expect(self, packet: Any) -> None:
        if packet.size == 0 or packet.is_discard:  # flush packets; edit-list trimmed frames
            return
        if packet.pts is None:
            self.by_pts = False
        else:
            heapq.heappush(self.promised, packet.pts)

    def lost_before(self, frame: Any) -> int:
        """Frames lost just before ``frame`` (which is then checked off)."""
        if not self.by_pts or frame.pts is None:
            lost, self.errors = self.errors, 0
            return lost
        lost = 0
        while self.promised and self.promised[0] < frame.pts:
            heapq.heappop(self.promised)
            lost += 1
        if self.promised and self.promised[0] == frame.pts:
            heapq.heappop(self.promised)
        self.errors = 0
        return lost

    def lost_at_end(self) -> int:
        return len(self.promised) if self.by_pts else self.errors


def _decode_all(container: Any, stream: Any, ledger: _Ledger,
                status: dict[str, bool]) -> Iterator[Any]:
    """Decoded frames of ``stream``; packets that fail are skipped, a failing demuxer ends it."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError:
            status["demux_failed"] = True  # garbage in the container: keep what decoded
            break
        ledger.expect(packet)
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            ledger.errors += 1
            continue
        yield from frames
    try:  # flush what the (threaded) decoder still holds
        yield from stream.decode(None)
    except av.error.FFmpegError:
        pass


def _iter_frames(info: VideoInfo, stream_duration: Fraction | None,
                 start: int | Fraction | None, end: int | Fraction | None,
                 size: tuple[int, int] | None) -> Iterator[Frame]:
    p = info.path
    tb = info.time_base
    rotation = info.rotation
    out_h, out_w = size if size is not None else (info.height, info.width)
    # The reformatter works on stored (unrotated) frames.
    rf_w, rf_h = (out_h, out_w) if rotation in (90, 270) else (out_w, out_h)
    reformatter = VideoReformatter()  # reused so swscale's context is built once
    clock = _FrameClock(info)
    ledger = _Ledger()
    status = {"demux_failed": False}

    container = _open_input(p)
    try:
        stream = _video_stream(container, p)
        stream.thread_type = "AUTO"  # frame + slice threads; frames still come out in order
        index = 0  # index of the next frame in the whole stream
        yielded = 0
        stopped_early = False
        for frame in _decode_all(container, stream, ledger, status):
            lost = ledger.lost_before(frame)
            if lost:
                _warn_lost(p, index, index + lost, "damaged data")
                index += lost  # keep later indices aligned with the source
            pts = clock(frame)
            t = pts * tb - info.start_time
            if end is not None and (index >= end if isinstance(end, int) else t >= end):
                stopped_early = True
                break
            if start is None or (index >= start if isinstance(start, int) else t >= start):
                yield Frame(index=index, pts=pts, time_base=tb,
                            image=_to_rgb(reformatter, frame, rf_w, rf_h, rotation),
                            duration=int(frame.duration) if frame.duration else None)
                yielded += 1
            index += 1
        if not stopped_early:
            _check_complete(info, stream_duration, clock, index, ledger.lost_at_end(),
                            status["demux_failed"])
        if clock.repaired:
            warnings.warn(f"{clock.repaired} frame(s) of {p} had missing or out-of-order "
                          "timestamps; they were kept with extrapolated times",
                          VideoReadWarning, stacklevel=2)
        if clock.last is None:
            raise InputError(f"no frame of {p} could be decoded; the file is damaged")
        if yielded == 0 and start is not None and not stopped_early:
            raise InputError(f"start {start} is past the end of {p} ({index} frames); "
                             "choose an earlier start")
    finally:
        container.close()


def _to_rgb(reformatter: VideoReformatter, frame: Any, width: int, height: int,
            rotation: int) -> np.ndarray:
    kwargs: dict[str, Any] = {}
    if frame.color_range == 2:  # JPEG/full range; PyAV assumes limited range unless told
        kwargs["src_color_range"] = 2
    rgb = reformatter.reformat(frame, width, height, "rgb24", interpolation="AREA", **kwargs)
    return _upright(rgb.to_ndarray(), rotation)


def _warn_lost(p: Path, first: int, stop: int, why: str) -> None:
    which = f"frame {first}" if stop - first == 1 else f"frames {first}..{stop - 1}"
    warnings.warn(f"could not decode {which} of {p} ({why}); skipped", VideoReadWarning,
                  stacklevel=3)


def _check_complete(info: VideoInfo, stream_duration: Fraction | None, clock: _FrameClock,
                    index: int, lost: int, demux_failed: bool) -> None:
    """One warning if frames are missing at the end: undecodable last packets, or a stream
    that stops before the container says it should (a truncated file)."""
    end_pts = clock.end_of_last()
    if end_pts is None:
        return
    got = index + lost  # frames read, or at least seen as packets
    truncated = demux_failed
    expected: int | None = None
    if stream_duration is not None:
        gap = Fraction(clock.delta or clock.nominal) * info.time_base
        # Half a frame of slack: containers round durations. Lost packets count as frames.
        if (end_pts + lost * (clock.delta or clock.nominal)) * info.time_base \
                - info.start_time < stream_duration - gap / 2:
            truncated = True
            if info.average_rate:
                expected = round(stream_duration * info.average_rate)
    elif info.frames is not None and got < info.frames:
        truncated = True
        expected = info.frames
    if truncated:
        which = (f"frames {index}..{expected - 1}" if expected is not None and expected > got
                 else f"frames from {index} on")
        warnings.warn(f"{info.path} ends early after frame {index - 1} (truncated or damaged "
                      f"file); {which} could not be read", VideoReadWarning, stacklevel=3)
    elif lost:
        _warn_lost(info.path, index, index + lost, "damaged data at the end")


# --------------------------------------------------------------------------- parse_time

_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


def parse_time(text: str) -> int | Fraction:
    """``"120"`` -> frame index 120; ``"4.5s"`` / ``"00:00:04.5"`` / ``"1:02.25"`` -> seconds.

    Seconds are exact ``Fraction`` values of the decimal text; anything else is an
    :class:`InputError`."""
    s = text.strip()
    hint = ("use a frame index (120), seconds (4.5s) or a clock time (00:01:02.5)")
    if re.fullmatch(r"\d+", s):
        return int(s)
    m = re.fullmatch(r"(\d+(?:\.\d+)?|\.\d+)\s*s", s)
    if m:
        return _decimal(m.group(1), text, hint)
    m = _CLOCK.match(s)
    if m:
        hours, minutes, seconds = m.group(1), m.group(2), m.group(3)
        secs = _decimal(seconds, text, hint)
        if secs >= 60:
            raise InputError(f"invalid time {text!r}: seconds must be below 60; {hint}")
        if hours is not None and int(minutes) >= 60:
            raise InputError(f"invalid time {text!r}: minutes must be below 60; {hint}")
        total = secs + 60 * int(minutes) + 3600 * int(hours or 0)
        return Fraction(total)
    raise InputError(f"invalid time {text!r}; {hint}")


def _decimal(digits: str, text: str, hint: str) -> Fraction:
    try:
        return Fraction(Decimal(digits))
    except (InvalidOperation, ValueError):
        raise InputError(f"invalid time {text!r}; {hint}") from None


# --------------------------------------------------------------------------- writing


def _codec_options(codec: str, crf: int, preset: str) -> dict[str, str]:
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


class VideoWriter:
    """Encode frames to a video file, stream-copying audio from a source; a context manager.

    ``with VideoWriter(out, width=W, height=H, time_base=tb, average_rate=r) as w:
    w.write(rgb, pts)``. Frame ``pts`` are in ``time_base`` and must strictly increase; the
    file gets ``pts - pts_offset``. The video goes to a hidden temporary file beside ``path``
    that replaces ``path`` only when :meth:`close` succeeds; an exception inside the ``with``
    block deletes it.

    Audio: every audio stream of ``audio_source`` is copied packet for packet. Only packets
    overlapping ``audio_window=(start_s, end_s or None)`` (seconds on the source clock) are
    kept, shifted so ``start_s`` lands on 0; with no window, the window is
    ``(pts_offset * time_base, None)``, i.e. the same shift as the video."""

    def __init__(self, path: str | os.PathLike[str], *, width: int, height: int,
                 time_base: Fraction, average_rate: Fraction | None,
                 codec: str = "libx264", crf: int = 18, preset: str = "medium",
                 pix_fmt: str = "yuv420p", audio_source: Path | None = None,
                 audio_window: tuple[Fraction, Fraction | None] | None = None,
                 pts_offset: int = 0) -> None:
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in CONTAINER_FORMATS:
            raise OutputError(f"cannot write video {self.path}: unsupported extension "
                              f"{ext or '(none)'}; use .mp4, .mov or .mkv")
        if not self.path.parent.is_dir():
            raise OutputError(f"output directory {self.path.parent} does not exist; create it "
                              "first")
        if self.path.is_dir():
            raise OutputError(f"output {self.path} is a directory; pass a file name")
        self.width, self.height = int(width), int(height)
        if self.width <= 0 or self.height <= 0:
            raise OutputError(f"invalid video size {width}x{height}")
        self.time_base = Fraction(time_base)
        self.pts_offset = int(pts_offset)
        self.pix_fmt = pix_fmt
        self.codec = codec
        self._fmt = _check_pix_fmt(pix_fmt, self.width, self.height)
        _check_codec(codec, pix_fmt)

        self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.part")
        self._last_pts: int | None = None
        self._pending: tuple[Any, int] | None = None  # held one frame to learn its duration
        self._durations: dict[int, int] = {}  # output pts -> duration, for encoder packets
        self._held: Any = None  # the newest video packet, muxed when the next one comes
        self._video_end: int | None = None  # max(pts + duration) of the packets so far
        self._first_stamps: tuple[int, int] | None = None  # (pts, dts) of the first packet
        self._last_gap: int | None = None
        self._frames = 0
        self._closed = False
        self._audio_in: Any = None
        self._audio_iter: Iterator[tuple[Any, Any, Fraction]] | None = None
        self._audio_next: tuple[Any, Any, Fraction] | None = None
        self._reformatter = VideoReformatter()

        # av.open does not create the file; the header (_start, the last step) does, and any
        # failure up to there deletes it again, so a refused setup leaves nothing on disk.
        self._container = av.open(str(self._tmp), mode="w", format=CONTAINER_FORMATS[ext],
                                  container_options={"avoid_negative_ts": "disabled"})
        try:
            self._stream = self._add_video_stream(codec, crf, preset, average_rate)
            if audio_source is not None:
                self._add_audio(Path(audio_source), audio_window)
            self._start()
        except BaseException:
            self._abort()
            raise

    # ----------------------------------------------------------------- setup

    def _add_video_stream(self, codec: str, crf: int, preset: str,
                          average_rate: Fraction | None) -> Any:
        try:
            stream = self._container.add_stream(codec, rate=average_rate or None)
        except ValueError:  # the container cannot hold this codec
            other = "another --codec" if self.path.suffix.lower() == ".mkv" else (
                ".mkv or another --codec")
            raise OutputError(f"{self.path.suffix} files cannot hold {codec} video; use "
                              f"{other}") from None
        if not average_rate:
            stream.codec_context.framerate = Fraction(0, 1)  # PyAV would default to 24 fps
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = self.pix_fmt
        # Frames are stamped in the source time base; the muxer may refine it (mp4), never
        # coarsen it (except Matroska's fixed milliseconds, checked when the header is out).
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        if not self._fmt.is_rgb:
            # Tag what _to_frame converts with, so players do not guess BT.601 vs BT.709.
            stream.codec_context.colorspace = 1  # AVCOL_SPC_BT709
            stream.codec_context.color_primaries = 1
            stream.codec_context.color_trc = 1
            stream.codec_context.color_range = 1  # limited (MPEG)
        if codec == "libx265" and self.path.suffix.lower() in (".mp4", ".mov"):
            stream.codec_context.codec_tag = "hvc1"  # Apple players need hvc1, not hev1
        stream.codec_context.options = _codec_options(codec, crf, preset)
        try:
            stream.codec_context.open()  # fail now on bad options/time base, not mid-run
        except (av.error.FFmpegError, ValueError) as exc:
            raise OutputError(f"cannot start the {codec} encoder ({exc}); check --codec, "
                              "--crf and --preset") from None
        return stream

    def _add_audio(self, source: Path, window: tuple[Fraction, Fraction | None] | None) -> None:
        src = _check_input_path(source)
        self._audio_in = _open_input(src)
        streams = list(self._audio_in.streams.audio)
        if not streams:
            return
        if window is None and self.pts_offset:
            window = (self.pts_offset * self.time_base, None)
        # No window: every packet unchanged (AAC priming packets before 0 included).
        self._window = None if window is None else (
            Fraction(window[0]), None if window[1] is None else Fraction(window[1]))
        self._audio_out: dict[int, Any] = {}
        for s in streams:
            try:
                self._audio_out[s.index] = self._container.add_stream_from_template(s)
            except ValueError:
                raise OutputError(f"{self.path.suffix} cannot hold the {s.codec_context.name} "
                                  f"audio of {src}; write .mkv or use --no-audio") from None
        self._audio_streams = streams
        self._audio_iter = self._audio_packets()
        self._audio_next = next(self._audio_iter, None)

    def _audio_packets(self) -> Iterator[tuple[Any, Any, Fraction]]:
        """Shifted packets inside the window as (out stream, packet, output time), in file
        order; seeks near the window start when that is provably lossless."""
        w_start, w_end = self._window or (None, None)
        src = self._audio_in
        streams = self._audio_streams
        packets = None
        buffered: list[Any] = []
        if w_start is not None and w_start > 1:
            # Seek a second early, then check every stream's first packet starts no later than
            # the window (so nothing overlapping it was skipped); else read from the top.
            try:
                src.seek(int((w_start - 1) * av.time_base), backward=True)
                packets = src.demux(streams)
                firsts: set[int] = set()
                for pkt in packets:
                    if pkt.size == 0 or (pkt.pts is None and pkt.dts is None):
                        continue
                    buffered.append(pkt)
                    if pkt.stream.index not in firsts:
                        firsts.add(pkt.stream.index)
                        if _packet_start(pkt) > w_start:
                            raise LookupError
                    if len(firsts) == len(streams):
                        break
                else:
                    raise LookupError
            except (LookupError, av.error.FFmpegError):
                src.close()
                self._audio_in = src = av.open(str(src.name), mode="r")
                streams = list(src.streams.audio)
                packets, buffered = None, []
        if packets is None:
            packets = src.demux(streams)
        done: set[int] = set()

        def all_packets() -> Iterator[Any]:
            yield from buffered
            yield from packets

        for pkt in all_packets():
            if pkt.size == 0 or (pkt.pts is None and pkt.dts is None):
                continue
            idx = pkt.stream.index
            out = self._audio_out[idx]
            tb = Fraction(pkt.time_base)
            if w_start is None:
                pkt.stream = out
                yield out, pkt, _packet_start(pkt)
                continue
            if idx in done:
                continue
            t0 = _packet_start(pkt)
            t1 = t0 + (pkt.duration or 0) * tb
            if w_end is not None and t0 >= w_end:
                done.add(idx)
                if len(done) == len(streams):
                    return
                continue
            if (t1 <= w_start) if pkt.duration else (t0 < w_start):
                continue
            shift = round(w_start / tb)  # nearest audio tick when not exact
            if pkt.pts is not None:
                pkt.pts -= shift
            if pkt.dts is not None:
                pkt.dts -= shift
            pkt.stream = out
            yield out, pkt, (pkt.dts if pkt.dts is not None else pkt.pts) * tb

    def _start(self) -> None:
        """Write the header now: some codec/container pairs pass FFmpeg's codec query and
        are refused only here (e.g. FLAC in .mov), and that must surface before any work."""
        try:
            self._container.start_encoding()
        except (av.error.FFmpegError, ValueError) as exc:
            reason = str(exc).split("last error log: ")[-1].strip() if "last error log" in \
                str(exc) else getattr(exc, "strerror", None) or str(exc)
            audio = sorted({s.codec_context.name for s in self._container.streams.audio})
            what = f"{self.codec} video" + (f" with {', '.join(audio)} audio" if audio else "")
            fix = "write .mkv, use --no-audio or another --codec" if audio else (
                "use another --codec or .mkv")
            raise OutputError(f"cannot write {what} to {self.path.suffix} ({reason}); "
                              f"{fix}") from None
        out_tb = Fraction(self._stream.time_base)
        if (self.time_base / out_tb).denominator != 1:
            warnings.warn(f"{self.path.suffix} stores times in units of {out_tb} s, so frame times "
                          f"(units of {self.time_base} s) are rounded; write .mp4 or .mov to keep "
                          "them exact", RuntimeWarning, stacklevel=3)

    # ----------------------------------------------------------------- writing

    def write(self, image: np.ndarray, pts: int, duration: int | None = None) -> None:
        """Queue one uint8 RGB (H, W, 3) frame at source ``pts`` (strictly increasing).

        ``duration`` (time-base units), when the source knows it, is used for the last frame;
        otherwise the last frame lasts as long as the gap before it."""
        if self._closed:
            raise ValueError("write() on a closed VideoWriter")
        if isinstance(pts, bool) or not isinstance(pts, (int, np.integer)):
            raise TypeError(f"pts must be an int, not {type(pts).__name__}")
        pts = int(pts)
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"pts must strictly increase: got {pts} after {self._last_pts}")
        if pts < self.pts_offset:
            raise ValueError(f"pts {pts} is before pts_offset {self.pts_offset}")
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.shape != (self.height, self.width, 3):
            raise ValueError(f"expected uint8 RGB ({self.height}, {self.width}, 3), got "
                             f"{image.dtype} {image.shape}")
        frame = self._to_frame(image)  # copies, so the caller may reuse its buffer
        if self._pending is not None:
            prev, prev_pts = self._pending
            self._encode(prev, prev_pts, pts - prev_pts)
        self._pending = (frame, pts)
        self._last_pts = pts
        self._given_duration = int(duration) if duration else None

    def _to_frame(self, image: np.ndarray) -> Any:
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        if self._fmt.name == "rgb24":
            return rgb
        if self._fmt.is_rgb:
            return self._reformatter.reformat(rgb, format=self.pix_fmt)
        return self._reformatter.reformat(rgb, format=self.pix_fmt, dst_colorspace="ITU709",
                                          dst_color_range="MPEG")

    def _encode(self, frame: Any, pts: int, duration: int) -> None:
        out_pts = pts - self.pts_offset
        frame.pts = out_pts
        frame.time_base = self.time_base
        frame.duration = duration
        self._durations[out_pts] = duration
        self._last_gap = duration
        try:
            packets = self._stream.encode(frame)
        except av.error.FFmpegError as exc:
            raise OutputError(f"encoding {self.path} failed: {exc}") from None
        self._frames += 1
        for packet in packets:
            self._mux_video(packet)

    def _mux_video(self, packet: Any) -> None:
        """Mux the packet held back before this one, and hold this one (see _mux_last)."""
        # Encoders with delay (x264) may drop a frame's duration or give a packet another
        # frame's; each packet gets its own frame's duration.
        if packet.pts is not None:
            duration = self._durations.pop(packet.pts, None)
            if duration:
                packet.duration = duration
            self._video_end = max(self._video_end or 0, packet.pts + (packet.duration or 0))
            if self._first_stamps is None and packet.dts is not None:
                self._first_stamps = (packet.pts, packet.dts)
        if self._held is not None:
            self._mux_held()
        self._held = packet

    def _mux_held(self) -> None:
        packet, self._held = self._held, None
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is not None:
            # Audio up to this video time goes first, so the muxer's interleaving queue
            # (and our memory) stays small.
            self._pump_audio(stamp * self.time_base)
        self._mux(packet)

    def _mux_last(self) -> None:
        """Mux the last packet in decode order with the duration that ends the track where
        the last frame ends. MP4/MOV store durations as decode-time steps and take the track's
        length from the last packet's, but with B-frames that packet is not the last frame
        shown (which one it is depends on the encoder's reordering, i.e. on the content):
        its own duration would make a variable-rate stream one gap too long or short."""
        packet = self._held
        if packet is None:
            return
        if self._first_stamps is not None and packet.dts is not None and self._video_end:
            first_pts, first_dts = self._first_stamps
            span = self._video_end - first_pts - (packet.dts - first_dts)
            if span > 0:
                packet.duration = span
        self._mux_held()

    def _pump_audio(self, until: Fraction | None) -> None:
        while self._audio_next is not None and (until is None or self._audio_next[2] <= until):
            self._mux(self._audio_next[1])
            self._audio_next = next(self._audio_iter, None) if self._audio_iter else None

    def _mux(self, packet: Any) -> None:
        """Hand one packet to the muxer (single choke point; tests spy on it)."""
        try:
            self._container.mux(packet)
        except av.error.FFmpegError as exc:
            raise OutputError(f"writing {self.path} failed: {exc}") from None

    # ----------------------------------------------------------------- closing

    def close(self) -> None:
        """Flush the encoder and remaining audio, finish the file and move it into place."""
        if self._closed:
            return
        try:
            # A range's audio stops where its video does (the window only knows its start
            # when the end is a frame index).
            video_end = None
            if getattr(self, "_window", None) is not None and self._last_pts is not None:
                video_end = (self._last_pts - self.pts_offset + self._last_duration()) \
                    * self.time_base
            if self._pending is not None:
                frame, pts = self._pending
                self._pending = None
                self._encode(frame, pts, self._last_duration())
            if self._frames == 0:
                raise OutputError(f"no frames were written to {self.path}; nothing to save")
            try:
                packets = self._stream.encode(None)
            except av.error.FFmpegError as exc:
                raise OutputError(f"encoding {self.path} failed: {exc}") from None
            for packet in packets:
                self._mux_video(packet)
            self._mux_last()
            self._pump_audio(video_end)
            try:
                self._container.close()
            except av.error.FFmpegError as exc:
                raise OutputError(f"finishing {self.path} failed: {exc}") from None
            os.replace(self._tmp, self.path)
        except BaseException:
            self._abort()
            raise
        finally:
            self._closed = True
            if self._audio_in is not None:
                self._audio_in.close()
                self._audio_in = None

    def _last_duration(self) -> int:
        """Duration of the final frame: as given, else the previous gap, else one frame."""
        if getattr(self, "_given_duration", None):
            return self._given_duration  # type: ignore[return-value]
        if self._last_gap is not None:
            return self._last_gap
        rate = self._stream.codec_context.framerate
        if rate:
            return max(1, round(1 / (Fraction(rate) * self.time_base)))
        return 1

    def _abort(self) -> None:
        """Drop everything: close the container quietly and delete the partial file."""
        self._closed = True
        self._audio_next = None
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away anyway
            pass
        self._tmp.unlink(missing_ok=True)
        if self._audio_in is not None:
            try:
                self._audio_in.close()
            except Exception:  # noqa: BLE001
                pass
            self._audio_in = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()


def _packet_start(pkt: Any) -> Fraction:
    stamp = pkt.pts if pkt.pts is not None else pkt.dts
    return stamp * Fraction(pkt.time_base)


def _check_pix_fmt(pix_fmt: str, width: int, height: int) -> Any:
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
    _check_codec(codec, pix_fmt)


def _check_codec(codec: str, pix_fmt: str) -> None:
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
