"""Shots: where a video's temporal chain must restart.

Cuts come from PySceneDetect (``mode="auto"``), from a cuts file (any other mode; see
:func:`read_cut_file`), or nowhere (``mode="none"``). Every cut is a source frame index, the
first frame of a new shot; a :class:`Shot` is a half-open frame range with exact times from the
video's :class:`~strotss_video.io.timeline.Timeline`. ``scenedetect`` is imported only here."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..config import ShotsConfig
from ..errors import InputError
from ..io.timecode import parse_time
from ..io.timeline import Timeline

__all__ = ["Shot", "detect_cuts", "find_shots", "format_shot_table", "read_cut_file",
           "shots_from_cuts"]


@dataclass(frozen=True)
class Shot:
    """One shot: source frames ``[start_frame, end_frame)`` and their span in seconds."""

    index: int  # 0-based shot number within the selected range
    start_frame: int  # first source frame index (inclusive)
    end_frame: int  # exclusive
    start_time: Fraction  # seconds from the stream's first frame
    end_time: Fraction  # when the shot's last frame stops being shown

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as float seconds)."""
        return {"index": self.index, "start_frame": self.start_frame,
                "end_frame": self.end_frame, "start_time": float(self.start_time),
                "end_time": float(self.end_time)}


def _require_frames(timeline: Timeline) -> None:
    if not len(timeline):
        raise InputError("no frames in the selected range; choose a start before the end of "
                         "the video and an end after the start")


def shots_from_cuts(cuts: Sequence[int], timeline: Timeline) -> list[Shot]:
    """Split the timeline at ``cuts`` (cuts outside ``(first, end)`` are ignored)."""
    _require_frames(timeline)
    inside = sorted({c for c in cuts if timeline.first < c < timeline.end})
    starts = [timeline.first, *inside]
    ends = [*inside, timeline.end]
    shots = []
    for i, (a, b) in enumerate(zip(starts, ends)):
        end_time = timeline.time(b) if b < timeline.end else timeline.end_time()
        shots.append(Shot(index=i, start_frame=a, end_frame=b, start_time=timeline.time(a),
                          end_time=end_time))
    return shots


def find_shots(path: str | os.PathLike[str], config: ShotsConfig, timeline: Timeline,
               progress: bool = False) -> list[Shot]:
    """The shots of the timeline's frames: one (``mode="none"``), detected (``"auto"``) or
    split at the cuts listed in the file named by ``mode``."""
    _require_frames(timeline)
    if config.mode == "none":
        cuts: list[int] = []
    elif config.mode == "auto":
        cuts = detect_cuts(path, config, timeline, progress=progress)
    else:
        cuts = read_cut_file(config.mode, timeline)
    return shots_from_cuts(cuts, timeline)


# --------------------------------------------------------------------------- detection


def detect_cuts(path: str | os.PathLike[str], config: ShotsConfig, timeline: Timeline,
                progress: bool = False) -> list[int]:
    """Source frame indices where a new shot starts, strictly inside the timeline's range,
    detected by PySceneDetect (PyAV backend) with the configured detector."""
    _require_frames(timeline)
    from .detect import detect_cuts as _detect  # scenedetect (and OpenCV) load only when needed

    return _detect(Path(path), config, timeline, progress)


# --------------------------------------------------------------------------- cuts files

# Written times are rounded to the millisecond (HH:MM:SS.mmm, PySceneDetect's "%.3f"), so a
# frame up to half a millisecond before the written time is the one that was meant.
_ROUNDING = Fraction(1, 2000)
_CSV_HEADER = "Scene Number"
_FORMAT_HINT = ("one cut per line: a frame index (120), seconds (4.5 or 4.5s) or a time "
                "(00:01:02.500), or a PySceneDetect list-scenes CSV")


def read_cut_file(path: str | os.PathLike[str], timeline: Timeline) -> list[int]:
    """Cuts listed in a text file, as sorted unique source frame indices inside the range.

    One cut per line, in the grammar of ``--start`` / ``--end``
    (:func:`~strotss_video.io.timecode.parse_time`: a frame index ``120``, seconds ``4.5s``, a
    clock time ``MM:SS.sss`` / ``HH:MM:SS.sss``) plus one addition: a bare decimal ``4.5`` is
    seconds too. Blank lines and ``#`` comments are skipped. A CSV from
    PySceneDetect's ``list-scenes`` is read too: the start of every scene after the first.
    Cuts on or before the range's first frame, or at/after its end, are ignored; a cut past the
    end of the whole video is an error."""
    _require_frames(timeline)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"cuts file {p} does not exist; pass an existing file, or --shots auto "
                         "or none") from None
    except IsADirectoryError:
        raise InputError(f"cuts file {p} is a directory; pass a text file with {_FORMAT_HINT}"
                         ) from None
    except PermissionError:
        raise InputError(f"cannot read cuts file {p}: permission denied") from None
    except UnicodeDecodeError:
        raise InputError(f"cuts file {p} is not a text file; write {_FORMAT_HINT}") from None
    except OSError as exc:
        raise InputError(f"cannot read cuts file {p}: {exc.strerror}") from None
    lines = text.splitlines()
    header = next((n for n, line in enumerate(lines) if line.startswith(_CSV_HEADER)), None)
    if header is not None:
        cuts = _scenedetect_csv(p, lines, header, timeline)
    else:
        cuts = []
        for number, line in enumerate(lines, start=1):
            s = line.strip()
            if s and not s.startswith("#"):
                cuts.append(_cut_index(p, number, s, _parse_line(p, number, s), timeline))
    return sorted({c for c in cuts if timeline.first < c < timeline.end})


