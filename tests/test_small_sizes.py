"""Small previews just work: the scales a frame is too small for are dropped, with one note.

Real CLI runs (real VGG16) on generated 4:3, 16:9 and 2.39:1 media at ``--max-size 64``, with
the preview preset and the default one, a couple of steps each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from clitools import assert_one_line_error, run_cli, snapshot
from conftest import pattern_image, save_rgb
from media import make_clip

from strotss_video.io.image import read_image
from strotss_video.io.probe import probe
from strotss_video.tensorops import scaled_size

NOTE = "strotss-video: note: "
# Few steps and points: what is tested is which scales run, not how well.
QUICK = ["--max-size", "64", "--iters", "2", "--output-points", "128", "--style-points", "256",
         "--quiet"]

# Source (W, H) -> processing (W, H) at --max-size 64 -> per preset: (dropped, kept) long sides.
# The default preset's scales are 8, 16, 32, 64 px; the preview's 16, 32, 64.
ASPECTS = {
    "4:3": ((96, 72), (64, 48), {"default": ([8, 16], [32, 64]), "preview": ([16], [32, 64])}),
    "16:9": ((128, 72), (64, 36), {"default": ([8, 16], [32, 64]), "preview": ([16], [32, 64])}),
    "2.39:1": ((172, 72), (64, 26), {"default": ([8, 16, 32], [64]),
                                     "preview": ([16, 32], [64])}),
}


def _stem(aspect: str) -> str:
    return aspect.replace(".", "").replace(":", "_")


def _sides(sizes: list[int]) -> str:
    return ", ".join(map(str, sizes))


def _notes(stderr: str) -> list[str]:
    """Every stderr line, each required to be a note."""
    lines = stderr.splitlines()
    assert all(line.startswith(NOTE) for line in lines), stderr
    return [line[len(NOTE):] for line in lines]


def _says_dropped(note: str, size: tuple[int, int], dropped: list[int], kept: list[int]) -> bool:
    """Whether ``note`` names the ``dropped`` scales of a (W, H) frame, and the ``kept``."""
    frames = ", ".join("{1}x{0}".format(*scaled_size(size[1], size[0], s)) for s in dropped)
    return note.startswith(f"dropped the {_sides(dropped)} px scale") and \
        f"({frames}) would be below the 16 px VGG needs; running the {_sides(kept)} px" in note


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small-media")
    save_rgb(root / "style.png", pattern_image(64, 64, seed=2))
    for name, (size, _, _) in ASPECTS.items():
        stem = _stem(name)
        make_clip(root / f"{stem}.mp4", frames=3, size=size, audio=False)
        save_rgb(root / f"{stem}.png", pattern_image(size[1], size[0], seed=1))
    return root


def test_every_aspect_and_preset_runs_with_one_note_per_job(media: Path, tmp_path: Path) -> None:
    """One batch of six jobs (three aspects, preview and default presets): each job notes
    the scales it dropped, once, and writes a video at the processing size."""
    jobs = []
    (tmp_path / "out").mkdir()
    for name, (_, _, presets) in ASPECTS.items():
        stem = _stem(name)
        for preset in presets:
            # One input file per job: the work directories are named after the input.
            clip = shutil.copy(media / f"{stem}.mp4", tmp_path / f"{stem}_{preset}.mp4")
            jobs.append({"input": str(clip), "style": str(media / "style.png"),
                         "output": str(tmp_path / "out" / f"{stem}_{preset}.mp4"), "end": 2,
                         "options": {"preset": preset} if preset != "default" else {}})
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(yaml.safe_dump({"defaults": {
        "max_size": 64, "iters": 2, "warm_iters": 1, "output_points": 128, "style_points": 256},
        "jobs": jobs}))
    proc = run_cli("batch", manifest, "--quiet")
    assert proc.returncode == 0, proc.stderr
    notes = _notes(proc.stderr)
    assert len(notes) == 6, proc.stderr
    for name, (_, (w, h), presets) in ASPECTS.items():
        for preset, (dropped, kept) in presets.items():
            assert sum(_says_dropped(n, (w, h), dropped, kept) for n in notes) == 1, (name, preset)
            info = probe(tmp_path / "out" / f"{_stem(name)}_{preset}.mp4")
            assert (info.width, info.height) == (w, h)


def test_video_notes_once_per_run_and_every_frame_runs_the_kept_scales(
        media: Path, tmp_path: Path) -> None:
    """16:9 at the default preset, two shots: one note for the run; every cold frame (each
    shot's first) runs the 32 and 64 px scales, every warm frame the 64 px one."""
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("1\n")
    stats = tmp_path / "stats.json"
    proc = run_cli(media / f"{_stem('16:9')}.mp4", media / "style.png", tmp_path / "out.mp4",
                   *QUICK, "--warm-iters", "1", "--shots", cuts, "--stats", stats)
    assert proc.returncode == 0, proc.stderr
    notes = _notes(proc.stderr)
    assert len(notes) == 1 and _says_dropped(notes[0], (64, 36), [8, 16], [32, 64]), proc.stderr
    record = json.loads(stats.read_text())
    frames = record["frames"]
    assert [f["kind"] for f in frames] == ["cold", "cold", "warm"]
    assert [[s[0] for s in f["scales"]] for f in frames] == [[32, 64], [32, 64], [64]]
    # The schedule that ran is the one recorded: the work directory's key holds it too.
    assert record["config"]["strotss"]["scales"] == 2


@pytest.mark.parametrize("aspect,preset,size", [("16:9", "default", (64, 36)),
                                                ("2.39:1", "preview", (64, 27))])
def test_image_drops_the_scales_too_small_for_it(media: Path, tmp_path: Path, aspect: str,
                                                 preset: str, size: tuple[int, int]) -> None:
    """An image's size is not rounded to even: 172x72 at 64 px is 64x27."""
    source, _, presets = ASPECTS[aspect]
    dropped, kept = presets[preset]
    out, stats = tmp_path / "out.png", tmp_path / "stats.json"
    proc = run_cli("image", media / f"{_stem(aspect)}.png", media / "style.png", out,
                   *QUICK, "--stats", stats,
                   *(["--preset", preset] if preset != "default" else []))
    assert proc.returncode == 0, proc.stderr
    notes = _notes(proc.stderr)
    assert len(notes) == 1 and _says_dropped(notes[0], source, dropped, kept), proc.stderr
    record = json.loads(stats.read_text())
    assert [s["long_side"] for s in record["scales"]] == kept
    assert (record["scales"][-1]["width"], record["scales"][-1]["height"]) == size
    assert read_image(out).shape[-2:] == (size[1], size[0])


def test_a_frame_too_small_for_any_scale_is_an_error(media: Path, tmp_path: Path) -> None:
    """2.39:1 at --max-size 32 is 32x12: not even the final scale fits. One line, exit 2,
    nothing written (no output, no work directory)."""
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(tmp_path)
    proc = run_cli(media / "239_1.mp4", media / "style.png", tmp_path / "out.mp4",
                   "--max-size", "32", "--quiet", "--work-dir", work)
    line = assert_one_line_error(proc, 2)
    assert "32x12" in line and "below the 16 px" in line and "--max-size" in line
    assert snapshot(tmp_path) == before
