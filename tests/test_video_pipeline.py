"""End-to-end tests of video stylisation (strotss_video.pipeline.video and the video CLI).

Clips are real files made by ``tests/media.py`` (panned texture, AAC audio, optional VFR
timestamps and rotation). Most runs inject the small random ``TinyExtractor`` and a tiny
configuration (64 px, one scale, a few steps) so each takes about a second on a CPU. The CLI
tests run ``python -m strotss_video`` in subprocesses (the real VGG16 weights, cached offline,
are loaded by the one successful run and by the bad inputs found after loading them). Times
are compared as exact Fractions."""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from clitools import assert_one_line_error, run_cli, snapshot
from conftest import TinyExtractor, pattern_image, save_rgb
from media import Clip, PacketInfo, demux_summary, make_audio_only, make_clip, make_jpeg

import strotss_video.pipeline.chain as chain_module
import strotss_video.pipeline.job as job_module
import strotss_video.temporal.coherence as coherence_module
from strotss_video.io.probe import probe
from strotss_video.io.reader import VideoReadWarning, read_frames
from strotss_video.pipeline.video import (
    SHEET_FRAMES,
    VideoResult,
    VideoStylizer,
    processing_size,
    stylize_video,
    to_tensor,
)

REPO = Path(__file__).resolve().parents[1]
TINY: dict[str, Any] = dict(max_size=64, scales=1, iters=3, output_points=64, style_points=128,
                            warm_iters=2)
COLD_ITERS = TINY["scales"] * TINY["iters"]
W, H = 66, 50
PW, PH = 64, 48  # processing size of 66x50 at 64 px (even sides)
GAP = 4  # write_contact_sheet's default spacer


def run(clip: Path, out: Path | None, style: Path, **kw: Any) -> VideoResult:
    extractor = kw.pop("extractor", None) or TinyExtractor()
    return stylize_video(clip, style, out, extractor=extractor, progress=False, **{**TINY, **kw})


def decoded(path: Path) -> list:
    return list(read_frames(path))


