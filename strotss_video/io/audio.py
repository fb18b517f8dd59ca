"""Audio stream copy for the video writer: packets are copied, never re-encoded.

Only packets that overlap a time window of the source are kept, shifted so the window starts
at 0; the writer pulls them as its video advances (:meth:`AudioCopy.until`), so the muxer's
interleaving queue and memory stay small."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from ..errors import OutputError
from .probe import check_input_path, open_input

__all__ = ["AudioCopy"]

Window = tuple[Fraction, Fraction | None]
"""(start, end or None) in seconds on the source clock."""


class AudioCopy:
    """Every audio stream of ``source`` added to the output ``container`` and copied packet
    for packet. ``window=None`` keeps every packet unchanged (AAC priming packets before 0
    included); a window keeps the packets overlapping it, shifted by its start."""

    def __init__(self, container: Any, source: Path, window: Window | None, output: Path) -> None:
        src = check_input_path(source)
        self._input: Any = open_input(src)
        self._next: tuple[Any, Fraction] | None = None
        self._packets: Iterator[tuple[Any, Fraction]] = iter(())
        try:
            self._streams = list(self._input.streams.audio)
            self.window = None if window is None or not self._streams else (
                Fraction(window[0]), None if window[1] is None else Fraction(window[1]))
            self._out: dict[int, Any] = {}
            for s in self._streams:
                try:
                    self._out[s.index] = container.add_stream_from_template(s)
                except ValueError:
                    raise OutputError(f"{output.suffix} cannot hold the {s.codec_context.name} "
                                      f"audio of {src}; write .mkv or use --no-audio") from None
            if not self._streams:
                self.close()  # nothing to copy
                return
            self._packets = self._shifted()
            self._next = next(self._packets, None)
        except BaseException:
            self.close()
            raise

    def until(self, time: Fraction | None) -> Iterator[Any]:
        """The next packets, in file order, up to output time ``time`` (None: all the rest)."""
        while self._next is not None and (time is None or self._next[1] <= time):
            yield self._next[0]
            self._next = next(self._packets, None)

    def close(self) -> None:
        """Release the source; no more packets come."""
        self._next = None
        if self._input is not None:
            self._input.close()
            self._input = None

    def _shifted(self) -> Iterator[tuple[Any, Fraction]]:
        """Packets inside the window as (packet for the output, output time), in file order."""
        w_start, w_end = self.window or (None, None)
        packets: Iterator[Any] | None = None
        if w_start is not None and w_start > 1:
            packets = self._seek_near(w_start)
        if packets is None:
            packets = self._input.demux(self._streams)
        done: set[int] = set()
        for pkt in packets:
            if pkt.size == 0 or (pkt.pts is None and pkt.dts is None):
                continue
            idx = pkt.stream.index
            out = self._out[idx]
            if w_start is None:
                pkt.stream = out
                yield pkt, _packet_start(pkt)
                continue
            if idx in done:
                continue
            tb = Fraction(pkt.time_base)
            t0 = _packet_start(pkt)
            t1 = t0 + (pkt.duration or 0) * tb
            if w_end is not None and t0 >= w_end:
                done.add(idx)
                if len(done) == len(self._streams):
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
            yield pkt, _packet_stamp(pkt) * tb

    def _seek_near(self, w_start: Fraction) -> Iterator[Any] | None:
        """Packets from a second before ``w_start`` on, if seeking there provably skips nothing
        that overlaps the window (every stream's first packet starts no later than it); else
        None, with the source reopened at its top."""
        buffered: list[Any] = []
        try:
            self._input.seek(int((w_start - 1) * av.time_base), backward=True)
            packets = self._input.demux(self._streams)
            firsts: set[int] = set()
            for pkt in packets:
                if pkt.size == 0 or (pkt.pts is None and pkt.dts is None):
                    continue
                buffered.append(pkt)
                if pkt.stream.index not in firsts:
                    firsts.add(pkt.stream.index)
                    if _packet_start(pkt) > w_start:
                        raise LookupError
                if len(firsts) == len(self._streams):
                    return _chain(buffered, packets)
            raise LookupError
        except (LookupError, av.error.FFmpegError):
            name = self._input.name
            self._input.close()
            self._input = av.open(str(name), mode="r")
            self._streams = list(self._input.streams.audio)
            return None


def _chain(first: list[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from first
    yield from rest


def _packet_start(pkt: Any) -> Fraction:
    stamp = pkt.pts if pkt.pts is not None else pkt.dts
    return stamp * Fraction(pkt.time_base)


def _packet_stamp(pkt: Any) -> int:
    """Decode stamp, else presentation stamp (packets without both are skipped)."""
    return int(pkt.dts if pkt.dts is not None else pkt.pts)
