"""The video bad-input matrix: every case of the reliability issue, run through the real CLI.

Each case gets its own directory, builds its inputs there (real media from ``tests/media.py``)
and runs ``python -m strotss_video`` in a subprocess, all cases side by side (each pays ~1.5 s
importing torch). Error cases must end with exit 2 (usage: arguments, inputs, outputs, config)
or 1 (a failed run), exactly one stderr line ``strotss-video: error: ...``, no traceback and
the directory as it was (the ``work/`` directory given as ``--work-dir`` aside). Success cases
use tiny settings and check the output's frames, size and warnings.

When every case was selected, the module writes ``docs/reliability.md`` from what it observed
(rows in CASES order, temp paths as ``<tmp>``): the doc is generated, never edited by hand."""

from __future__ import annotations

import json
import os
import re
import subprocess
import traceback
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from clitools import REPO, assert_one_line_error, run_cli, snapshot
from conftest import pattern_image, save_rgb
from media import corrupt_packet, make_audio_only, make_bilevel_png, make_clip, make_jpeg, truncate

from strotss_video.io.probe import probe
from strotss_video.io.reader import read_frames

FAST = ["--preset", "test", "--max-size", "64", "--scales", "1", "--iters", "2",
        "--warm-iters", "1", "--quiet"]
W, H = 66, 50  # the default clip's display size
PW, PH = 64, 48  # its processing size at --max-size 64
PROC_OUT = Path("/proc/strotss-reliability-out.mp4")  # not creatable, even by root
DOC = REPO / "docs" / "reliability.md"
TEST = "test_reliability_case"
PEAK_RSS_LIMIT_MIB = 3 * 1024
WORK = "work"  # the --work-dir of every video run, inside the case's directory
DISK = "disk"  # mount point of the small tmpfs of the full-disk case