def audio_packets(path: Path) -> list[PacketInfo]:
    return [p for p in demux_summary(path) if p.kind == "audio"]


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def sheet_cells(sheet: np.ndarray, rows: int, h: int,
                w: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(left, right) RGB cells of a contact sheet read by cv2 (BGR)."""
    rgb = sheet[..., ::-1]
    tops = [r * (h + GAP) for r in range(rows)]
    return [(rgb[y:y + h, :w], rgb[y:y + h, w + GAP:]) for y in tops]


# --------------------------------------------------------------------------- shared media


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pipeline-media")


@pytest.fixture(scope="module")
def style(media: Path) -> Path:
    return save_rgb(media / "style.png", pattern_image(64, 64, seed=2))


@pytest.fixture(scope="module")
def cfr6(media: Path) -> Clip:
    return make_clip(media / "cfr6.mp4", frames=6, size=(W, H))


@pytest.fixture(scope="module")
def vfr12(media: Path) -> Clip:
    return make_clip(media / "vfr12.mp4", frames=12, size=(W, H), vfr=True)


@dataclass
class MainRun:
    result: VideoResult
    out: Path
    stats: Path
    sheet: Path
    caught: list[warnings.WarningMessage]


@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory, cfr6: Clip, style: Path) -> MainRun:
    """The 6-frame end-to-end run (temporal on, DIS flow) with stats and a preview sheet."""
    d = tmp_path_factory.mktemp("main-run")
    out, stats, sheet = d / "out.mp4", d / "stats.json", d / "sheet.png"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(cfr6.path, out, style, stats=stats, preview_sheet=sheet)
    return MainRun(result, out, stats, sheet, list(caught))


# --------------------------------------------------------------------------- the main run


def test_processing_size_is_even_and_keeps_the_aspect() -> None:
    assert processing_size(H, W, 64) == (PH, PW)
    assert processing_size(49, 67, 64) == (46, 64)
    assert processing_size(W, H, 64) == (PW, PH)  # portrait
    assert processing_size(H, W, 65) == (PH, PW)  # an odd max size is rounded down
    for h, w in ((49, 67), (101, 37), (3, 500)):
        ph, pw = processing_size(h, w, 64)
        assert ph % 2 == 0 and pw % 2 == 0 and max(ph, pw) == 64 and min(ph, pw) >= 2


def test_end_to_end_frames_times_rate_and_audio(main_run: MainRun, cfr6: Clip) -> None:
    out = main_run.out
    assert main_run.result.output == out
    assert listing(out.parent) == ["out.mp4", "sheet.png", "stats.json"]  # no .part left
    bad = [w for w in main_run.caught if issubclass(w.category, (VideoReadWarning, RuntimeWarning))]
    assert not bad, [str(w.message) for w in bad]

    frames = decoded(out)
    assert len(frames) == 6
    assert all(f.image.shape == (PH, PW, 3) for f in frames)
    # Exact timestamps: the same pts in the same time base, so the same Fraction times.
    info_in, info_out = probe(cfr6.path), probe(out)
    assert info_out.time_base == cfr6.time_base
    assert [f.pts for f in frames] == cfr6.pts
    assert [f.time for f in frames] == cfr6.times
    assert info_out.average_rate == info_in.average_rate == Fraction(30)
    assert (info_out.width, info_out.height, info_out.rotation) == (PW, PH, 0)
    assert info_out.duration == info_in.duration
    # Audio is stream-copied packet for packet: same bytes, timestamps and durations.
    a_in, a_out = audio_packets(cfr6.path), audio_packets(out)
    assert len(a_in) > 5
    assert [(p.pts, p.dts, p.duration, p.time, p.data) for p in a_out] == \
        [(p.pts, p.dts, p.duration, p.time, p.data) for p in a_in]


def test_frame_records(main_run: MainRun, cfr6: Clip) -> None:
    records = main_run.result.frames
    assert [r.index for r in records] == list(range(6))
    assert [r.pts for r in records] == cfr6.pts
    assert [r.kind for r in records] == ["cold"] + ["warm"] * 5
    assert [r.iterations for r in records] == [COLD_ITERS] + [TINY["warm_iters"]] * 5
    assert records[0].reliable is None and records[0].flow_seconds == 0.0
    assert "temporal" not in records[0].losses
    for r in records[1:]:
        assert r.reliable is not None and 0.0 < r.reliable <= 1.0
        # The clip pans 2 px right, 1 px down: most of each frame is trackable.
        assert r.reliable > 0.5
        assert r.flow_seconds > 0.0
        assert "temporal" in r.losses and r.losses["temporal"] >= 0.0
    for r in records:
        assert r.seconds > 0 and r.vgg_seconds >= 0
        assert all(np.isfinite(v) for v in r.losses.values())


def test_stats_json(main_run: MainRun) -> None:
    data = json.loads(main_run.stats.read_text())
    assert data == json.loads(json.dumps(main_run.result.stats))  # the file is the result's record
    summary = data["summary"]
    for key in ("frames", "seconds", "mean_cold_seconds", "mean_warm_seconds", "peak_rss_mib"):
        assert key in summary, key
    assert summary["frames"] == 6
    assert summary["cold_frames"] == 1 and summary["warm_frames"] == 5
    assert summary["seconds"] > 0 and summary["mean_cold_seconds"] > 0
    assert summary["mean_warm_seconds"] > 0 and summary["peak_rss_mib"] > 0
    assert summary["processing_size"] == [PW, PH] and summary["output_size"] == [PW, PH]
    assert summary["weights_source"] == "injected extractor"
    assert [f["kind"] for f in data["frames"]] == ["cold"] + ["warm"] * 5
    assert data["config"]["strotss"]["max_size"] == 64
    assert data["config"]["temporal"]["warm_iters"] == TINY["warm_iters"]


def test_preview_sheet(main_run: MainRun, cfr6: Clip) -> None:
    sheet = cv2.imread(str(main_run.sheet), cv2.IMREAD_COLOR)
    assert sheet is not None
    rows = min(SHEET_FRAMES, 6)
    assert sheet.shape == (rows * (PH + GAP), 2 * PW + GAP, 3)
    assert (sheet[:, PW:PW + GAP] == 255).all()  # the white spacer between the two columns
    inputs = [f.image for f in read_frames(cfr6.path, size=(PH, PW))]
    outputs = [f.image for f in decoded(main_run.out)]
    for k, (left, right) in enumerate(sheet_cells(sheet, rows, PH, PW)):
        assert np.array_equal(left, inputs[k])  # the processed input, exactly (PNG is lossless)
        # The stylised frame as encoded (x264 crf 18 at 64x48 is close, not exact).
        to_output = np.abs(right.astype(int) - outputs[k].astype(int)).mean()
        assert to_output < 8.0
        assert to_output < 0.5 * np.abs(right.astype(int) - left.astype(int)).mean()


def test_same_seed_gives_identical_frames(main_run: MainRun, cfr6: Clip, style: Path,
                                          tmp_path: Path) -> None:
    # Lossless x264 (crf 0): libx264's bitstream for identical input frames is not always
    # byte-identical between runs in one process (seen at 64x48), but decoded frames are.
    runs = [run(cfr6.path, tmp_path / f"again{k}.mp4", style, crf=0) for k in range(2)]
    # The stylisation itself does not depend on the encoder: same losses as the main run.
    for again in runs:
        assert [r.losses for r in again.frames] == [r.losses for r in main_run.result.frames]
    first, second = decoded(tmp_path / "again0.mp4"), decoded(tmp_path / "again1.mp4")
    assert len(first) == len(second) == 6
    for a, b in zip(first, second):
        assert a.pts == b.pts
        assert np.array_equal(a.image, b.image)
    # A different seed gives a different result.
    other = run(cfr6.path, None, style, seed=1, end=1)
    assert other.frames[0].losses != main_run.result.frames[0].losses


# --------------------------------------------------------------------------- variants


def test_vfr_times_survive_exactly(media: Path, style: Path, tmp_path: Path) -> None:
    clip = make_clip(media / "vfr5.mp4", frames=5, size=(W, H), vfr=True)
    assert len(set(np.diff(clip.pts).tolist())) == 2  # really variable
    out = tmp_path / "vfr.mp4"
    result = run(clip.path, out, style)
    frames = decoded(out)
    assert [f.time for f in frames] == clip.times
    assert [r.pts for r in result.frames] == clip.pts
    assert [r.kind for r in result.frames] == ["cold"] + ["warm"] * 4


def test_vfr_odd_sized_clip_with_audio_keeps_times_rate_and_audio(media: Path, style: Path,
                                                                  tmp_path: Path) -> None:
    """All three at once: variable frame rate, odd source sides and an audio track."""
    clip = make_clip(media / "vfr_odd_audio.mp4", frames=7, size=(67, 49), vfr=True, audio=True)
    out = tmp_path / "out.mp4"
    run(clip.path, out, style)
    frames = decoded(out)
    assert len(frames) == 7
    assert [f.pts for f in frames] == clip.pts
    assert [f.time for f in frames] == clip.times
    assert probe(out).average_rate == probe(clip.path).average_rate
    a_in, a_out = audio_packets(clip.path), audio_packets(out)
    assert len(a_in) > 3
    assert [(p.pts, p.duration, p.data) for p in a_out] == [(p.pts, p.duration, p.data) for p in a_in]


def test_temporal_off_makes_every_frame_cold(cfr6: Clip, style: Path, tmp_path: Path) -> None:
    result = run(cfr6.path, tmp_path / "off.mp4", style, temporal=False)
    assert [r.kind for r in result.frames] == ["cold"] * 6
    assert [r.iterations for r in result.frames] == [COLD_ITERS] * 6
    assert all(r.reliable is None and r.flow_seconds == 0.0 for r in result.frames)
    assert all("temporal" not in r.losses for r in result.frames)
    assert result.stats["summary"]["mean_warm_seconds"] is None
    assert [f.time for f in decoded(tmp_path / "off.mp4")] == cfr6.times


def check_trimmed_audio(clip: Clip, out: Path) -> None:
    """The copied audio covers the output video and overhangs each end by less than one packet
    (stream copy keeps whole packets, so the packets straddling the cut points stay)."""
    a_in, a_out = audio_packets(clip.path), audio_packets(out)
    assert 0 < len(a_out) < len(a_in)
    packet = max(p.duration * p.time_base for p in a_in)
    video_end = probe(out).duration
    first = a_out[0].time
    last_end = a_out[-1].time + a_out[-1].duration * a_out[-1].time_base
    assert -packet < first <= 0
    assert video_end <= last_end <= video_end + packet
    # Copied, not re-encoded: a contiguous run of the source's packets.
    data_in = [p.data for p in a_in]
    start = data_in.index(a_out[0].data)
    assert [p.data for p in a_out] == data_in[start:start + len(a_out)]


def test_range_by_index(vfr12: Clip, style: Path, tmp_path: Path) -> None:
    out = tmp_path / "range.mp4"
    result = run(vfr12.path, out, style, start=2, end=5)
    assert [r.index for r in result.frames] == [2, 3, 4]
    assert [r.kind for r in result.frames] == ["cold", "warm", "warm"]
    frames = decoded(out)
    assert len(frames) == 3
    assert [f.time for f in frames] == [t - vfr12.times[2] for t in vfr12.times[2:5]]
    check_trimmed_audio(vfr12, out)


def test_range_by_time_string(vfr12: Clip, style: Path, tmp_path: Path) -> None:
    out = tmp_path / "range.mp4"
    result = run(vfr12.path, out, style, start="0.1s", end="0.2s")
    want = [i for i, t in enumerate(vfr12.times) if Fraction(1, 10) <= t < Fraction(1, 5)]
    assert want == [2, 3]  # 0.1001 s and 0.13347 s; frame 4 is at 0.2002 s
    assert [r.index for r in result.frames] == want
    frames = decoded(out)
    assert [f.time for f in frames] == [vfr12.times[i] - vfr12.times[want[0]] for i in want]
    check_trimmed_audio(vfr12, out)


def test_source_output_size_and_no_audio(media: Path, style: Path, tmp_path: Path) -> None:
    clip = make_clip(media / "odd.mp4", frames=3, size=(67, 49))  # odd sides: yuv444p source
    assert audio_packets(clip.path)
    out = tmp_path / "source.mp4"
    result = run(clip.path, out, style, output_size="source", audio=False)
    info = probe(out)
    assert (info.width, info.height) == (66, 48)  # the source's size, rounded down to even
    assert info.audio_streams == 0 and not audio_packets(out)
    assert result.stats["summary"]["processing_size"] == [64, 46]
    assert result.stats["summary"]["output_size"] == [66, 48]
    frames = decoded(out)
    assert len(frames) == 3 and frames[0].image.shape == (48, 66, 3)
    assert [f.time for f in frames] == clip.times


def test_rotated_input_gives_upright_output(media: Path, style: Path, tmp_path: Path) -> None:
    clip = make_clip(media / "rot90.mp4", frames=3, size=(W, H), rotation=90, audio=False)
    info_in = probe(clip.path)
    assert info_in.rotation == 90 and (info_in.width, info_in.height) == (W, H)
    out, sheet_path = tmp_path / "rot.mp4", tmp_path / "sheet.png"
    run(clip.path, out, style, preview_sheet=sheet_path)
    info = probe(out)
    assert info.rotation == 0
    assert (info.width, info.height) == (PW, PH)  # landscape like the display, not the coded 50x66
    frames = decoded(out)
    assert len(frames) == 3 and frames[0].image.shape == (PH, PW, 3)
    # The stylised frames were upright: the sheet's input column matches the upright images.
    sheet = cv2.imread(str(sheet_path), cv2.IMREAD_COLOR)
    assert sheet.shape == (3 * (PH + GAP), 2 * PW + GAP, 3)
    left, _ = sheet_cells(sheet, 3, PH, PW)[0]
    upright = cv2.resize(clip.images[0], (PW, PH), interpolation=cv2.INTER_AREA).astype(int)
    err = np.abs(left.astype(int) - upright).mean()
    assert err < 6.0
    assert err < 0.5 * np.abs(left.astype(int) - upright[::-1, ::-1]).mean()


def test_long_term_chain_is_bounded_and_extra_term_is_used(
        media: Path, style: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = make_clip(media / "cfr7.mp4", frames=7, size=(W, H), audio=False)
    made: list[VideoStylizer] = []
    depths: list[int] = []
    terms: list[tuple[int, torch.Tensor]] = []

    class SpyStylizer(VideoStylizer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

        def frame(self, content: torch.Tensor, index: int, flows: Any = None) -> Any:
            output = super().frame(content, index, flows)
            depths.append(len(self.chain.inputs))
            return output

    real_term = chain_module.TemporalTerm

    def spy_term(warped: tuple, masks: tuple, weight: float) -> Any:
        terms.append((len(warped), sum(masks)))
        return real_term(warped, masks, weight)

    monkeypatch.setattr(job_module, "VideoStylizer", SpyStylizer)
    monkeypatch.setattr(chain_module, "TemporalTerm", spy_term)
    result = run(clip.path, tmp_path / "lt.mp4", style, long_term=(1, 3))

    assert len(made) == 1
    chain = made[0].chain
    limit = 1 + 3
    assert chain.inputs.maxlen is not None and chain.inputs.maxlen <= limit
    assert depths == [min(k + 1, chain.inputs.maxlen) for k in range(7)]
    assert max(depths) <= limit and len(chain.outputs) == len(chain.inputs)
    # The chain holds the newest frames, newest first, at the processing size.
    last = list(read_frames(clip.path, size=(PH, PW)))[-1]
    assert torch.equal(chain.inputs[0], to_tensor(last.image, torch.device("cpu")))
    assert all(t.shape == (1, 3, PH, PW) for t in (*chain.inputs, *chain.outputs))

    assert [r.kind for r in result.frames] == ["cold"] + ["warm"] * 6
    assert all("temporal" in r.losses for r in result.frames[1:])
    # Frames 1 and 2 have only the previous frame; from frame 3 on, frame i-3 adds a term.
    assert [n for n, _ in terms] == [1, 1, 2, 2, 2, 2]
    # Each pixel is tied to at most one frame's worth of weight.
    assert all(float(total.max()) <= 1.0 + 1e-6 for _, total in terms)
    assert len(decoded(tmp_path / "lt.mp4")) == 7


# --------------------------------------------------------------------------- the real CLI

FAST = ["--preset", "test", "--iters", "1", "--scales", "1", "--warm-iters", "1", "--quiet"]


class Case:
    """A directory with a 12-frame clip and a style image; ``out.mp4`` is the default output."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.clip = make_clip(tmp / "clip.mp4", frames=12, size=(W, H)).path
        self.style = save_rgb(tmp / "style.png", pattern_image(64, 64, seed=2))
        self.out = tmp / "out.mp4"
        self.env: dict[str, str] = {"OMP_NUM_THREADS": "1"}  # cases run side by side

    def video(self, *extra: str | os.PathLike[str], input: Path | None = None,
              out: Path | None = None) -> list[str | os.PathLike[str]]:
        return [input or self.clip, self.style, out or self.out, *FAST, *extra]


def _dir_input(c: Case) -> list:
    (c.tmp / "adir").mkdir()
    return c.video(input=c.tmp / "adir")


def _text_input(c: Case) -> list:
    (c.tmp / "notes.mp4").write_text("hello, not a video\n")
    return c.video(input=c.tmp / "notes.mp4")


def _out_exists(c: Case) -> list:
    c.out.write_bytes(b"precious bytes")  # the snapshot proves it is left unchanged
    return c.video()


def _raft_without_weights(c: Case) -> list:
    # An empty torch hub, so no cached RAFT checkpoint can be found (VGG comes from our cache).
    c.env["TORCH_HOME"] = str(c.tmp.parent / f"{c.tmp.name}-empty-torch-home")
    return c.video("--flow", "raft")


Builder = Callable[[Case], list]
# (id, builder, text (or texts) the one-line message must contain)
BAD_CASES: list[tuple[str, Builder, str | tuple[str, ...]]] = [
    ("input-missing", lambda c: c.video(input=c.tmp / "nope.mp4"), "does not exist"),
    ("input-is-directory", _dir_input, "directory"),
    ("input-is-text", _text_input, "notes.mp4"),
    ("input-is-jpeg", lambda c: c.video(input=make_jpeg(c.tmp / "photo.jpg")), "image"),
    ("input-is-audio-only", lambda c: c.video(input=make_audio_only(c.tmp / "sound.m4a")),
     "no video stream"),
    ("range-reversed", lambda c: c.video("--start", "5", "--end", "3"), "--end"),
    ("start-past-end", lambda c: c.video("--start", "100"), "past the end"),
    ("end-zero", lambda c: c.video("--end", "0"), "--end"),
    ("start-bad-time", lambda c: c.video("--start", "abc"), "abc"),
    ("start-without-unit", lambda c: c.video("--start", "1.5"), "1.5"),
    ("output-avi", lambda c: c.video(out=c.tmp / "out.avi"), ".avi"),
    ("output-gif", lambda c: c.video(out=c.tmp / "out.gif"), ".gif"),
    ("output-is-input", lambda c: c.video("--overwrite", out=c.clip), "input"),
    ("output-exists", _out_exists, "--overwrite"),
    ("crf-99", lambda c: c.video("--crf", "99"), "crf"),
    ("codec-unknown", lambda c: c.video("--codec", "nosuchcodec"), ("nosuchcodec", "--codec")),
    ("flow-raft-without-weights", _raft_without_weights, "--flow dis"),
    # Without --quiet the progress bar is already on stderr when these errors are found.
    ("codec-unknown-not-quiet",
     lambda c: [x for x in c.video("--codec", "nosuchcodec") if x != "--quiet"], "codec"),
    # 66x50 at --max-size 16 is 16x12: too small for VGG at any scale.
    ("scale-too-small-not-quiet",
     lambda c: [x for x in c.video("--max-size", "16", "--scales", "2") if x != "--quiet"],
     "below the 16 px"),
    ("end-zero-not-quiet", lambda c: [x for x in c.video("--end", "0") if x != "--quiet"],
     "--end"),
]
KNOWN_BUGS: dict[str, str] = {}
BAD_TEST = "test_bad_input_is_one_line_error"
OK_CASE = "ok"


@dataclass
class Outcome:
    case: Case
    before: dict[str, bytes | None]
    proc: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def cli_runs(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """The selected CLI cases, run concurrently (each pays ~1.5 s importing torch)."""
    wanted = {item.callspec.id for item in request.session.items
              if getattr(item, "originalname", None) == BAD_TEST and item.module is request.module}
    if any(getattr(item, "originalname", None) == "test_cli_stylises_a_clip"
           and item.module is request.module for item in request.session.items):
        wanted.add(OK_CASE)
    jobs: dict[str, tuple[Case, dict[str, bytes | None], list]] = {}
    for case_id, build, _ in BAD_CASES:
        if case_id in wanted:
            case = Case(tmp_path_factory.mktemp(case_id))
            argv = build(case)
            jobs[case_id] = (case, snapshot(case.tmp), argv)
    if OK_CASE in wanted:
        case = Case(tmp_path_factory.mktemp("cli-ok"))
        short = make_clip(case.tmp / "short.mp4", frames=4, size=(W, H)).path
        jobs[OK_CASE] = (case, {}, [short, case.style, case.out, *FAST])
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {k: pool.submit(run_cli, *argv, cwd=case.tmp, extra_env=case.env)
                   for k, (case, _, argv) in jobs.items()}
        return {k: Outcome(jobs[k][0], jobs[k][1], f.result()) for k, f in futures.items()}


@pytest.mark.parametrize("needle", [
    pytest.param(n, id=i, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[i])]
                 if i in KNOWN_BUGS else []) for i, _, n in BAD_CASES])
