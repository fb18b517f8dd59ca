"""Which output frame shows which input frame, matched by presentation time (no torch here).

The video command writes a frame range with its source timestamps shifted so that the range's
first frame lands on 0. So the output frame shown ``t`` seconds after the output's first frame
shows the input frame ``t`` seconds after the first frame of the range it was made from:
``start``/``end`` name that range, in the same forms as the video command's ``--start/--end``.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.reader import Frame, read_frames
from ..io.timeline import Timeline, scan_timeline

Bound = int | Fraction | None


@dataclass(frozen=True)
class FrameMatch:
    """One output frame and the input frame shown at the same moment."""

    output_index: int  # source index in the output video
    input_index: int  # source index in the input video
    time: Fraction  # seconds after the output's first frame


def _relative_times(timeline: Timeline) -> list[Fraction]:
    """Seconds of each held frame after the first held frame (exact)."""
    return [(pts - timeline.pts[0]) * timeline.time_base for pts in timeline.pts]


def _half_gap(times: Sequence[Fraction], k: int) -> Fraction:
    """Half the shortest gap from ``times[k]`` to a neighbour (0 for a lone frame)."""
    gaps = [abs(times[j] - times[k]) for j in (k - 1, k + 1) if 0 <= j < len(times)]
    return min(gaps) / 2 if gaps else Fraction(0)


def match_times(output_times: Sequence[Fraction],
                input_times: Sequence[Fraction]) -> list[tuple[int, int]]:
    """Positions ``(i, j)`` where ``output_times[i]`` and ``input_times[j]`` are one moment.

    Each output time takes the nearest input time when it is closer than half the input's frame
    gap there (rounded time bases, e.g. Matroska's milliseconds, still match; a time between two
    input frames does not). Each input frame is matched once. Both sequences ascend."""
    pairs: list[tuple[int, int]] = []
    last = -1
    for i, t in enumerate(output_times):
        j = bisect_left(input_times, t)
        near = [k for k in (j - 1, j) if 0 <= k < len(input_times)]
        if not near:
            continue
        k = min(near, key=lambda n: abs(input_times[n] - t))
        distance = abs(input_times[k] - t)
        if k > last and (distance == 0 or distance < _half_gap(input_times, k)):
            pairs.append((i, k))
            last = k
    return pairs


def match_frames(output: str | os.PathLike[str], input: str | os.PathLike[str],
                 start: Bound = None, end: Bound = None,
                 limit: int | None = None) -> list[FrameMatch]:
    """The output's frames matched with the input's range ``[start, end)`` by time.

    ``limit`` keeps the first matches only. Raises :class:`InputError` when fewer than two
    frames match (the warping error needs a pair)."""
    out_line = scan_timeline(output)
    in_line = scan_timeline(input, start, end)
    out_times, in_times = _relative_times(out_line), _relative_times(in_line)
    matches = [FrameMatch(out_line.first + i, in_line.first + j, out_times[i])
               for i, j in match_times(out_times, in_times)]
    if limit is not None:
        matches = matches[:limit]
    if len(matches) < 2:
        found = "no frame" if not matches else "only 1 frame"
        raise InputError(
            f"{found} of {Path(output).name} matches a frame of {Path(input).name} in time "
            f"(output: {len(out_times)} frames, input range: {len(in_times)} frames from frame "
            f"{in_line.first}); evaluate needs 2: pass the --start/--end the output was made with")
    return matches


def _advance(frames: Iterator[Frame], index: int, path: str | os.PathLike[str]) -> np.ndarray:
    """The image of source frame ``index``, skipping the frames before it."""
    for frame in frames:
        if frame.index == index:
            return frame.image
    raise InputError(f"frame {index} of {path} could not be decoded; re-encode the file "
                     "(e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`)")


def matched_frames(output: str | os.PathLike[str], input: str | os.PathLike[str],
                   matches: Sequence[FrameMatch],
                   size: tuple[int, int]) -> Iterator[tuple[FrameMatch, np.ndarray, np.ndarray]]:
    """Decode the matched frames of both videos at ``size`` (H, W), in order.

    Yields ``(match, output (H,W,3), input (H,W,3))`` uint8 RGB; frames between matches are
    decoded and dropped. One frame of each video is held at a time."""
    if not matches:
        return
    outs = read_frames(output, matches[0].output_index, matches[-1].output_index + 1, size=size)
    ins = read_frames(input, matches[0].input_index, matches[-1].input_index + 1, size=size)
    for match in matches:
        yield (match, _advance(outs, match.output_index, output),
               _advance(ins, match.input_index, input))
