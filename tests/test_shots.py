"""Frame timelines, shot detection (PySceneDetect), cuts files and the shot table."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
from media import Clip, make_clip

from strotss_video.config import ShotsConfig
from strotss_video.errors import InputError
from strotss_video.io.reader import read_frames
from strotss_video.io.timeline import Timeline, scan_timeline
from strotss_video.shots import (
    Shot,
    detect_cuts,
    find_shots,
    format_shot_table,
    read_cut_file,
    shots_from_cuts,
)

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"

CUTS = (20, 41)
FRAMES = 60


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shots")


@pytest.fixture(scope="module")
def cfr(media: Path) -> Clip:
    # One pixel of pan per frame: real footage moves a few percent of the cut's change per
    # frame; the default (2, 1) on a 96 px texture is a whip-pan by AdaptiveDetector's measure.
    return make_clip(media / "cuts.mp4", frames=FRAMES, size=(96, 64), cuts=CUTS, shift=(1, 0),
                     audio=False)


@pytest.fixture(scope="module")
def vfr(media: Path) -> Clip:
    # VFR (gaps of 1001/2002 in 1/30000 s) with B-frames: PySceneDetect's nominal-rate frame
    # numbers would put these cuts at 30 and 61.
    return make_clip(media / "cuts_vfr.mp4", frames=FRAMES, size=(96, 64), cuts=CUTS,
                     shift=(1, 0), vfr=True, audio=False, options={"preset": "medium"})


@pytest.fixture(scope="module", params=["cfr", "vfr"])
def clip(request: pytest.FixtureRequest) -> Clip:
    return request.getfixturevalue(request.param)


def timeline_of(clip: Clip) -> Timeline:
    return scan_timeline(clip.path)


# --------------------------------------------------------------------------- media helper


def test_make_clip_cuts_field(media: Path, cfr: Clip) -> None:
    assert cfr.cuts == CUTS and cfr.cut == 20
    assert cfr.offset(19) == (19, 0) and cfr.offset(20) == (0, 0) and cfr.offset(45) == (4, 0)
    old = make_clip(media / "half.mp4", frames=8, pattern="cut", audio=False)
    assert old.cuts == (4,) and old.cut == 4
    plain = make_clip(media / "plain.mp4", frames=4, audio=False)
    assert plain.cuts == () and plain.cut is None
    with pytest.raises(ValueError):
        make_clip(media / "bad.mp4", frames=8, cuts=(5, 3), audio=False)


# --------------------------------------------------------------------------- timeline


def assert_matches_read_frames(clip: Clip, start: int | Fraction | None,
                               end: int | Fraction | None) -> Timeline:
    timeline = scan_timeline(clip.path, start, end)
    frames = list(read_frames(clip.path, start, end))
    assert len(timeline) == len(frames) > 0
    assert timeline.first == frames[0].index
    assert timeline.end == frames[-1].index + 1
    assert timeline.pts == tuple(f.pts for f in frames)
    assert timeline.durations == tuple(f.duration for f in frames)
    assert timeline.time_base == frames[0].time_base == clip.time_base
    assert timeline.start_pts == clip.pts[0]
    for f in frames:
        assert timeline.time(f.index) == (f.pts - clip.pts[0]) * clip.time_base
        assert timeline.index_at(timeline.time(f.index)) == f.index
    return timeline


@pytest.mark.parametrize("start, end", [
    (None, None), (7, 33), (Fraction(1, 3), Fraction(3, 2)), (50, None), (40, 1000),
    (Fraction(1), Fraction(100))])
def test_timeline_matches_read_frames(clip: Clip, start: int | Fraction | None,
                                      end: int | Fraction | None) -> None:
    timeline = assert_matches_read_frames(clip, start, end)
    # Times stay relative to the stream's first frame, whatever the range.
    assert timeline.time(timeline.first) == clip.times[timeline.first] - clip.times[0]
    assert timeline.at_stream_end == (timeline.end == clip.frames)
    if not timeline.at_stream_end:
        assert timeline.next_pts == clip.pts[timeline.end]


def test_timeline_end_time_and_index_at(vfr: Clip) -> None:
    timeline = timeline_of(vfr)
    times = [t - vfr.times[0] for t in vfr.times]
    last = timeline.durations[-1] or (vfr.pts[-1] - vfr.pts[-2])
    assert timeline.end_time() == times[-1] + last * vfr.time_base
    assert timeline.index_at(Fraction(0)) == 0
    assert timeline.index_at(times[5] + Fraction(1, 30000)) == 6  # just after a frame: the next
    assert timeline.index_at(times[-1] + 1) == timeline.end  # clamped
    with pytest.raises(IndexError):
        timeline.time(FRAMES)
    # A range's helpers see only its own frames.
    part = scan_timeline(vfr.path, 10, 20)
    assert (part.first, part.end, len(part)) == (10, 20, 10)
    assert part.index_at(Fraction(0)) == 10
    assert part.end_time() == times[20]  # the last frame lasts until the next one starts


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize("detector", ["adaptive", "content"])
def test_detects_both_cuts(clip: Clip, detector: str) -> None:
    cuts = detect_cuts(clip.path, ShotsConfig(detector=detector), timeline_of(clip))
    assert len(cuts) == 2
    assert all(abs(c - truth) <= 1 for c, truth in zip(cuts, CUTS)), cuts


@pytest.mark.parametrize("detector", ["adaptive", "content"])
def test_detection_within_a_range(vfr: Clip, detector: str) -> None:
    config = ShotsConfig(detector=detector)
    # The range's first frame never counts as a cut; a cut on its last frame still does
    # (AdaptiveDetector needs two frames after it, which are decoded past the range).
    assert detect_cuts(vfr.path, config, scan_timeline(vfr.path, 20, 60)) == [41]
    assert detect_cuts(vfr.path, config, scan_timeline(vfr.path, 0, 42)) == [20, 41]
    assert detect_cuts(vfr.path, config, scan_timeline(vfr.path, 22, 40)) == []


@pytest.mark.parametrize("detector", ["adaptive", "content"])
def test_min_shot_frames(cfr: Clip, detector: str) -> None:
    timeline = timeline_of(cfr)
    cuts = detect_cuts(cfr.path, ShotsConfig(detector=detector, min_shot_frames=25), timeline)
    # The cut at 20 is too close to the start; the one at 41 is 21 frames after it, which the
    # content detector (counting from the last frame above its threshold) also refuses.
    assert 20 not in cuts and set(cuts) <= {41}
    bounds = [0, *cuts]
    assert all(b - a >= 25 for a, b in itertools.pairwise(bounds))


def test_shots_none_auto_and_file(cfr: Clip, media: Path) -> None:
    timeline = timeline_of(cfr)
    (one,) = find_shots(cfr.path, ShotsConfig(mode="none"), timeline)
    assert (one.start_frame, one.end_frame, one.frames) == (0, FRAMES, FRAMES)
    assert (one.start_time, one.end_time) == (0, timeline.end_time())
    auto = find_shots(cfr.path, ShotsConfig(), timeline)
    assert [s.start_frame for s in auto] == [0, 20, 41]
    listed = media / "cuts.txt"
    listed.write_text("41\n20\n")
    assert find_shots(cfr.path, ShotsConfig(mode=str(listed)), timeline) == auto


def test_shots_cover_every_frame_once(vfr: Clip) -> None:
    timeline = scan_timeline(vfr.path, 5, 50)
    shots = shots_from_cuts([41, 20, 20, 3, 5, 50, 70], timeline)  # unsorted, outside, repeated
    assert [(s.index, s.start_frame, s.end_frame) for s in shots] == [
        (0, 5, 20), (1, 20, 41), (2, 41, 50)]
    covered = [i for s in shots for i in range(s.start_frame, s.end_frame)]
    assert covered == list(range(timeline.first, timeline.end))
    assert sum(s.frames for s in shots) == len(timeline)
    for a, b in itertools.pairwise(shots):
        assert a.end_frame == b.start_frame and a.end_time == b.start_time
    for s in shots:
        assert s.start_time == timeline.time(s.start_frame) < s.end_time
    assert shots[-1].end_time == timeline.end_time()
    data = json.loads(json.dumps([s.to_dict() for s in shots]))
    assert data[1] == {"index": 1, "start_frame": 20, "end_frame": 41,
                       "start_time": float(timeline.time(20)),
                       "end_time": float(timeline.time(41))}


def test_empty_timeline_is_an_input_error(cfr: Clip) -> None:
    empty = Timeline(time_base=Fraction(1, 30), first=0, pts=(), durations=(), start_pts=0)
    for call in (lambda: shots_from_cuts([], empty),
                 lambda: find_shots(cfr.path, ShotsConfig(), empty),
                 lambda: detect_cuts(cfr.path, ShotsConfig(), empty)):
        with pytest.raises(InputError, match="no frames"):
            call()


def test_undecodable_video_is_an_input_error(cfr: Clip, tmp_path: Path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all" * 100)
    with pytest.raises(InputError, match="shot detection") as info:
        detect_cuts(fake, ShotsConfig(), timeline_of(cfr))
    assert "\n" not in str(info.value)


def test_shot_table(cfr: Clip) -> None:
    shots = shots_from_cuts([20, 41], timeline_of(cfr))
    table = format_shot_table(shots).splitlines()
    assert len(table) == 2 + 3
    assert table[0].split() == ["shot", "start", "frame", "end", "frame", "frames", "start", "s",
                                "end", "s", "start", "end"]
    assert table[3].split() == ["1", "20", "41", "21", "0.667", "1.367", "00:00:00.667",
                                "00:00:01.367"]


# --------------------------------------------------------------------------- cuts files


def test_cut_file_indices_and_times(cfr: Clip, tmp_path: Path) -> None:
    timeline = timeline_of(cfr)  # 30 fps: frame 20 at 0.6667 s, 41 at 1.3667 s
    path = tmp_path / "cuts.txt"
    path.write_text("# shots of the test clip\n\n41\n  0.667  \n00:00:01.367\n0:01.367\n"
                    "1.5s\n1.5\n0\n# 30\n")
    assert read_cut_file(path, timeline) == [20, 41, 45]
    # A range keeps only the cuts strictly inside it.
    assert read_cut_file(path, scan_timeline(cfr.path, 20, 45)) == [41]


def test_cut_file_errors(cfr: Clip, tmp_path: Path) -> None:
    timeline = timeline_of(cfr)
    path = tmp_path / "cuts.txt"
    path.write_text("10\n\n12 frames\n")
    with pytest.raises(InputError, match=r"line 3: '12 frames' is not a cut") as info:
        read_cut_file(path, timeline)
    assert "\n" not in str(info.value)
    for line in ("60", "2.5", "00:01:00"):
        path.write_text(f"10\n{line}\n")
        with pytest.raises(InputError, match="line 2: .*past the end of the video"):
            read_cut_file(path, timeline)
    # Past a selected range's end (but not the video's): simply outside the range.
    assert read_cut_file(path, scan_timeline(cfr.path, 0, 30)) == [10]
    with pytest.raises(InputError, match="does not exist"):
        read_cut_file(tmp_path / "missing.txt", timeline)
    with pytest.raises(InputError, match="is a directory"):
        read_cut_file(tmp_path, timeline)


def run_scenedetect(clip: Clip, out: Path, *options: str, config: str = "") -> Path:
    """The CSV that PySceneDetect's own CLI (`list-scenes`) writes for ``clip``."""
    out.mkdir()
    settings = out / "scenedetect.cfg"
    settings.write_text(config)
    subprocess.run([sys.executable, "-m", "scenedetect", "-q", "-c", str(settings), "-i",
                    str(clip.path), "-b", "pyav", "detect-content", "list-scenes", "-o", str(out),
                    *options], check=True, capture_output=True, timeout=120)
    (csv_path,) = out.glob("*.csv")
    return csv_path