def test_bad_input_is_one_line_error(request: pytest.FixtureRequest,
                                     cli_runs: dict[str, Outcome],
                                     needle: str | tuple[str, ...]) -> None:
    outcome = cli_runs[request.node.callspec.id]
    line = assert_one_line_error(outcome.proc, 2)
    for text in (needle,) if isinstance(needle, str) else needle:
        assert text in line, line
    assert outcome.proc.stdout == ""
    # Nothing created, removed or changed: no output, no hidden .out.mp4.*.part, no probe file
    # (rglob("*") lists dot files too).
    assert snapshot(outcome.case.tmp) == outcome.before
    for value in outcome.case.env.values():
        assert not Path(value).exists()  # the empty torch hub was not created either


def test_cli_stylises_a_clip(cli_runs: dict[str, Outcome]) -> None:
    outcome = cli_runs[OK_CASE]
    proc, case = outcome.proc, outcome.case
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""  # --quiet
    assert case.out.is_file()
    assert listing(case.tmp) == ["clip.mp4", "out.mp4", "short.mp4", "style.png"]
    info = probe(case.out)
    assert (info.width, info.height) == (PW, PH) and info.audio_streams == 1
    frames = decoded(case.out)
    assert len(frames) == 4
    assert [f.time for f in frames] == [Fraction(i, 30) for i in range(4)]