class Case:
    """A case's directory: ``clip.mp4`` (4 frames, 66x50, AAC audio), ``style.png`` (64x64),
    ``out.mp4`` as the default output, ``work/`` as the work directory. Builders may record
    what a success must produce in ``expect`` and register clean-ups (unmounts)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.clip = make_clip(tmp / "clip.mp4", frames=4, size=(W, H)).path
        self.style = save_rgb(tmp / "style.png", pattern_image(64, 64, seed=2))
        self.out = tmp / "out.mp4"
        self.work = tmp / WORK
        self.env: dict[str, str] = {"OMP_NUM_THREADS": "1"}  # cases run side by side
        self.expect: dict[str, Any] = {}
        self.cleanups: list[Callable[[], None]] = []

    def video(self, *extra: str | os.PathLike[str], input: Path | None = None,
              style: Path | None = None, out: Path | None = None) -> list:
        # One torch thread each: cases run side by side on few cores.
        return [input or self.clip, style or self.style, out or self.out, *FAST,
                "--threads", "1", "--work-dir", self.work, *extra]

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path


Builder = Callable[[Case], list]


@dataclass(frozen=True)
class Spec:
    """One row of the matrix.

    ``code`` is the exit status; for errors (1 or 2) ``needles`` must all be in the one stderr
    line. For successes (0) the output must decode to ``frames`` frames of ``size`` (W, H)
    unless the builder sets them in ``Case.expect``; ``warns``: the warning text stderr must
    carry (none allowed otherwise)."""

    id: str
    what: str
    build: Builder
    code: int
    needles: tuple[str, ...] = ()
    frames: int | None = None
    size: tuple[int, int] | None = None
    warns: str | None = None
    weights: bool = False
    note: str = ""  # what the case leaves behind by nature, for the doc
    work: bool = False  # the builder ran the job first: an error leaves its work dir as it was


# --------------------------------------------------------------------------- media builders


def _text_input(c: Case) -> list:
    return c.video(input=c.write("notes.mp4", "hello, not a video\n"))


def _dir_input(c: Case) -> list:
    (c.tmp / "adir").mkdir()
    return c.video(input=c.tmp / "adir")


def _decodable(path: Path) -> int:
    """Frames FFmpeg itself decodes from ``path`` before an error stops it."""
    n = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(video=0):
                n += 1
        except av.error.FFmpegError:
            pass
    return n


def _truncated_mp4(c: Case) -> list:
    clip = make_clip(c.tmp / "cut.mp4", frames=12, size=(W, H), audio=False)  # index at the end
    truncate(clip.path, 0.5)
    return c.video(input=clip.path)


def _truncated_mkv(c: Case) -> list:
    clip = make_clip(c.tmp / "cut.mkv", frames=8, size=(W, H), audio=False)
    truncate(clip.path, 0.5)
    n = _decodable(clip.path)
    assert 0 < n < 8
    c.expect.update(frames=n, warns=f"frames {n}..7 could not be read")
    return c.video(input=clip.path)


def _corrupt_mjpeg(c: Case) -> list:
    # Intra-only MJPEG: the damaged packet's frame is lost outright (the decoder rejects it).
    clip = make_clip(c.tmp / "damaged.mkv", frames=6, size=(W, H), codec="mjpeg",
                     pix_fmt="yuvj420p", audio=False)
    corrupt_packet(clip.path, 3)
    return c.video(input=clip.path)


def _corrupt_h264(c: Case) -> list:
    # H.264 conceals a damaged P-frame: it still comes out, so no frame is lost.
    clip = make_clip(c.tmp / "damaged.mp4", frames=4, size=(W, H), audio=False)
    corrupt_packet(clip.path, 2)
    assert _decodable(clip.path) == 4
    return c.video(input=clip.path)


def _nothing_decodes(c: Case) -> list:
    clip = make_clip(c.tmp / "dead.mkv", frames=3, size=(W, H), codec="mjpeg",
                     pix_fmt="yuvj420p", audio=False)
    for i in range(3):
        corrupt_packet(clip.path, i)
    assert _decodable(clip.path) == 0
    return c.video(input=clip.path)


def _unknown_codec_tag(c: Case) -> list:
    # A valid MP4 whose sample entry names a codec FFmpeg does not know ("zzzz", not "avc1"):
    # the container opens, the stream has no decoder.
    clip = make_clip(c.tmp / "alien.mp4", frames=4, size=(W, H), audio=False)
    data = clip.path.read_bytes()
    assert data.count(b"avc1") >= 1
    clip.path.write_bytes(data.replace(b"avc1", b"zzzz"))
    with av.open(str(clip.path)) as container:
        assert container.streams.video[0].codec_context is None
    return c.video(input=clip.path)


def _corrupt_style(c: Case) -> list:
    bad = c.tmp / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")  # the signature, then a broken header
    return c.video(style=bad)


def _tiny_style(c: Case) -> list:
    return c.video(style=save_rgb(c.tmp / "tiny.png", pattern_image(8, 8, seed=3)))


def _make_8k(path: Path, frames: int = 2) -> Path:
    """A real 7680x4320 H.264 clip, encoded fast (x264 ultrafast)."""
    big = cv2.resize(pattern_image(45, 80, seed=7), (7680, 4320), interpolation=cv2.INTER_LINEAR)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 7680, 4320, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "crf": "35"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(big, 16 * i, axis=1), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _input_8k(c: Case) -> list:
    clip = _make_8k(c.tmp / "8k.mp4")
    info = probe(clip)
    assert (info.width, info.height) == (7680, 4320)
    c.expect["stats"] = c.tmp / "stats.json"
    return c.video("--stats", c.expect["stats"], input=clip)


def _odd_size(c: Case) -> list:
    return c.video(input=make_clip(c.tmp / "odd.mp4", frames=3, size=(67, 49)).path)


def _rotated(c: Case) -> list:
    # A phone clip held upright: stored landscape 66x50, displayed portrait 50x66.
    clip = make_clip(c.tmp / "phone.mp4", frames=3, size=(H, W), rotation=90)
    info = probe(clip.path)
    assert info.rotation == 90 and (info.width, info.height) == (H, W)
    return c.video(input=clip.path)


def _vfr(c: Case) -> list:
    clip = make_clip(c.tmp / "vfr.mp4", frames=4, size=(W, H), vfr=True)
    assert len(set(np.diff(clip.pts).tolist())) == 2  # really variable
    c.expect["times"] = clip.times
    return c.video(input=clip.path)


def _ten_bit(c: Case) -> list:
    clip = make_clip(c.tmp / "10bit.mp4", frames=3, size=(W, H), pix_fmt="yuv420p10le",
                     audio=False)
    assert probe(clip.path).pix_fmt == "yuv420p10le"
    return c.video(input=clip.path)


def _grey(c: Case) -> list:
    clip = make_clip(c.tmp / "grey.mkv", frames=3, size=(W, H), codec="ffv1", pix_fmt="gray",
                     audio=False)
    assert probe(clip.path).pix_fmt == "gray"
    return c.video(input=clip.path)


def _out_exists(c: Case) -> list:
    c.out.write_bytes(b"precious bytes, not a video")  # the snapshot proves they are unchanged
    return c.video()


def _mount_tmpfs(c: Case, where: Path, options: str) -> None:
    """Mount a tmpfs at ``where`` (unmounted by the case's clean-up); skip if not allowed."""
    where.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                              check=False, capture_output=True, text=True)
    except OSError as exc:
        raise Skip(f"cannot run mount ({exc.strerror})") from None
    if proc.returncode != 0:
        raise Skip(f"cannot mount a tmpfs here ({(proc.stderr or proc.stdout).strip()})")
    c.cleanups.append(lambda: _umount(where))


def _umount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def _read_only_dir(c: Case) -> list:
    ro = c.tmp / "ro"
    _mount_tmpfs(c, ro, "ro")
    return c.video(out=ro / "out.mp4")


