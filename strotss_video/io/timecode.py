"""The one time grammar of the project: ``--start`` / ``--end`` values and cut-file lines.

Pure Python (no PyAV, no torch), so the CLI can check a time before any heavy import.

    120           frame index (int)
    4.5s  .5s  4s seconds (exact Fraction of the decimal text)
    1:02.25       MM:SS(.sss) clock time; seconds below 60
    0:01:02.5     HH:MM:SS(.sss) clock time; minutes and seconds below 60

Cut files also read a bare decimal with a point (``4.5``, ``.5``) as seconds
(``decimal_seconds=True``); on the command line it is refused, because ``4`` and ``4.5``
would then mean a frame and a time."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from ..errors import InputError

__all__ = ["TIME_HINT", "parse_time"]

TIME_HINT = "use a frame index (120), seconds (4.5s) or a clock time (00:01:02.5)"
"""What a time may look like, for error messages."""

_FRAME = re.compile(r"\d+")
_DECIMAL = r"\d+(?:\.\d+)?|\.\d+"
_SECONDS = re.compile(rf"({_DECIMAL})\s*s")
_BARE_SECONDS = re.compile(r"\d+\.\d+|\.\d+")  # a bare integer is a frame index
_CLOCK = re.compile(r"(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)")


def parse_time(text: str, *, decimal_seconds: bool = False) -> int | Fraction:
    """``"120"`` -> frame index 120; ``"4.5s"`` / ``"00:00:04.5"`` / ``"1:02.25"`` -> seconds.

    Seconds are exact ``Fraction`` values of the decimal text. ``decimal_seconds`` also reads
    ``"4.5"`` as seconds (cut files). Anything else is a one-line :class:`InputError`."""
    s = text.strip()
    if _FRAME.fullmatch(s):
        return int(s)
    m = _SECONDS.fullmatch(s)
    if m:
        return _decimal(m.group(1), text)
    if decimal_seconds and _BARE_SECONDS.fullmatch(s):
        return _decimal(s, text)
    m = _CLOCK.fullmatch(s)
    if m:
        return _clock(m, text)
    raise InputError(f"invalid time {text!r}; {TIME_HINT}")


def _clock(m: re.Match[str], text: str) -> Fraction:
    hours, minutes, seconds = m.group(1), int(m.group(2)), _decimal(m.group(3), text)
    if seconds >= 60:
        raise InputError(f"invalid time {text!r}: seconds must be below 60; {TIME_HINT}")
    if hours is not None and minutes >= 60:
        raise InputError(f"invalid time {text!r}: minutes must be below 60; {TIME_HINT}")
    return seconds + 60 * minutes + 3600 * int(hours or 0)


def _decimal(digits: str, text: str) -> Fraction:
    try:
        return Fraction(Decimal(digits))
    except (InvalidOperation, ValueError):
        raise InputError(f"invalid time {text!r}; {TIME_HINT}") from None
