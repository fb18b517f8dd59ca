"""The one time grammar (strotss_video.io.timecode): ``--start`` / ``--end`` and cut-file lines
accept and refuse the same strings, with the one documented difference that a cut file also
reads a bare decimal (``4.5``) as seconds."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from clitools import REPO

from strotss_video.errors import InputError
from strotss_video.io.timecode import parse_time
from strotss_video.io.timeline import Timeline
from strotss_video.shots import read_cut_file

ACCEPTED = [
    ("120", 120),
    ("0", 0),
    (" 12 ", 12),
    ("4.5s", Fraction(9, 2)),
    ("4.5 s", Fraction(9, 2)),
    ("4s", Fraction(4)),
    ("0.1s", Fraction(1, 10)),
    (".5s", Fraction(1, 2)),
    ("00:00:04.5", Fraction(9, 2)),
    ("1:02.25", Fraction(249, 4)),
    ("0:05", Fraction(5)),
    ("1:00:00", Fraction(3600)),
    ("0:00:00.033366666", Fraction(33366666, 10**9)),
]
REFUSED = ["", "abc", "-3", "-1.5s", "4.5 sec", "1:75", "1:61:00", "1e3s", "s", "1::2", "4.",
           "4.s", "1:02.", ":30", "1:2:3:4", "4,5s", "12 frames", "+3"]
BARE_DECIMALS = [("1.5", Fraction(3, 2)), (".5", Fraction(1, 2)), ("0.25", Fraction(1, 4))]

# Over an hour at 2 fps: every time above is inside it, so no cut is refused for being past
# the end of the video (which would hide whether its text was accepted).
TIMELINE = Timeline(time_base=Fraction(1, 2), first=0, pts=tuple(range(8000)),
                    durations=(None,) * 8000, start_pts=0)


@pytest.mark.parametrize("text, value", ACCEPTED)
def test_parse_time(text: str, value: int | Fraction) -> None:
    got = parse_time(text)
    assert got == value and type(got) is type(value)
    assert parse_time(text, decimal_seconds=True) == value


@pytest.mark.parametrize("text", REFUSED + [t for t, _ in BARE_DECIMALS])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_time(text)
    assert "\n" not in str(info.value) and "4.5s" in str(info.value)


@pytest.mark.parametrize("text, value", BARE_DECIMALS)
def test_bare_decimal_is_seconds_only_where_documented(text: str, value: Fraction) -> None:
    got = parse_time(text, decimal_seconds=True)
    assert got == value and type(got) is Fraction


def cut_file_reads(tmp_path: Path, line: str) -> list[int] | None:
    """What read_cut_file makes of a one-line cut file: its cuts, or None if it refuses it."""
    path = tmp_path / "cuts.txt"
    path.write_text(f"{line}\n")
    try:
        return read_cut_file(path, TIMELINE)
    except InputError as exc:
        assert "\n" not in str(exc) and "line 1:" in str(exc)
        return None


def expected_cut(value: int | Fraction) -> list[int]:
    index = value if isinstance(value, int) else TIMELINE.index_at(value - Fraction(1, 2000))
    return [index] if TIMELINE.first < index < TIMELINE.end else []


# A blank line is no cut at all in a cut file (skipped, as documented).
@pytest.mark.parametrize("text", [t for t, _ in ACCEPTED] + [t for t in REFUSED if t])
def test_cut_files_and_start_end_share_the_grammar(tmp_path: Path, text: str) -> None:
    try:
        value: int | Fraction | None = parse_time(text)
    except InputError:
        value = None
    read = cut_file_reads(tmp_path, text)
    if value is None:
        assert read is None, f"the cut file accepts {text!r}, --start refuses it"
    else:
        assert read == expected_cut(value), f"{text!r} means another time in a cut file"


@pytest.mark.parametrize("text, value", BARE_DECIMALS)
def test_cut_files_read_a_bare_decimal_as_seconds(tmp_path: Path, text: str,
                                                  value: Fraction) -> None:
    assert cut_file_reads(tmp_path, text) == expected_cut(value)
    assert cut_file_reads(tmp_path, text) == cut_file_reads(tmp_path, f"{text}s")


def test_the_time_grammar_needs_no_pyav() -> None:
    """The CLI can check a time before it imports PyAV (or torch)."""
    code = ("import sys; import strotss_video.io.timecode as t; t.parse_time('1:02.5'); "
            "assert 'av' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