def _disk_full(c: Case) -> list:
    # 100 KiB: the job files and the first frame (a PNG and a ~50 KB chain state) fit; the
    # second frame does not (its state is written while the first frame's still exists).
    _mount_tmpfs(c, c.tmp / DISK, "size=100k")
    clip = make_clip(c.tmp / "three.mp4", frames=3, size=(W, H)).path
    return [x if x != c.work else c.tmp / DISK / WORK for x in c.video(input=clip)]


def _alias_bomb() -> str:
    """Nine levels of nine aliases: ~470 bytes that expand to 9^9 strings."""
    rows = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    rows += [f"{n}: &{n} [{', '.join(['*' + p] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]
    return "\n".join(rows) + "\n"


def _manifest_bomb(c: Case) -> list:
    manifest = c.write("m.yaml", _alias_bomb() + "jobs:\n  - {input: clip.mp4, style: style.png, "
                       "output: out.mp4}\n")
    return ["batch", manifest, "--work-dir", c.work, "--quiet"]


MANIFEST_DEFAULTS = "{preset: test, max_size: 64, scales: 1, iters: 2, warm_iters: 1}"


def _batch(c: Case, *extra: str | os.PathLike[str], jobs: str = "", defaults: str = "",
           folder: str = ".") -> list:
    """A manifest of one job (clip.mp4 -> out.mp4), plus ``jobs`` lines, run by ``batch``."""
    (c.tmp / folder).mkdir(exist_ok=True)
    manifest = c.write(f"{folder}/m.yaml", f"defaults: {defaults or MANIFEST_DEFAULTS}\njobs:\n"
                       "  - {input: clip.mp4, style: style.png, output: out.mp4}\n" + jobs)
    return ["batch", manifest, "--work-dir", c.work, "--threads", "1", "--quiet", *extra]


def _output_is_next_jobs_input(c: Case) -> list:
    # Job 0 writes out.mp4, which job 1 reads: with --overwrite it would stylise job 0's output.
    c.out.write_bytes(c.clip.read_bytes())
    return _batch(c, "--overwrite",
                  jobs="  - {input: out.mp4, style: style.png, output: second.mp4}\n")


def _sandboxed(c: Case, jobs: str = "", defaults: str = "") -> list:
    """A manifest in ``sub/`` with its inputs, run with --sandbox and a work dir inside it."""
    (c.tmp / "sub").mkdir()
    for name in ("clip.mp4", "style.png"):
        os.link(c.tmp / name, c.tmp / "sub" / name)
    args = _batch(c, "--sandbox", jobs=jobs, defaults=defaults, folder="sub")
    return [a if a != c.work else c.tmp / "sub" / WORK for a in args]


def _huge_style(c: Case) -> list:
    # 31 KB on disk, 16000x16000 declared: decoded reduced, never as a 16k float image.
    c.expect["stats"] = c.tmp / "stats.json"
    return c.video("--stats", c.expect["stats"],
                   style=make_bilevel_png(c.tmp / "huge.png", 16000, 16000))


def _kept_work(c: Case) -> Path:
    """Run the case's job once, keeping its work directory; returns the job's directory."""
    first = run_cli(*c.video("--keep-work"), cwd=c.tmp, extra_env=c.env)
    assert first.returncode == 0, first.stderr
    c.out.unlink()
    job, = (p for p in (c.tmp / WORK).iterdir() if not p.name.startswith("."))
    return job


def _truncated_frame(c: Case) -> list:
    frame = _kept_work(c) / "frames" / "00000001.png"
    truncate(frame, 0.5)
    return c.video()


def _damaged_job_file(name: str, text: str) -> Builder:
    def build(c: Case) -> list:
        (_kept_work(c) / name).write_text(text)
        return c.video()
    return build


def _config(text: str) -> Builder:
    return lambda c: c.video("--config", c.write("c.yaml", text))


class Skip(Exception):
    """A case impossible on this machine (e.g. mounting is not permitted)."""


# --------------------------------------------------------------------------- the matrix

CASES: list[Spec] = [
    Spec("input-missing", "the input video does not exist",
         lambda c: c.video(input=c.tmp / "nope.mp4"), 2, ("does not exist",)),
    Spec("input-is-directory", "the input is a directory", _dir_input, 2, ("directory",)),
    Spec("input-is-text", "a text file given as the video", _text_input, 2,
         ("notes.mp4", "not a video")),
    Spec("input-is-jpeg", "a JPEG given as the video",
         lambda c: c.video(input=make_jpeg(c.tmp / "photo.jpg")), 2, ("image", "image`")),
    Spec("input-truncated-mp4", "an MP4 cut in half (its index, at the end, is lost)",
         _truncated_mp4, 2, ("cut.mp4", "truncated")),
    Spec("input-truncated-mkv", "an MKV cut in half: the decodable part is processed",
         _truncated_mkv, 0, size=(PW, PH), warns="could not be read", weights=True),
    Spec("input-corrupt-packet-lost", "an MJPEG frame's packet damaged: that frame is lost",
         _corrupt_mjpeg, 2, ("frame 3", "damaged", "re-encode")),
    Spec("input-corrupt-packet-concealed", "an H.264 packet damaged: the decoder conceals it",
         _corrupt_h264, 0, frames=4, size=(PW, PH), weights=True),
    Spec("input-audio-only", "a file with audio but no video stream",
         lambda c: c.video(input=make_audio_only(c.tmp / "sound.m4a")), 2, ("no video stream",)),
    Spec("input-no-decodable-frame", "every video packet damaged: zero decodable frames",
         _nothing_decodes, 2, ("cannot decode", "dead.mkv")),
    Spec("input-unsupported-codec", "a valid MP4 whose video codec FFmpeg cannot decode",
         _unknown_codec_tag, 2, ("codec", "not supported")),
    Spec("codec-unknown", "--codec nosuchcodec for the output encoder",
         lambda c: c.video("--codec", "nosuchcodec"), 2, ("nosuchcodec", "--codec")),
    Spec("style-missing", "the style image does not exist",
         lambda c: c.video(style=c.tmp / "nope.png"), 2, ("style", "does not exist")),
    Spec("style-corrupt", "a style PNG with a broken header", _corrupt_style, 2,
         ("style", "bad.png")),
    Spec("style-is-text", "a text file given as the style image",
         lambda c: c.video(style=c.write("notes.png", "no image here\n")), 2,
         ("style", "notes.png")),
    Spec("style-too-small", "an 8x8 style image", _tiny_style, 2, ("8x8", "16 px")),
    Spec("style-huge-declared", "a 31 KB 1-bit PNG declaring 16000x16000 as the style",
         _huge_style, 0, frames=4, size=(PW, PH), weights=True),
    Spec("style-over-pixel-limit", "a 125 KB 1-bit PNG declaring 32000x32000 (1024 MP) as the "
         "style", lambda c: c.video(style=make_bilevel_png(c.tmp / "big.png", 32000, 32000)), 2,
         ("32000x32000", "400 MP limit", "--max-input-pixels")),
    Spec("style-over-opencv-limit", "a PNG header declaring 50000x50000 (2500 MP) as the style",
         lambda c: c.video(style=make_bilevel_png(c.tmp / "bomb.png", 50000, 50000, False)), 2,
         ("50000x50000", "--max-input-pixels")),
    Spec("style-opencv-limit-raised", "a 304 KB 1-bit PNG of 50000x50000 with "
         "--max-input-pixels 3000000000 (above OpenCV's own limit)",
         lambda c: c.video("--max-input-pixels", "3000000000",
                           style=make_bilevel_png(c.tmp / "bomb.png", 50000, 50000)), 2,
         ("OpenCV cannot decode", "bomb.png")),
    Spec("input-over-pixel-limit", "the 66x50 clip with --max-input-pixels 3000",
         lambda c: c.video("--max-input-pixels", "3000"), 2,
         ("66x50", "--max-input-pixels")),
    Spec("max-size-huge", "--max-size 100000: far more memory than any machine has",
         lambda c: c.video("--max-size", "100000"), 2, ("100000 px", "--max-size")),
    Spec("input-8k", "an 8K (7680x4320) clip processed at --max-size 64", _input_8k, 0,
         frames=2, size=(64, 36), weights=True),
    Spec("input-odd-size", "odd dimensions (67x49)",
         _odd_size, 0, frames=3, size=(64, 46), weights=True),
    Spec("input-rotated", "a phone clip with rotation 90 (displayed 50x66)", _rotated, 0,
         frames=3, size=(48, 64), weights=True),
    Spec("input-vfr", "variable frame rate (29.97/14.985 fps)", _vfr, 0, frames=4,
         size=(PW, PH), weights=True),
    Spec("input-10-bit", "10-bit input (H.264 yuv420p10le)", _ten_bit, 0, frames=3,
         size=(PW, PH), weights=True),
    Spec("input-grey", "a greyscale video (FFV1 gray)", _grey, 0, frames=3, size=(PW, PH),
         weights=True),
    Spec("output-is-input", "the output path is the input",
         lambda c: c.video("--overwrite", out=c.clip), 2, ("input",)),
    Spec("output-exists", "the output exists, no --overwrite (its bytes stay)", _out_exists, 2,
         ("--overwrite",)),
    Spec("output-dir-missing", "the output directory does not exist",
         lambda c: c.video(out=c.tmp / "no" / "such" / "out.mp4"), 2, ("does not exist",)),
    Spec("output-dir-unwritable", "the output directory cannot be written (/proc)",
         lambda c: c.video(out=PROC_OUT), 2, ("/proc",)),
    Spec("output-dir-read-only", "the output directory is a read-only mount", _read_only_dir, 2,
         ("Read-only",)),
    Spec("disk-full-then-resume", "the work directory's disk (a 100 KiB tmpfs) fills mid-run; "
         "then it is enlarged and the same command re-run", _disk_full, 1, ("disk full", "resume"),
         frames=3, size=(PW, PH), weights=True,
         note="keeps the finished frames in the work directory, by design"),
    Spec("work-frame-truncated", "a finished frame's PNG in the kept work directory cut in "
         "half, then the same command", _truncated_frame, 0, frames=4, size=(PW, PH),
         warns="is damaged (removed", weights=True, work=True),
    Spec("work-job-json-list", "the work directory's job.json replaced by []",
         _damaged_job_file("job.json", "[]"), 1, ("job.json", "--fresh"), weights=True,
         work=True),
    Spec("work-job-json-not-json", "the work directory's job.json not JSON",
         _damaged_job_file("job.json", "{not json"), 1, ("job.json", "--fresh"), weights=True,
         work=True),
    Spec("work-shots-json-keys", "the work directory's shots.json missing keys",
         _damaged_job_file("shots.json", '[{"index": 0}]'), 1, ("shots.json", "--fresh"),
         weights=True, work=True),
    Spec("range-empty", "--start 5 --end 5",
         lambda c: c.video("--start", "5", "--end", "5"), 2, ("--end",)),
    Spec("range-reversed", "--start 3 --end 1",
         lambda c: c.video("--start", "3", "--end", "1"), 2, ("--end", "--start")),
    Spec("range-past-end", "--start 100 on a 4-frame clip",
         lambda c: c.video("--start", "100"), 2, ("past the end",)),
    Spec("preset-unknown", "--preset nosuchpreset",
         lambda c: c.video("--preset", "nosuchpreset"), 2, ("nosuchpreset",)),
    Spec("config-invalid-yaml", "--config with invalid YAML",
         _config("strotss: [1, 2\n  x: }\n"), 2, ("YAML",)),
    Spec("config-unknown-key", "--config with an unknown key",
         _config("temporal: {warm_itres: 5}\n"), 2, ("warm_itres",)),
    Spec("temporal-weight-negative", "--temporal-weight -1",
         lambda c: c.video("--temporal-weight", "-1"), 2, ("--temporal-weight",)),
    Spec("content-weight-negative", "--content-weight -1",
         lambda c: c.video("--content-weight", "-1"), 2, ("--content-weight",)),
    Spec("iters-negative", "--iters -3", lambda c: c.video("--iters", "-3"), 2, ("--iters",)),
    Spec("warm-iters-negative", "--warm-iters -1",
         lambda c: c.video("--warm-iters", "-1"), 2, ("--warm-iters",)),
    Spec("config-iters-negative", "YAML config strotss.iters: -3",
         _config("strotss: {iters: -3}\n"), 2, ("strotss.iters",)),
    Spec("config-warm-iters-negative", "YAML config temporal.warm_iters: -1",
         _config("temporal: {warm_iters: -1}\n"), 2, ("temporal.warm_iters",)),
    Spec("config-temporal-weight-negative", "YAML config temporal.weight: -1",
         _config("temporal: {weight: -1}\n"), 2, ("temporal.weight",)),
    Spec("warm-lr-inf", "--warm-lr inf (every frame would be black)",
         lambda c: c.video("--warm-lr", "inf"), 2, ("--warm-lr", "finite")),
    Spec("temporal-weight-inf", "--temporal-weight inf",
         lambda c: c.video("--temporal-weight", "inf"), 2, ("--temporal-weight", "finite")),
    Spec("content-weight-nan", "--content-weight nan",
         lambda c: c.video("--content-weight", "nan"), 2, ("--content-weight", "finite")),
    Spec("adaptive-iters-inf", "--adaptive-iters inf (a warm frame would never end)",
         lambda c: c.video("--adaptive-iters", "inf"), 2, ("--adaptive-iters", "finite")),
    Spec("config-warm-lr-inf", "YAML config temporal.warm_lr: .inf",
         _config("temporal: {warm_lr: .inf}\n"), 2, ("temporal.warm_lr", "finite")),
    Spec("config-alias-bomb", "a 470-byte YAML alias bomb as --config",
         _config(_alias_bomb()), 2, ("aliases",)),
    Spec("batch-manifest-alias-bomb", "a manifest carrying a YAML alias bomb",
         _manifest_bomb, 2, ("aliases",)),
    Spec("device-cuda-without-gpu", "--device cuda with no GPU visible",
         lambda c: c.video("--device", "cuda"), 2, ("cuda",)),
    Spec("encoder-preset-unknown", "--encoder-preset nosuch (refused before any frame)",
         lambda c: c.video("--encoder-preset", "nosuch"), 2, ("nosuch", "--encoder-preset")),
    Spec("work-dir-is-file", "--work-dir names a file (the style image)",
         lambda c: [a if a != c.work else c.style for a in c.video()], 2,
         ("not a directory", "--work-dir")),
    Spec("batch-stats-is-input", "batch --stats clip.mp4, a job's input",
         lambda c: _batch(c, "--stats", c.clip), 2, ("stats file", "input of job 0")),
    Spec("batch-stats-is-manifest", "batch m.yaml --stats m.yaml",
         lambda c: _batch(c, "--stats", c.tmp / "m.yaml"), 2, ("stats file", "the manifest")),
    Spec("batch-stats-dir-missing", "batch --stats /nonexistent/s.json (refused before the work)",
         lambda c: _batch(c, "--stats", "/nonexistent/s.json"), 2, ("/nonexistent",
                                                                    "does not exist")),
    Spec("batch-output-is-next-jobs-input", "job 0's output is job 1's input, with --overwrite",
         _output_is_next_jobs_input, 2, ("job 0", "out.mp4", "input of job 1")),
    Spec("batch-sandbox-output-outside", "batch --sandbox: an output outside the manifest's "
         "folder (../)", lambda c: _sandboxed(c, jobs="  - {input: clip.mp4, style: style.png, "
                                              "output: ../escape.mp4}\n"), 2,
         ("job 1", "outside the manifest's folder", "--sandbox")),
    Spec("batch-sandbox-preset-path", "batch --sandbox: preset: names a YAML file through ../",
         lambda c: _sandboxed(c, defaults="{preset: ../../../../../../etc/passwd-like}"), 2,
         ("preset", "outside the manifest's folder", "--sandbox")),
    Spec("batch-manifest-missing", "batch with a missing manifest",
         lambda c: ["batch", c.tmp / "nope.yaml", "--work-dir", c.work, "--quiet"], 2,
         ("nope.yaml",)),
    Spec("shots-input-missing", "shots with a missing input",
         lambda c: ["shots", c.tmp / "nope.mp4", "--quiet"], 2, ("does not exist",)),
]
KNOWN_BUGS: dict[str, str] = {}
SPECS = {s.id: s for s in CASES}
assert len(SPECS) == len(CASES), "duplicate case ids"


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    tmp: Path
    before: dict[str, bytes | None] = field(default_factory=dict)
    after: dict[str, bytes | None] = field(default_factory=dict)
    proc: subprocess.CompletedProcess[str] | None = None
    expect: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    crash: str | None = None  # the harness itself failed (building inputs, mounting)
    # Full-disk case: finished frames kept after the failure, and the re-run.
    kept_frames: int | None = None
    rerun: subprocess.CompletedProcess[str] | None = None


def _outside_work(snap: dict[str, bytes | None]) -> dict[str, bytes | None]:
    """A snapshot without the work directory (and the full-disk mount)."""
    return {k: v for k, v in snap.items()
            if k.split(os.sep, 1)[0] not in (WORK, DISK)}


def _finished_frames(root: Path) -> int:
    return sum(1 for _ in root.glob(f"{WORK}/*/frames/*.png"))


def _run_case(spec: Spec, tmp: Path) -> Outcome:
    """Build the case's inputs, snapshot, run the CLI (twice for the full-disk case)."""
    case = Case(tmp)
    outcome = Outcome(tmp)
    try:
        argv = spec.build(case)
        outcome.expect = case.expect
        outcome.before = snapshot(tmp)
        outcome.proc = run_cli(*argv, cwd=tmp, extra_env=case.env)
        outcome.after = snapshot(tmp)
        if spec.id == "disk-full-then-resume":
            disk = tmp / DISK
            outcome.kept_frames = _finished_frames(disk)
            subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True,
                           capture_output=True)
            # The same command without --quiet, so it says that it resumed.
            again = [a for a in argv if a != "--quiet"]
            outcome.rerun = run_cli(*again, cwd=tmp, extra_env=case.env)
    except Skip as exc:
        outcome.skipped = str(exc)
    except Exception:  # noqa: BLE001 - reported by this case's test, not by the whole matrix
        outcome.crash = traceback.format_exc()
    finally:
        for cleanup in reversed(case.cleanups):
            cleanup()
    return outcome


