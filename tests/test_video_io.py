"""Tests of video reading and writing (strotss_video.io probe, reader, writer, audio) on tiny real files.

Clips come from ``tests/media.py`` (PyAV-generated: panned texture, sine audio, optional VFR
timestamps and rotation matrix). Times are compared as exact Fractions throughout."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media import (
    Clip,
    corrupt_packet,
    demux_summary,
    make_audio_only,
    make_clip,
    make_jpeg,
    truncate,
)

from strotss_video.errors import InputError, OutputError
from strotss_video.io.probe import VideoInfo, probe
from strotss_video.io.reader import Frame, VideoReadWarning, read_frames
from strotss_video.io.writer import VideoWriter

W, H = 66, 50


def err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def audio_packets(path: Path) -> list:
    return [p for p in demux_summary(path) if p.kind == "audio"]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def cfr(media: Path) -> Clip:
    return make_clip(media / "cfr.mp4", frames=12, size=(W, H))


@pytest.fixture(scope="module")
def vfr(media: Path) -> Clip:
    # x264 "medium" uses B-frames, so decode order differs from presentation order.
    return make_clip(media / "vfr.mp4", frames=12, size=(W, H), vfr=True,
                     options={"preset": "medium"})


@pytest.fixture(scope="module")
def rotated(media: Path) -> Clip:
    return make_clip(media / "rot90.mp4", frames=6, size=(W, H), rotation=90, audio=False)


@pytest.fixture(scope="module")
def vfr_mkv(media: Path) -> Clip:
    return make_clip(media / "vfr.mkv", frames=12, size=(W, H), vfr=True)


# --------------------------------------------------------------------------- probe


def test_probe_fields_cfr_mp4(cfr: Clip) -> None:
    info = probe(cfr.path)
    assert isinstance(info, VideoInfo)
    assert info.path == cfr.path
    assert (info.width, info.height, info.rotation) == (W, H, 0)
    assert info.time_base == cfr.time_base == Fraction(1, 15360)  # mp4 refines 1/30
    assert info.average_rate == 30
    assert info.frames == 12
    assert info.duration == Fraction(12, 30)
    assert info.start_time == 0
    assert (info.codec, info.pix_fmt, info.audio_streams) == ("h264", "yuv420p", 1)


def test_probe_mkv_has_no_frame_count_but_a_duration(vfr_mkv: Clip) -> None:
    info = probe(vfr_mkv.path)
    assert info.time_base == Fraction(1, 1000)
    assert info.frames is None  # Matroska stores no count; probe never decodes to count
    assert info.duration is not None and abs(info.duration - Fraction(17017, 30000)) < 0.002
    assert info.audio_streams == 1


def test_probe_rotation_swaps_display_size(rotated: Clip) -> None:
    info = probe(rotated.path)
    assert (info.rotation, info.width, info.height) == (90, W, H)
    assert info.audio_streams == 0


@pytest.mark.parametrize("make, needle", [
    (lambda d: (d / "notes.txt").write_text("not a video") and d / "notes.txt", "not a video"),
    (lambda d: make_jpeg(d / "still.jpg"), "is an image, not a video; use `strotss-video image`"),
    (lambda d: d, "is a directory"),
    (lambda d: d / "missing.mp4", "does not exist"),
    (lambda d: make_audio_only(d / "sound.m4a"), "no video stream"),
    (lambda d: (d / "empty.mp4").write_bytes(b"") or d / "empty.mp4", "empty (0 bytes)"),
], ids=["text", "jpeg", "directory", "missing", "audio-only", "zero-bytes"])
def test_probe_rejects_non_videos(tmp_path: Path, make, needle: str) -> None:
    path = make(tmp_path)
    for call in (lambda: probe(path), lambda: read_frames(path)):
        with pytest.raises(InputError) as info:
            call()
        message = str(info.value)
        assert needle in message and "\n" not in message


# --------------------------------------------------------------------------- read_frames


def test_read_frames_cfr(cfr: Clip) -> None:
    frames = list(read_frames(cfr.path))
    assert [f.index for f in frames] == list(range(12))
    assert [f.pts for f in frames] == cfr.pts
    assert [f.time for f in frames] == [Fraction(i, 30) for i in range(12)]
    for i, f in enumerate(frames):
        assert isinstance(f, Frame) and f.time_base == cfr.time_base
        assert f.image.dtype == np.uint8 and f.image.shape == (H, W, 3)
        assert f.image.flags.c_contiguous
        # The right picture: much closer to its own source frame than to the neighbour.
        assert err(f.image, cfr.images[i]) < 10
        j = i + 1 if i + 1 < 12 else i - 1
        assert err(f.image, cfr.images[i]) < 0.6 * err(f.image, cfr.images[j])


def test_read_frames_vfr_keeps_exact_irregular_times(vfr: Clip) -> None:
    frames = list(read_frames(vfr.path))
    assert len(frames) == 12
    assert [f.pts for f in frames] == vfr.pts
    gaps = [b.time - a.time for a, b in zip(frames, frames[1:])]
    assert gaps == [Fraction(1001 if i % 2 == 0 else 2002, 30000) for i in range(11)]


def test_range_by_index_is_end_exclusive(vfr: Clip) -> None:
    frames = list(read_frames(vfr.path, 3, 7))
    assert [f.index for f in frames] == [3, 4, 5, 6]
    assert [f.pts for f in frames] == vfr.pts[3:7]


def test_range_by_time(vfr: Clip) -> None:
    t = vfr.times
    frames = list(read_frames(vfr.path, t[3], t[7]))  # exact frame times: start in, end out
    assert [f.index for f in frames] == [3, 4, 5, 6]
    between = (t[3] + t[4]) / 2
    frames = list(read_frames(vfr.path, between, t[7] + Fraction(1, 10**6)))
    assert [f.index for f in frames] == [4, 5, 6, 7]
    frames = list(read_frames(vfr.path, 10, Fraction(100)))  # mixed kinds; end past the clip
    assert [f.index for f in frames] == [10, 11]


def test_range_errors(vfr: Clip) -> None:
    with pytest.raises(InputError, match="past the end"):
        list(read_frames(vfr.path, 50))
    with pytest.raises(InputError, match="empty"):
        read_frames(vfr.path, 5, 5)
    with pytest.raises(InputError):
        read_frames(vfr.path, -1)


def test_size_scales_in_the_decoder(cfr: Clip) -> None:
    frames = list(read_frames(cfr.path, 0, 2, size=(25, 33)))
    assert [f.image.shape for f in frames] == [(25, 33, 3)] * 2
    assert all(f.image.flags.c_contiguous for f in frames)
    # Area-averaged: the mean colour survives the downscale.
    assert np.allclose(frames[0].image.mean((0, 1)), cfr.images[0].mean((0, 1)), atol=4)


def test_rotation_gives_upright_frames(rotated: Clip) -> None:
    frames = list(read_frames(rotated.path))
    assert len(frames) == 6
    for f, ref in zip(frames, rotated.images):
        assert f.image.shape == (H, W, 3)
        assert err(f.image, ref) < 10
        # Turning the other way would be a different (and transposed-size) picture.
        assert err(f.image[::-1, ::-1], ref) > 2 * err(f.image, ref)
    small = next(read_frames(rotated.path, size=(20, 30)))
    assert small.image.shape == (20, 30, 3)


@pytest.mark.parametrize("rotation", [180, 270])
def test_other_rotations(tmp_path: Path, rotation: int) -> None:
    clip = make_clip(tmp_path / "r.mov", frames=2, size=(W, H), rotation=rotation, audio=False)
    assert probe(clip.path).rotation == rotation
    f = next(read_frames(clip.path))
    assert f.image.shape == (H, W, 3) and err(f.image, clip.images[0]) < 10


def test_odd_dimensions(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "odd.mkv", frames=3, size=(65, 49), audio=False)
    info = probe(clip.path)
    assert (info.width, info.height) == (65, 49)
    frames = list(read_frames(clip.path))
    assert [f.image.shape for f in frames] == [(49, 65, 3)] * 3
    assert err(frames[1].image, clip.images[1]) < 5


# --------------------------------------------------------------------------- damaged input


def test_truncated_mkv_yields_prefix_and_warns(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "long.mkv", frames=30, audio=False)
    truncate(clip.path, 0.5)
    with pytest.warns(VideoReadWarning, match="ends early"):
        frames = list(read_frames(clip.path))
    assert 0 < len(frames) < 30
    assert [f.pts for f in frames] == clip.pts[: len(frames)]


def test_truncated_faststart_mp4_yields_prefix_and_warns(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "fs.mp4", frames=30, audio=False,
                     container_options={"movflags": "+faststart"})
    truncate(clip.path, 0.5)
    with pytest.warns(VideoReadWarning) as record:
        frames = list(read_frames(clip.path))
    assert 0 < len(frames) < 30
    assert [f.index for f in frames] == list(range(len(frames)))
    assert any(f"frames {len(frames)}" in str(w.message) for w in record)


def test_truncated_mp4_without_index_is_an_input_error(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cut.mp4", frames=30, audio=False)  # moov atom at the end
    truncate(clip.path, 0.5)
    with pytest.raises(InputError) as info:
        read_frames(clip.path)
    assert "\n" not in str(info.value)


def test_corrupt_packet_is_skipped_with_a_warning(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "mj.mkv", frames=10, codec="mjpeg", pix_fmt="yuvj420p",
                     audio=False)
    corrupt_packet(clip.path, 4)
    with pytest.warns(VideoReadWarning, match=r"frame 4 .*damaged"):
        frames = list(read_frames(clip.path))
    # Later frames keep their true index and time; nothing else is lost.
    assert [f.index for f in frames] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert [f.pts for f in frames] == clip.pts[:4] + clip.pts[5:]


def test_nothing_decodable_is_an_input_error(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "bad.mkv", frames=3, codec="mjpeg", pix_fmt="yuvj420p",
                     audio=False)
    for i in range(3):
        corrupt_packet(clip.path, i)
    with pytest.raises(InputError, match="cannot decode"):
        read_frames(clip.path)


# --------------------------------------------------------------------------- round trips


def write_all(frames: list[Frame], out: Path, info: VideoInfo, **kwargs) -> None:
    with VideoWriter(out, width=info.width, height=info.height, time_base=info.time_base,
                     average_rate=info.average_rate, **kwargs) as w:
        for f in frames:
            w.write(f.image, f.pts)


def test_round_trip_full_clip_mp4(vfr: Clip, tmp_path: Path) -> None:
    info = probe(vfr.path)
    frames = list(read_frames(vfr.path))
    out = tmp_path / "out.mp4"
    write_all(frames, out, info, audio_source=vfr.path)
    assert listing(tmp_path) == ["out.mp4"]
    o = probe(out)
    assert (o.frames, o.time_base, o.average_rate) == (12, info.time_base, info.average_rate)
    assert o.duration == info.duration
    again = list(read_frames(out))
    assert [f.time for f in again] == [f.time for f in frames]  # VFR kept exactly
    assert err(again[5].image, frames[5].image) < 6
    src, dst = audio_packets(vfr.path), audio_packets(out)
    assert len(dst) == len(src) > 10
    assert [(p.data, p.pts, p.dts, p.duration, p.time_base) for p in dst] == \
        [(p.data, p.pts, p.dts, p.duration, p.time_base) for p in src]


@pytest.mark.parametrize("ext", ["mp4", "mov"])
def test_vfr_length_and_rate_whatever_frame_the_encoder_puts_last(ext: str,
                                                                  tmp_path: Path) -> None:
    """With B-frames, the last packet in decode order is not always the last frame shown
    (it depends on the content); the track must still end where the last frame ends."""
    pts, last_duration = [0, 1001, 3003, 4004, 6006, 7007, 9009], 1001
    last_decoded = set()
    for seed in range(4):  # noise frames: seed 0 ends on a B-frame, the others do not
        rng = np.random.default_rng(seed)
        out = tmp_path / f"vfr{seed}.{ext}"
        with VideoWriter(out, width=64, height=48, time_base=Fraction(1, 30000),
                         average_rate=Fraction(30000, 1001)) as w:
            for p in pts:
                w.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), p,
                        duration=last_duration)
        info = probe(out)
        assert info.frames == len(pts)
        assert info.duration == Fraction(pts[-1] + last_duration, 30000)
        assert info.average_rate == len(pts) / info.duration
        assert [f.pts for f in read_frames(out)] == pts
        last_decoded.add(demux_summary(out)[-1].pts)
    assert last_decoded == {7007, 9009}  # both cases were exercised


def test_round_trip_range_shifts_video_and_audio(vfr: Clip, tmp_path: Path) -> None:
    info = probe(vfr.path)
    frames = list(read_frames(vfr.path, 3, 9))
    start, end = frames[0].time, frames[-1].time + Fraction(1001, 30000)
    out = tmp_path / "range.mp4"
    write_all(frames, out, info, audio_source=vfr.path, audio_window=(start, end),
              pts_offset=frames[0].pts)
    again = list(read_frames(out))
    assert [f.time for f in again] == [f.time - start for f in frames]
    assert again[0].pts == 0
    src = audio_packets(vfr.path)
    tb = src[0].time_base
    shift = round(start / tb)
    kept = [p for p in src if p.time < end and p.time + p.duration * tb > start]
    dst = audio_packets(out)
    assert 0 < len(dst) == len(kept) < len(src)
    assert [(p.data, p.pts, p.dts) for p in dst] == \
        [(p.data, p.pts - shift, p.dts - shift) for p in kept]


def test_audio_window_seeks_in_long_sources(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "long.mp4", frames=30, rate=Fraction(10))  # 3 s
    frames = list(read_frames(clip.path, 15, 25))
    start, end = frames[0].time, frames[-1].time + Fraction(1, 10)
    out = tmp_path / "late.mov"
    write_all(frames, out, probe(clip.path), audio_source=clip.path,
              audio_window=(start, end), pts_offset=frames[0].pts)
    src = audio_packets(clip.path)
    kept = [p for p in src if p.time < end and p.time + p.duration * p.time_base > start]
    dst = audio_packets(out)
    assert [p.data for p in dst] == [p.data for p in kept]
    shift = round(start / src[0].time_base)
    assert [(p.pts, p.dts) for p in dst] == [(p.pts - shift, p.dts - shift) for p in kept]
    assert [f.time for f in read_frames(out)] == [f.time - start for f in frames]


def test_audio_is_interleaved_as_video_goes(vfr: Clip, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    original = VideoWriter._mux

    def spy(self: VideoWriter, packet) -> None:  # type: ignore[no-untyped-def]
        order.append(packet.stream.type[0])
        original(self, packet)

    monkeypatch.setattr(VideoWriter, "_mux", spy)
    out = tmp_path / "mixed.mp4"
    write_all(list(read_frames(vfr.path)), out, probe(vfr.path), audio_source=vfr.path)
    # The writer feeds audio between video packets, not all at the end...
    last_video = max(i for i, k in enumerate(order) if k == "v")
    assert order[:last_video].count("a") >= order.count("a") // 2
    # ...and the file on disk interleaves them too.
    kinds = "".join(p.kind[0] for p in demux_summary(out))
    assert kinds.count("va") >= 4 and kinds.index("a") < kinds.rindex("v")


@pytest.mark.parametrize("time_base, pts", [
    (Fraction(1, 30), [0, 1, 2, 3, 5, 8]),  # mp4 promotes 1/30 to 1/15360
    (Fraction(1001, 30000), [0, 1, 2, 4]),  # numerator > 1
    (Fraction(1, 90000), [0, 3003, 6006, 7507, 12012]),  # MPEG-TS style, irregular
])
def test_mp4_time_base_round_trip_is_exact(tmp_path: Path, time_base: Fraction,
                                           pts: list[int]) -> None:
    out = tmp_path / "tb.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(out, width=32, height=24, time_base=time_base, average_rate=None,
                     preset="ultrafast") as w:
        for p in pts:
            w.write(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), p)
    assert [f.time for f in read_frames(out)] == [p * time_base for p in pts]


def test_mov_and_mkv_round_trips(vfr_mkv: Clip, cfr: Clip, tmp_path: Path) -> None:
    # Matroska stores milliseconds: an mkv source round-trips exactly into mkv and mp4...
    frames = list(read_frames(vfr_mkv.path))
    for name in ("same.mkv", "same.mp4"):
        write_all(frames, tmp_path / name, probe(vfr_mkv.path), audio_source=vfr_mkv.path)
        assert [f.time for f in read_frames(tmp_path / name)] == vfr_mkv.times
        assert len(audio_packets(tmp_path / name)) == len(audio_packets(vfr_mkv.path))
    # ...but times finer than 1 ms are rounded, which the writer says.
    with pytest.warns(RuntimeWarning, match="rounded"):
        write_all(list(read_frames(cfr.path)), tmp_path / "ms.mkv", probe(cfr.path))
    times = [f.time for f in read_frames(tmp_path / "ms.mkv")]
    assert all(abs(t - Fraction(i, 30)) <= Fraction(1, 1000) for i, t in enumerate(times))


@pytest.mark.parametrize("codec, ext, pix_fmt", [
    ("mpeg4", ".mp4", "yuv420p"),
    ("libvpx-vp9", ".mp4", "yuv420p"),
    ("ffv1", ".mkv", "bgr0"),  # lossless RGB
])
def test_other_codecs(tmp_path: Path, codec: str, ext: str, pix_fmt: str) -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(4)]
    out = tmp_path / f"c{ext}"
    with VideoWriter(out, width=32, height=24, time_base=Fraction(1, 25), average_rate=Fraction(25),
                     codec=codec, pix_fmt=pix_fmt, preset="ultrafast") as w:
        for i, img in enumerate(images):
            w.write(img, i)
    frames = list(read_frames(out))
    assert [f.time for f in frames] == [Fraction(i, 25) for i in range(4)]
    if codec == "ffv1":
        assert all(np.array_equal(f.image, img) for f, img in zip(frames, images))


def test_colours_survive_the_yuv_round_trip(tmp_path: Path) -> None:
    # Lossless 4:4:4 H.264 isolates the RGB<->YUV matrices: writer and reader must agree
    # (BT.709, limited range, tagged) or saturated colours drift by 10+ levels.
    blocks = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (128, 128, 128),
              (30, 200, 90), (250, 180, 20), (0, 0, 0)]
    img = np.zeros((16, 16 * len(blocks), 3), np.uint8)
    for i, c in enumerate(blocks):
        img[:, 16 * i:16 * (i + 1)] = c
    out = tmp_path / "colours.mp4"
    with VideoWriter(out, width=img.shape[1], height=16, time_base=Fraction(1, 30),
                     average_rate=Fraction(30), crf=0, pix_fmt="yuv444p") as w:
        w.write(img, 0)
    got = next(read_frames(out)).image.astype(int)
    assert np.abs(got - img).max() <= 3


def test_no_warnings_on_clean_round_trips(vfr: Clip, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frames = list(read_frames(vfr.path))
        write_all(frames, tmp_path / "clean.mp4", probe(vfr.path), audio_source=vfr.path)
        assert len(list(read_frames(tmp_path / "clean.mp4"))) == 12


# --------------------------------------------------------------------------- writer errors


def writer_kwargs(**over) -> dict:
    base = dict(width=W, height=H, time_base=Fraction(1, 30), average_rate=Fraction(30))
    base.update(over)
    return base


@pytest.mark.parametrize("name, over, needle", [
    ("a.mp4", dict(width=65), "even"),
    ("a.mp4", dict(height=49), "even"),
    ("a.avi", {}, ".mp4, .mov or .mkv"),
    ("a", {}, ".mp4, .mov or .mkv"),
    ("a.mp4", dict(codec="no-such-codec"), "--codec"),
    ("a.mp4", dict(codec="aac"), "--codec"),
    ("a.mp4", dict(preset="warp-speed"), "--encoder-preset"),
], ids=["odd-width", "odd-height", "avi", "no-extension", "unknown-codec", "audio-codec",
        "bad-preset"])
def test_writer_validation_creates_no_file(tmp_path: Path, name: str, over: dict,
                                           needle: str) -> None:
    with pytest.raises(OutputError) as info:
        VideoWriter(tmp_path / name, **writer_kwargs(**over))
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert listing(tmp_path) == []


def test_container_that_cannot_hold_the_audio(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "ulaw.mov", frames=2, audio="pcm_mulaw")
    with pytest.raises(OutputError, match=r"\.mkv.*--no-audio"):
        VideoWriter(tmp_path / "out.mp4", **writer_kwargs(), audio_source=src.path)
    assert listing(tmp_path) == ["ulaw.mov"]


def test_codec_pair_refused_at_header_time(vfr_mkv: Clip, tmp_path: Path) -> None:
    # FFmpeg's codec query accepts FLAC in .mov, but the muxer refuses it when writing the
    # header: the writer must still fail up front, cleanly, with no file left.
    with pytest.raises(OutputError, match=r"flac.*--no-audio"):
        VideoWriter(tmp_path / "out.mov", **writer_kwargs(), audio_source=vfr_mkv.path)
    assert listing(tmp_path) == []


def test_exception_inside_with_leaves_no_file(tmp_path: Path, cfr: Clip) -> None:
    frames = list(read_frames(cfr.path, 0, 4))
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(tmp_path / "out.mp4", **writer_kwargs(time_base=cfr.time_base),
                         audio_source=cfr.path) as w:
            for f in frames:
                w.write(f.image, f.pts)
            raise RuntimeError("boom")
    assert listing(tmp_path) == []


def test_write_checks_pts_and_images(tmp_path: Path) -> None:
    img = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(ValueError, match="strictly increase"):
        with VideoWriter(tmp_path / "out.mp4", **writer_kwargs()) as w:
            w.write(img, 5)
            w.write(img, 5)
    with pytest.raises(ValueError, match="uint8 RGB"):
        with VideoWriter(tmp_path / "out.mp4", **writer_kwargs()) as w:
            w.write(img[:, :-2], 0)
    with pytest.raises(OutputError, match="no frames"):
        with VideoWriter(tmp_path / "out.mp4", **writer_kwargs()):
            pass
    assert listing(tmp_path) == []


def test_no_warnings_on_clean_reads(cfr: Clip) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(read_frames(cfr.path))) == 12