def _parse_line(p: Path, number: int, s: str) -> int | Fraction:
    """A frame index (int) or seconds (Fraction) from one line of a cuts file."""
    try:
        return parse_time(s, decimal_seconds=True)
    except InputError:
        raise InputError(f"{p} line {number}: {s!r} is not a cut; write {_FORMAT_HINT}") from None


def _cut_index(p: Path, number: int, text: str, cut: int | Fraction,
               timeline: Timeline) -> int:
    """Source index of a parsed cut; a cut past the end of the video is an error."""
    if isinstance(cut, int):
        index, past = cut, cut >= timeline.end
    else:
        seconds = max(Fraction(0), cut - _ROUNDING)
        index, past = timeline.index_at(seconds), seconds > timeline.end_time()
    if past and timeline.at_stream_end:
        last = (f"it has {timeline.end} frames" if isinstance(cut, int)
                else f"it ends at {float(timeline.end_time()):.3f} s")
        raise InputError(f"{p} line {number}: cut {text!r} is past the end of the video "
                         f"({last}); fix or remove the line")
    return index


def _scenedetect_csv(p: Path, lines: list[str], header: int, timeline: Timeline) -> list[int]:
    """Cuts of a ``scenedetect ... list-scenes`` CSV: the start of every scene but the first.

    The "Start Time (seconds)" column is used, not "Start Frame": PySceneDetect 0.7 derives
    frame numbers from timestamps at the nominal rate (wrong on variable-rate video) and writes
    them 1-based, while its seconds are the decoded timestamps (to the millisecond)."""
    # The writer's delimiter is configurable (-d); it follows the first header cell.
    rest = lines[header][len(_CSV_HEADER):]
    delimiter = rest[0] if rest else ","
    rows = list(csv.reader(lines[header:], delimiter=delimiter))
    columns = rows[0]
    if "Start Time (seconds)" in columns:
        column, as_time = columns.index("Start Time (seconds)"), True
    elif "Start Frame" in columns:
        column, as_time = columns.index("Start Frame"), False
    else:
        raise InputError(f"{p} line {header + 1}: a PySceneDetect scene list needs a "
                         "'Start Time (seconds)' or 'Start Frame' column; write it with "
                         "`scenedetect ... list-scenes`")
    cuts = []
    for offset, row in enumerate(rows[2:], start=2):  # rows[1] is the first scene
        number = header + offset + 1
        if not any(cell.strip() for cell in row):
            continue
        text = row[column].strip() if column < len(row) else ""
        try:
            value: int | Fraction = (Fraction(Decimal(text)) if as_time
                                     else int(text) - 1)  # "Start Frame" counts from 1
            if value < 0:
                raise ValueError(text)
        except (ArithmeticError, ValueError):
            raise InputError(f"{p} line {number}: {text!r} is not a scene start in "
                             f"{columns[column]!r}; pass the CSV `scenedetect list-scenes` "
                             "wrote, unedited") from None
        cuts.append(_cut_index(p, number, text, value, timeline))
    return cuts


# --------------------------------------------------------------------------- report


def _clock(seconds: Fraction) -> str:
    """HH:MM:SS.mmm, rounded to the millisecond."""
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    return f"{hours:02d}:{minutes:02d}:{ms // 1000:02d}.{ms % 1000:03d}"


def format_shot_table(shots: Sequence[Shot]) -> str:
    """A plain-text table of shots (frames end-exclusive, times in seconds and HH:MM:SS.mmm)."""
    header = ("shot", "start frame", "end frame", "frames", "start s", "end s", "start",
              "end")
    rows = [(str(s.index), str(s.start_frame), str(s.end_frame), str(s.frames),
             f"{float(s.start_time):.3f}", f"{float(s.end_time):.3f}", _clock(s.start_time),
             _clock(s.end_time)) for s in shots]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