# The slowest first: they set the pace.
COST = {"input-8k": 0, "disk-full-then-resume": 1, "style-huge-declared": 1}


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    """Run the selected cases concurrently, each in its own directory; afterwards, when every
    case was selected (no -k or -m narrowing), write docs/reliability.md."""
    wanted = {item.callspec.id for item in request.session.items
              if getattr(item, "originalname", None) == TEST and item.module is request.module}
    order = sorted((s for s in CASES if s.id in wanted),
                   key=lambda s: (COST.get(s.id, 1 if s.work else 2 if s.weights else 3),
                                  CASES.index(s)))
    dirs = {s.id: tmp_path_factory.mktemp(s.id) for s in order}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {s.id: pool.submit(_run_case, s, dirs[s.id]) for s in order}
        results = {k: f.result() for k, f in futures.items()}
    yield results
    if wanted >= set(SPECS):
        write_doc(results)


# --------------------------------------------------------------------------- the test


def _warnings(stderr: str) -> list[str]:
    """The warning messages in ``stderr`` (the CLI's one-line format), in order."""
    return [line[len(WARNING):] for line in stderr.splitlines() if line.startswith(WARNING)]


WARNING = "strotss-video: warning: "


def _check_quiet_stderr(stderr: str, warns: str | None) -> None:
    """--quiet: stderr holds only warnings, each once and on one line, or nothing."""
    assert "Traceback" not in stderr, stderr
    if warns is None:
        assert stderr == "", stderr
        return
    found = _warnings(stderr)
    assert found and all(warns in w for w in found), stderr
    assert len(found) == len(set(found)), f"a warning repeated: {stderr!r}"
    assert len(found) == len(stderr.splitlines()), f"more than warnings on stderr: {stderr!r}"