def test_cut_file_from_scenedetect_cli(clip: Clip, tmp_path: Path) -> None:
    timeline = timeline_of(clip)
    csv_path = run_scenedetect(clip, tmp_path / "default")
    assert csv_path.read_text().startswith("Timecode List:")
    assert read_cut_file(csv_path, timeline) == list(CUTS)
    # Without the timecode row, and with the delimiter its config file can set.
    csv_path = run_scenedetect(clip, tmp_path / "semicolon", "--skip-cuts",
                               config="[list-scenes]\ncol-separator = ;\n")
    assert csv_path.read_text().startswith("Scene Number;Start Frame")
    assert read_cut_file(csv_path, timeline) == list(CUTS)


def test_cut_file_bad_scenedetect_csv(cfr: Clip, tmp_path: Path) -> None:
    csv_path = run_scenedetect(cfr, tmp_path / "out")
    lines = csv_path.read_text().splitlines()
    lines[3] = lines[3].replace("0.667", "soon")  # second scene's start time
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="line 4: 'soon' is not a scene start"):
        read_cut_file(csv_path, timeline_of(cfr))


# --------------------------------------------------------------------------- real clips


@pytest.mark.devdata
@pytest.mark.skipif(not SHARED_VIDEOS.is_dir(), reason="../shared/data/videos not present")
@pytest.mark.parametrize("name, expected", [
    ("adain_cutBunny.mp4", [235]), ("cotracker_bear.mp4", []), ("sam2_bedroom.mp4", [])])
def test_dev_clips(name: str, expected: list[int]) -> None:
    path = SHARED_VIDEOS / name
    timeline = scan_timeline(path)
    began = time.perf_counter()
    cuts = detect_cuts(path, ShotsConfig(), timeline)
    seconds = time.perf_counter() - began
    print(f"{name}: {len(timeline)} frames, cuts {cuts}, detection {seconds:.2f} s")
    assert len(cuts) == len(expected)
    assert all(abs(c - e) <= 3 for c, e in zip(cuts, expected)), cuts
    shots = shots_from_cuts(cuts, timeline)
    assert isinstance(shots[0], Shot) and shots[-1].end_frame == len(timeline)
