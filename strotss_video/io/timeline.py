"""The presentation timestamps of a video's frames, without keeping any pixels.

A :class:`Timeline` is what :func:`~strotss_video.io.reader.read_frames` would yield for a frame
range, minus the images: source indices, integer ``pts`` and durations in the stream's
``time_base``. Shot boundaries, cut files and reports use it to turn frame indices into exact
(rational) seconds and back."""

from __future__ import annotations

import os
import warnings
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from ..errors import InputError
from .probe import probe
from .reader import Frame, read_frames

__all__ = ["Timeline", "scan_timeline"]

# read_frames must still decode every frame; a tiny reformat keeps the RGB conversion negligible.
_SCAN_SIZE = (2, 2)


@dataclass(frozen=True)
class Timeline:
    """Presentation timestamps of a range of a video's frames, as read_frames decodes them."""

    time_base: Fraction
    first: int  # source index of the first frame held
    pts: tuple[int, ...]  # pts of frames first, first+1, ...
    durations: tuple[int | None, ...]
    start_pts: int  # pts of frame 0 of the stream (time origin for seconds)
    next_pts: int | None = None  # pts of the frame after the last held; None: the stream ends

    def __len__(self) -> int:
        return len(self.pts)

    @property
    def at_stream_end(self) -> bool:
        """Whether the last frame held is the last frame of the stream."""
        return self.next_pts is None

    @property
    def end(self) -> int:
        """Exclusive source index: one past the last frame held."""
        return self.first + len(self.pts)

    def _offset(self, index: int) -> int:
        if not self.first <= index < self.end:
            raise IndexError(f"frame {index} is outside the timeline [{self.first}, {self.end})")
        return index - self.first

    def time(self, index: int) -> Fraction:
        """Seconds of source frame ``index`` after the stream's first frame (exact)."""
        return (self.pts[self._offset(index)] - self.start_pts) * self.time_base

    def end_time(self) -> Fraction:
        """Seconds at which the last frame held stops being shown.

        When the next frame is known, when it starts. At the stream's end, the last frame's own
        duration when the stream stores one, else the gap before it (a frame lasts as long as
        its predecessor); a lone frame with neither has no extent."""
        if not self.pts:
            raise IndexError("the timeline holds no frames")
        if self.next_pts is not None:
            # Decoded durations of B-frame streams belong to packets in decode order, so on
            # variable-rate video they need not match the presentation gap; the next pts does.
            return (self.next_pts - self.start_pts) * self.time_base
        last = self.pts[-1]
        duration = self.durations[-1]
        if duration is None:
            duration = last - self.pts[-2] if len(self.pts) > 1 else 0
        return (last + duration - self.start_pts) * self.time_base

    def index_at(self, seconds: Fraction) -> int:
        """Source index of the first frame shown at or after ``seconds`` (``end`` if none)."""
        # Compare in pts units exactly: the first pts with (pts - start) * tb >= seconds.
        target = Fraction(seconds) / self.time_base + self.start_pts
        return self.first + bisect_left(self.pts, target)


def scan_timeline(path: str | os.PathLike[str], start: int | Fraction | None = None,
                  end: int | Fraction | None = None) -> Timeline:
    """The timeline of frames ``[start, end)`` of ``path``, exactly as :func:`read_frames`
    yields them (same indices, pts and durations; same errors), plus the pts of the frame that
    follows the range, if any."""
    # Validate the range as read_frames does (it checks eagerly and raises before decoding).
    _close(read_frames(path, start, end, size=_SCAN_SIZE))
    # Decode one frame past the range: its pts is where the range's last frame ends.
    if isinstance(end, int):
        frames, past = read_frames(path, start, end + 1, size=_SCAN_SIZE), None
    else:
        frames = read_frames(path, start, None, size=_SCAN_SIZE)
        # read_frames' own seconds bound: stream-relative to the container's start_time.
        past = None if end is None else (end, probe(path).start_time)
    pts: list[int] = []
    durations: list[int | None] = []
    first: int | None = None
    time_base: Fraction | None = None
    next_pts: int | None = None
    next_index = start if isinstance(start, int) else 0
    # A timeline holds consecutive frames only: a frame lost inside the range (a damaged
    # packet) is refused in one line, so its read warning is held back until the scan is clean.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for frame in frames:
                beyond = (frame.index >= end if isinstance(end, int) else
                          past is not None and frame.pts * frame.time_base - past[1] >= past[0])
                if beyond:
                    next_pts, next_index = frame.pts, frame.index
                    break
                if first is None:
                    first, time_base = frame.index, frame.time_base
                elif frame.index != first + len(pts):
                    lost = first + len(pts)
                    which = (f"frame {lost}" if frame.index - lost == 1
                             else f"frames {lost}..{frame.index - 1}")
                    raise InputError(f"{which} of {path} could not be decoded (damaged data) and "
                                     "every frame of the range is needed; repair or re-encode the "
                                     "file (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`) or choose a "
                                     "--start/--end range that avoids it")
                pts.append(frame.pts)
                durations.append(frame.duration)
        finally:
            _close(frames)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if first is None or time_base is None:
        # An empty range (possible with a seconds range between two frames): nothing to time,
        # but the origin still comes from the stream's first frame.
        time_base, start_pts = _origin(path)
        return Timeline(time_base=time_base, first=next_index, pts=(), durations=(),
                        start_pts=start_pts, next_pts=next_pts)
    # Times are stream-relative, so a later range still needs the first frame's pts.
    start_pts = pts[0] if first == 0 else _origin(path)[1]
    return Timeline(time_base=time_base, first=first, pts=tuple(pts), durations=tuple(durations),
                    start_pts=start_pts, next_pts=next_pts)


def _close(frames: Iterator[Frame]) -> None:
    """Stop a read_frames iterator early (its container closes)."""
    close = getattr(frames, "close", None)
    if close is not None:
        close()


def _origin(path: str | os.PathLike[str]) -> tuple[Fraction, int]:
    """Time base and pts of the first frame the stream decodes to."""
    # No end bound: if frame 0 itself is undecodable, the first decoded frame is the origin.
    frames = read_frames(path, size=_SCAN_SIZE)
    try:
        frame = next(frames)
    finally:
        _close(frames)
    return frame.time_base, frame.pts