def _check_output(out: Path, frames: int, size: tuple[int, int]) -> list:
    assert out.is_file(), f"no output {out}"
    info = probe(out)
    assert (info.width, info.height, info.rotation) == (*size, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the output itself must decode cleanly
        decoded = list(read_frames(out))
    assert len(decoded) == frames
    assert all(f.image.shape == (size[1], size[0], 3) for f in decoded)
    return decoded


def _case_marks(spec: Spec) -> list:
    marks: list = [pytest.mark.weights] if spec.weights else []
    if spec.id in KNOWN_BUGS:
        marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[spec.id]))
    return marks


@pytest.mark.parametrize("spec", [pytest.param(s, id=s.id, marks=_case_marks(s)) for s in CASES])
def test_reliability_case(spec: Spec, matrix: dict[str, Outcome]) -> None:
    outcome = matrix[spec.id]
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert outcome.crash is None, outcome.crash
    proc = outcome.proc
    assert proc is not None
    assert not PROC_OUT.exists()
    # Nothing but the work directory (and, on success, the output and stats) may change.
    new = set(_outside_work(outcome.after)) - set(_outside_work(outcome.before))
    assert not any(k.endswith(".part") for k in outcome.after), sorted(outcome.after)

    if spec.code != 0:
        line = assert_one_line_error(proc, spec.code)
        for needle in spec.needles:
            assert needle in line, line
        assert proc.stdout == ""
        assert _outside_work(outcome.after) == _outside_work(outcome.before)
        if spec.work:  # the earlier run's work directory is left for --fresh to judge
            assert outcome.after == outcome.before
        elif spec.id != "disk-full-then-resume":  # a run that failed up front stylised nothing
            assert _finished_frames(outcome.tmp) == 0
    else:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == ""
        expect = {"frames": spec.frames, "size": spec.size, "warns": spec.warns,
                  **outcome.expect}
        _check_quiet_stderr(proc.stderr, expect["warns"])
        out = outcome.tmp / "out.mp4"
        decoded = _check_output(out, expect["frames"], expect["size"])
        stats = expect.get("stats")
        assert new == {"out.mp4"} | ({stats.name} if stats else set()), sorted(new)
        # Inputs untouched.
        before = _outside_work(outcome.before)
        assert {k: v for k, v in outcome.after.items() if k in before} == before
        if "times" in expect:  # VFR: every frame at its exact source time
            assert [f.time for f in decoded] == expect["times"]
        if stats:
            summary = json.loads(stats.read_text())["summary"]
            assert summary["frames"] == expect["frames"]
            assert 0 < summary["peak_rss_mib"] < PEAK_RSS_LIMIT_MIB, summary["peak_rss_mib"]

    if spec.id == "disk-full-then-resume":
        # The failed run wrote no output but kept its finished frames ...
        assert outcome.kept_frames is not None and 0 < outcome.kept_frames < spec.frames
        rerun = outcome.rerun
        assert rerun is not None
        # ... and the same command, once there is room, resumes from them and finishes.
        assert rerun.returncode == 0, rerun.stderr
        assert "Traceback" not in rerun.stderr
        assert f"resuming: {outcome.kept_frames} of {spec.frames} frames" in rerun.stderr
        _check_output(outcome.tmp / "out.mp4", spec.frames, spec.size)


