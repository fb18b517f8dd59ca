"""Streaming decode of a video's frames, in presentation order, with exact timestamps.

Every frame keeps its integer ``pts`` and the stream ``time_base``, so variable frame rates and
odd time bases survive to the writer exactly. Decoding is threaded and one frame at a time;
frames a damaged file loses are counted and reported (:class:`VideoReadWarning`), never
silently dropped, and later frames keep their source indices."""

from __future__ import annotations

import heapq
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from ..errors import InputError
from .probe import VideoInfo, check_input_path, open_input, probe_container, video_stream

__all__ = ["Frame", "VideoReadWarning", "read_frames"]


class VideoReadWarning(UserWarning):
    """Frames of an input video could not be read (damaged or truncated file)."""


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
    p = check_input_path(path)
    container = open_input(p)
    try:
        info, stream_duration = probe_container(container, p)
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

    container = open_input(p)
    try:
        stream = video_stream(container, p)
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