def test_adaptive_warm_iterations_follow_the_reliable_fraction(cfr6: Clip, style: Path) -> None:
    result = run(cfr6.path, None, style, adaptive_iters=3.0, warm_iters=4)
    warm = [r for r in result.frames if r.kind == "warm"]
    assert warm and all(r.reliable is not None for r in warm)
    for r in warm:
        assert r.iterations == max(1, round(4 * (1 + 3.0 * (1 - r.reliable))))
    assert any(r.iterations > 4 for r in warm)  # the pan reveals new pixels every frame
    fixed = run(cfr6.path, None, style, warm_iters=4)
    assert all(r.iterations == 4 for r in fixed.frames if r.kind == "warm")


def test_flows_computed_ahead_give_the_same_frames(cfr6: Clip, style: Path) -> None:
    """Input flows computed ahead (as the decode thread does) equal those computed in the
    chain, and the stylised frames are identical."""
    from strotss_video.config import build_config, flag_overrides
    from strotss_video.flow import make_flow
    from strotss_video.pipeline.chain import flows_ahead
    from strotss_video.stylize.optimize import StyleBank

    config = build_config(None, None, flag_overrides({**TINY, "long_term": (1, 3),
                                                      "device": "cpu"}))
    h, w = processing_size(H, W, config.strotss.max_size)
    frames = [to_tensor(f.image, torch.device("cpu")) for f in read_frames(cfr6.path, size=(h, w))]
    extractor = TinyExtractor()
    style_t = to_tensor(cv2.cvtColor(cv2.imread(str(style)), cv2.COLOR_BGR2RGB),
                        torch.device("cpu"))
    flow = make_flow("dis", preset="fast")
    outputs = []
    for ahead in (False, True):
        stylizer = VideoStylizer(config, StyleBank(extractor, style_t, config.strotss), extractor,
                                 flow)
        assert stylizer.flow_distances == (1, 3)
        run_frames = []
        stream = flows_ahead(frames, lambda t: t, flow, stylizer.flow_distances) if ahead \
            else ((t, None, 0.0) for t in frames)
        for i, (content, flows, _) in enumerate(stream):
            if ahead:
                assert sorted(flows) == [d for d in (1, 3) if d <= i]
                for d, (fw, bw) in flows.items():
                    assert torch.equal(fw, flow(frames[i - d], content))
                    assert torch.equal(bw, flow(content, frames[i - d]))
            run_frames.append(stylizer.frame(content, i, flows)[0])
        outputs.append(run_frames)
    assert all(torch.equal(a, b) for a, b in zip(*outputs))