# --------------------------------------------------------------------------- docs/reliability.md


def _clean(text: str, tmp: Path) -> str:
    """Deterministic text: temp paths as <tmp>, job keys as <key>, table pipes escaped."""
    for root in {str(tmp.resolve()), str(tmp)}:
        text = text.replace(root, "<tmp>")
    text = re.sub(r"-[0-9a-f]{16}\b", "-<key>", text)  # work directories: <stem>-<job key>
    # Memory figures depend on the machine: the doc shows the message's form.
    text = re.sub(r"about [\d.]+ GiB of (memory|GPU memory), [\d.]+ GiB is available; use "
                  r"--max-size \d+", r"about <n> GiB of \1, <m> GiB is available; use "
                  r"--max-size <largest that fits>", text)
    return text.replace("|", "\\|")


def _expected(spec: Spec) -> str:
    if spec.id == "disk-full-then-resume":
        return "error, exit 1; re-run after freeing space: success, resumes"
    if spec.code:
        return f"error, exit {spec.code}"
    return "success with a warning" if spec.warns else "success"


def _observed(spec: Spec, outcome: Outcome) -> str:
    if outcome.skipped:
        return f"skipped: {outcome.skipped}"
    if outcome.crash is not None or outcome.proc is None:
        return "not run: the test harness failed (see the test's output)"
    proc = outcome.proc
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode != 0:
        text = f"exit {proc.returncode}: " + " / ".join(lines)
        left = sorted(k for k, v in outcome.after.items() if v is not None and
                      k.split(os.sep, 1)[0] == WORK and k not in outcome.before)
        if left:  # what planning wrote before it failed (the work dir is not the user's)
            text += f" (left in the work dir: {', '.join(left)})"
    else:
        out = outcome.tmp / "out.mp4"
        parts = ["ok"]
        if out.is_file():
            info = probe(out)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                count = sum(1 for _ in read_frames(out))
            parts.append(f"({count} frames, {info.width}x{info.height})")
        stats = outcome.expect.get("stats")
        if stats is not None and stats.is_file():
            peak = json.loads(stats.read_text())["summary"]["peak_rss_mib"]
            parts.append(f"peak RSS {'below' if peak < PEAK_RSS_LIMIT_MIB else 'ABOVE'} "
                         f"{PEAK_RSS_LIMIT_MIB // 1024} GiB")
        text = " ".join(parts) + "".join(f"; warning: {w}" for w in _warnings(proc.stderr))
    if outcome.rerun is not None:
        resumed = [line.strip() for line in re.split(r"[\r\n]", outcome.rerun.stderr)
                   if line.strip().startswith("resuming")]
        text += f"; re-run: exit {outcome.rerun.returncode}" + \
            "".join(f", {line}" for line in resumed)
    return _clean(text, outcome.tmp)