def _record_warm_inputs(monkeypatch: pytest.MonkeyPatch
                        ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[tuple[torch.Tensor, ...]]]:
    """Record the chain's warm starts ((backward flow, mask) each, fill ``blur``) and its
    temporal terms' masks, passing the calls through."""
    starts: list[tuple[torch.Tensor, torch.Tensor]] = []
    terms: list[tuple[torch.Tensor, ...]] = []
    real_start, real_term = chain_module.warm_start, chain_module.TemporalTerm

    def start(previous_output: torch.Tensor, backward: torch.Tensor, mask: torch.Tensor,
              content: torch.Tensor, fill: str, style_mean: torch.Tensor):
        assert fill == "blur"
        starts.append((backward, mask))
        return real_start(previous_output, backward, mask, content, fill, style_mean)

    def term(warped: tuple[torch.Tensor, ...], masks: tuple[torch.Tensor, ...], weight: float):
        terms.append(masks)
        return real_term(warped, masks, weight)

    monkeypatch.setattr(chain_module, "warm_start", start)
    monkeypatch.setattr(chain_module, "TemporalTerm", term)
    return starts, terms


def test_checked_fill_raises_the_mask_of_both_the_warm_start_and_the_temporal_term(
        cfr6: Clip, style: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With fill 'checked' the chain raises the flow mask by the colour check, from the previous
    decoded frame and the forward-backward (occlusion-only) test, and both the warm start and
    the temporal term get the raised mask; the reliable fraction stays the flow mask's (with
    the neighbours' vectors off; the next test covers them)."""
    checks: list[dict[str, Any]] = []
    real_check = coherence_module.checked_mask

    def check(mask: torch.Tensor, previous_input: torch.Tensor, backward: torch.Tensor,
              content: torch.Tensor, consistent: torch.Tensor) -> torch.Tensor:
        raised = real_check(mask, previous_input, backward, content, consistent)
        checks.append({"mask": mask, "previous_input": previous_input, "content": content,
                       "consistent": consistent, "raised": raised})
        return raised

    monkeypatch.setattr(coherence_module, "checked_mask", check)
    starts, terms = _record_warm_inputs(monkeypatch)
    result = run(cfr6.path, None, style, fill="checked", neighbour_flow=False)
    assert len(result.frames) == 6 and len(checks) == len(starts) == len(terms) == 5
    for before, now in zip(checks, checks[1:]):
        assert torch.equal(now["previous_input"], before["content"])  # frame k feeds k+1
    warm = [r for r in result.frames if r.kind == "warm"]
    for c, s, t, record in zip(checks, starts, terms, warm):
        assert s[1] is c["raised"] and torch.equal(t[0], c["raised"])
        consistent = c["consistent"]
        assert set(consistent.unique().tolist()) <= {0.0, 1.0}
        # Wholly reliable pixels (all tests passed, smoothed mask 1) passed this one too.
        assert bool((consistent[c["mask"] >= 1.0] == 1.0).all()) and bool((c["mask"] >= 1.0).any())
        assert bool((c["raised"] >= c["mask"]).all())
        assert record.reliable == pytest.approx(float(c["mask"].mean()))
    monkeypatch.undo()
    assert run(cfr6.path, None, style, fill="blur").frames[-1].losses != result.frames[-1].losses


def test_neighbour_flow_feeds_the_warm_start_and_the_temporal_term(
        cfr6: Clip, style: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``checked`` and ``neighbour_flow`` (the default) the chain passes the checked mask,
    the backward flow and both input frames to :func:`neighbour_flow`, and its flow and mask
    are what the warm start warps with and what the temporal term weights by."""
    calls: list[dict[str, Any]] = []
    real_neighbour = chain_module.neighbour_flow

    def neighbour(backward: torch.Tensor, mask: torch.Tensor, previous_input: torch.Tensor,
                  content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        moved, raised = real_neighbour(backward, mask, previous_input, content)
        calls.append({"mask": mask, "previous_input": previous_input, "content": content,
                      "moved": moved, "raised": raised})
        return moved, raised

    monkeypatch.setattr(chain_module, "neighbour_flow", neighbour)
    starts, terms = _record_warm_inputs(monkeypatch)
    result = run(cfr6.path, None, style)
    assert len(result.frames) == 6 and len(calls) == len(starts) == len(terms) == 5
    for before, now in zip(calls, calls[1:]):
        assert torch.equal(now["previous_input"], before["content"])  # frame k feeds k+1
    for c, (flow, mask), t in zip(calls, starts, terms):
        assert flow is c["moved"] and mask is c["raised"] and torch.equal(t[0], c["raised"])
        assert bool((c["raised"] >= c["mask"]).all())
    monkeypatch.undo()
    calls.clear()
    monkeypatch.setattr(chain_module, "neighbour_flow", neighbour)
    assert len(run(cfr6.path, None, style, neighbour_flow=False).frames) == 6 and not calls
    assert len(run(cfr6.path, None, style, fill="blur").frames) == 6 and not calls


def test_repaint_rate_raises_the_learning_rate_where_the_mask_rejects(
        cfr6: Clip, style: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each warm frame gets the rate map 1 + (repaint_rate - 1) * (1 - mask), from the same
    mask as its temporal term (after the colour check); cold frames and the default (rate 1)
    get none."""
    rates: list[torch.Tensor | None] = []
    masks: list[torch.Tensor] = []
    real_stylize, real_term = chain_module.stylize, chain_module.TemporalTerm

    def spy(*args: Any, **kw: Any):
        rates.append(kw.get("rate"))
        return real_stylize(*args, **kw)

    def term(warped: tuple[torch.Tensor, ...], ms: tuple[torch.Tensor, ...], weight: float):
        masks.append(ms[0])
        return real_term(warped, ms, weight)

    monkeypatch.setattr(chain_module, "stylize", spy)
    monkeypatch.setattr(chain_module, "TemporalTerm", term)
    result = run(cfr6.path, None, style, repaint_rate=4.0)
    kinds = [r.kind for r in result.frames]
    assert kinds == ["cold"] + ["warm"] * 5 and len(rates) == 6 and len(masks) == 5
    assert rates[0] is None
    for rate, mask in zip(rates[1:], masks):
        assert rate is not None and torch.allclose(rate, 1.0 + 3.0 * (1.0 - mask))
        assert float(rate.min()) >= 1.0 and float(rate.max()) <= 4.0
    assert bool((masks[0] < 1.0).any())  # something was rejected, so the map is not uniform
    rates.clear()
    run(cfr6.path, None, style)
    assert len(rates) == 6 and all(r is None for r in rates)