def write_doc(results: dict[str, Outcome]) -> None:
    rows = [
        "# Reliability: the video bad-input matrix",
        "",
        "<!-- Generated by `pytest tests/test_reliability.py`; do not edit by hand. -->",
        "",
        "Generated by `pytest tests/test_reliability.py` (written only when every case runs);",
        "do not edit by hand. Each case runs the real CLI (`python -m strotss_video`) in a fresh",
        "directory with tiny settings (`--preset test --max-size 64 --scales 1 --iters 2",
        "--warm-iters 1 --quiet`, `--work-dir <tmp>/work`). An error is one stderr line,",
        "exit 2 for usage errors (arguments, inputs, outputs, configuration) and 1 for failed",
        "runs, with no output, partial file or other change left in the directory; a success",
        "writes an output that decodes to the frame count and size shown. `<tmp>` stands for",
        "the case's temporary directory.",
        "",
        "| # | case | what | expected | observed |",
        "|---|------|------|----------|----------|",
    ]
    for n, spec in enumerate(CASES, 1):
        expected = _expected(spec)
        if spec.note:
            expected += f" ({spec.note})"
        if spec.id in KNOWN_BUGS:
            expected += f" — known bug: {KNOWN_BUGS[spec.id]}"
        observed = _observed(spec, results[spec.id])
        what = spec.what.replace("|", "\\|")
        rows.append(f"| {n} | `{spec.id}` | {what} | {expected} | {observed} |")
    rows += _scenario_rows()
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text("\n".join(rows) + "\n", encoding="utf-8")


# Scenarios that need more than one process, a kill or a damaged work directory: their own
# test modules, listed with what each checks (their docstrings and names).
SCENARIO_MODULES = ("test_concurrency", "test_hostile", "test_resume")


def _scenario_rows() -> list[str]:
    import importlib
    rows = ["", "## Scenarios", "",
            "Runs that need several processes, kills or damaged files, each a test through the",
            "real CLI in the module named (`pytest tests/MODULE.py`).", "",
            "| module | test | what it checks |", "|---|---|---|"]
    for name in SCENARIO_MODULES:
        module = importlib.import_module(name)
        for attr, func in vars(module).items():  # in definition order
            if attr.startswith("test_") and callable(func):
                doc = " ".join((func.__doc__ or attr[5:].replace("_", " ")).split())
                rows.append(f"| `{name}` | `{attr}` | {doc.replace('|', chr(92) + '|')} |")
    return rows
