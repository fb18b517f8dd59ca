"""End-to-end tests of the ``strotss-video`` command line, run as a real subprocess.

Every bad input must end as exactly one line on stderr starting ``strotss-video: error:``
(no traceback), exit 2 for usage errors and 1 for failures, and leave the file system as it
was: no output, no partial or probe files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from clitools import PREFIX, assert_one_line_error, run_cli, snapshot
from conftest import pattern_image, save_rgb

FAST = ["--preset", "test", "--iters", "2", "--scales", "1", "--quiet"]
PROC_OUT = Path("/proc/strotss-test-out.png")  # not creatable, even by root


class Case:
    """A tmp dir with ``content.png`` (64x48) and ``style.png`` (64x64); ``out/`` for outputs."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.content = save_rgb(tmp / "content.png", pattern_image(48, 64, seed=1))
        self.style = save_rgb(tmp / "style.png", pattern_image(64, 64, seed=2))
        self.out_dir = tmp / "out"
        self.out_dir.mkdir()
        self.out = self.out_dir / "out.png"

    def image(self, *extra: str | os.PathLike[str], content: Path | None = None,
              style: Path | None = None, out: Path | None = None) -> list[str | os.PathLike[str]]:
        return ["image", content or self.content, style or self.style, out or self.out, *extra]

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path


# --------------------------------------------------------------------------- the bad-input matrix

Builder = Callable[[Case], list]


def _content_dir(c: Case) -> list:
    (c.tmp / "adir").mkdir()
    return c.image(content=c.tmp / "adir")


def _out_is_dir(c: Case) -> list:
    (c.out_dir / "sub.png").mkdir()
    return c.image(out=c.out_dir / "sub.png")


def _out_exists(c: Case) -> list:
    c.out.write_bytes(b"precious bytes, not a png")  # the snapshot check proves it is unchanged
    return c.image()


def _config(text: str) -> Builder:
    return lambda c: c.image("--config", c.write("c.yaml", text))


def _content_mask_mismatch(c: Case) -> list:
    cm = save_rgb(c.tmp / "cm.png", pattern_image(32, 32, seed=5))  # the content is 64x48
    sm = save_rgb(c.tmp / "sm.png", pattern_image(64, 64, seed=6))
    return c.image("--guide", cm, sm)


def _style_mask_mismatch(c: Case) -> list:
    cm = save_rgb(c.tmp / "cm.png", pattern_image(48, 64, seed=5))
    sm = save_rgb(c.tmp / "sm.png", pattern_image(40, 64, seed=6))  # the style is 64x64
    return c.image("--guide", cm, sm)


def _tiny_content(c: Case) -> list:
    return c.image(content=save_rgb(c.tmp / "tiny.png", pattern_image(8, 8, seed=3)))


def _truncated_png(c: Case) -> list:
    cut = c.write("cut.png", "")
    cut.write_bytes(c.content.read_bytes()[:300])  # a valid signature, then nothing
    return c.image("--device", "cuda", content=cut)  # fails on decoding, before any work


def _corrupt_png_header(c: Case) -> list:
    bad = c.write("bad.png", "")
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")  # signature, then a broken header
    return c.image("--device", "cuda", style=bad)


def _halves(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w, 3), np.uint8)
    mask[:, w // 2:] = 255
    return mask


def _out_is_mask(c: Case) -> list:
    cm = save_rgb(c.tmp / "cm.png", _halves(48, 64))  # valid masks: two flat regions
    sm = save_rgb(c.tmp / "sm.png", _halves(64, 64))
    return c.image("--guide", cm, sm, "--overwrite", *FAST, out=cm)


def _garbage_weights(c: Case) -> list:
    return c.image("--vgg-weights", c.write("w.pth", "not a state dict"), *FAST)


# (id, builder, exit code, text the one-line message must contain, "" for any)
CASES: list[tuple[str, Builder, int, str]] = [
    ("missing-content", lambda c: c.image(content=c.tmp / "nope.png"), 2, "does not exist"),
    ("missing-style", lambda c: c.image(style=c.tmp / "nope.png"), 2, "style"),
    ("content-is-directory", _content_dir, 2, "directory"),
    ("content-is-text", lambda c: c.image(content=c.write("notes.png", "hello, no image\n")), 2,
     "notes.png"),
    ("content-is-truncated-png", _truncated_png, 2, "cut.png"),
    ("style-is-corrupt-png", _corrupt_png_header, 2, "bad.png"),
    ("style-is-empty", lambda c: c.image(style=c.write("empty.png", "")), 2, "empty.png"),
    ("output-dir-missing", lambda c: c.image(out=c.tmp / "no" / "such" / "out.png"), 2, "exist"),
    ("output-is-directory", _out_is_dir, 2, "directory"),
    ("output-unwritable", lambda c: c.image(out=PROC_OUT), 2, "/proc"),
    ("output-exists", _out_exists, 2, "--overwrite"),
    ("output-is-content", lambda c: c.image("--overwrite", out=c.content), 2, "input"),
    ("output-is-content-mask", _out_is_mask, 2, "cm.png"),
    ("stats-dir-missing", lambda c: c.image("--stats", c.tmp / "nodir" / "s.json", *FAST), 2,
     "nodir"),
    ("output-bad-extension", lambda c: c.image(out=c.out_dir / "out.xyz"), 2, ".png"),
    ("unknown-preset", lambda c: c.image("--preset", "nosuchpreset"), 2, "nosuchpreset"),
    ("config-missing", lambda c: c.image("--config", c.tmp / "nope.yaml"), 2, "nope.yaml"),
    ("config-invalid-yaml", _config("strotss: [1, 2\n  x: }\n"), 2, "YAML"),
    ("config-not-a-mapping", _config("- 1\n- 2\n"), 2, "mapping"),
    ("config-unknown-key", _config("strotss: {itres: 5}\n"), 2, "itres"),
    ("config-unknown-section", _config("video: {fps: 5}\n"), 2, "video"),
    ("config-negative", _config("strotss: {iters: -5}\n"), 2, "iters"),
    ("config-wrong-type", _config('strotss: {iters: "many"}\n'), 2, "iters"),
    ("config-bool-for-int", _config("strotss: {iters: true}\n"), 2, "iters"),
    ("max-size-0", lambda c: c.image("--max-size", "0"), 2, "--max-size"),
    ("iters-negative", lambda c: c.image("--iters", "-1"), 2, "--iters"),
    ("iters-not-a-number", lambda c: c.image("--iters", "many"), 2, "--iters"),
    ("scales-0", lambda c: c.image("--scales", "0"), 2, "--scales"),
    ("content-weight-negative", lambda c: c.image("--content-weight", "-1"), 2, "--content-weight"),
    ("content-weight-nan", lambda c: c.image("--content-weight", "nan"), 2, "--content-weight"),
    ("first-scale-too-small", lambda c: c.image("--max-size", "16", "--scales", "4"), 2, "16 px"),
    ("content-mask-size-mismatch", _content_mask_mismatch, 2, "content mask"),
    ("style-mask-size-mismatch", _style_mask_mismatch, 2, "style mask"),
    ("content-too-small", _tiny_content, 2, "8x8"),
    ("device-cuda-without-gpu", lambda c: c.image("--device", "cuda"), 2, "cuda"),
    ("device-unknown", lambda c: c.image("--device", "tpu"), 2, "tpu"),
    ("missing-output-positional", lambda c: c.image()[:3], 2, "OUTPUT"),
    ("missing-all-positionals", lambda c: ["image"], 2, "CONTENT"),
    ("unknown-option", lambda c: c.image("--frobnicate"), 2, "--frobnicate"),
    # Not a command: taken as the INPUT of the default video command, which then lacks OUTPUT.
    ("unknown-command", lambda c: ["paint", c.content], 2, "missing OUTPUT"),
    ("vgg-weights-missing", lambda c: c.image("--vgg-weights", c.tmp / "nope.pth", *FAST), 1,
     "nope.pth"),
    ("vgg-weights-garbage", _garbage_weights, 1, "w.pth"),
    ("weights-cmd-missing-file", lambda c: ["weights", "--vgg-weights", c.tmp / "nope.pth"], 1,
     "nope.pth"),
]
BAD_INPUT_TEST = "test_bad_input_is_one_line_error"
KNOWN_BUGS: dict[str, str] = {}


@dataclass
class Outcome:
    tmp: Path
    before: dict[str, bytes | None]
    proc: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Run the selected bad-input cases concurrently: each pays ~1.5 s importing torch, so
    one by one they would dominate the suite's time. Each case has its own directory."""
    wanted = {item.callspec.id for item in request.session.items
              if getattr(item, "originalname", None) == BAD_INPUT_TEST
              and item.module is request.module}
    jobs = {}
    for case_id, build, _, _ in CASES:
        if case_id in wanted:
            case = Case(tmp_path_factory.mktemp(case_id))
            argv = build(case)
            jobs[case_id] = (case.tmp, snapshot(case.tmp), argv)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {k: pool.submit(run_cli, *argv, cwd=tmp) for k, (tmp, _, argv) in jobs.items()}
        return {k: Outcome(jobs[k][0], jobs[k][1], f.result()) for k, f in futures.items()}


@pytest.mark.parametrize("code, needle", [
    pytest.param(k, n, id=i, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[i])]
                 if i in KNOWN_BUGS else []) for i, _, k, n in CASES])
def test_bad_input_is_one_line_error(request: pytest.FixtureRequest, matrix: dict[str, Outcome],
                                     code: int, needle: str) -> None:
    outcome = matrix[request.node.callspec.id]
    line = assert_one_line_error(outcome.proc, code)
    assert needle in line, line
    assert outcome.proc.stdout == ""
    # Nothing written, removed or changed: no output (an existing one is untouched), no
    # .out.png.*.part or probe files left behind.
    assert snapshot(outcome.tmp) == outcome.before
    assert not PROC_OUT.exists()


# --------------------------------------------------------------------------- working commands


def test_print_config_precedence(tmp_path: Path) -> None:
    """flag > config file > preset > default; no inputs needed."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("strotss:\n  iters: 7\n  max_size: 96\nruntime:\n  seed: 4\n")
    proc = run_cli("image", "--preset", "test", "--config", cfg, "--iters", "3", "--print-config",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    data = yaml.safe_load(proc.stdout)
    assert isinstance(data, dict)
    s, r = data["strotss"], data["runtime"]
    assert s["iters"] == 3  # the flag beats the config file's 7 and the preset's 20
    assert s["max_size"] == 96  # the config file beats the preset's 64
    assert s["output_points"] == 256  # the preset beats the default 1024
    assert s["scales"] == 2 and s["min_region_pixels"] == 50  # preset
    assert s["pyramid_levels"] == 5 and s["content_weight"] == 1.0  # defaults
    assert r == {"device": "auto", "seed": 4, "vgg_weights": None, "precision": "auto",
                 "cuda_graphs": "on", "cudnn_benchmark": "off", "allocator": "system",
                 "threads": 0, "max_input_pixels": 400_000_000}


def test_neighbour_flow_flag_overrides_the_config_file(tmp_path: Path) -> None:
    """``--neighbour-flow on|off`` sets temporal.neighbour_flow (default on) over the file."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("temporal:\n  neighbour_flow: false\n")
    shown = {}
    for extra in ((), ("--config", cfg), ("--config", cfg, "--neighbour-flow", "on"),
                  ("--neighbour-flow", "off")):
        proc = run_cli("video", *extra, "--print-config", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        shown[extra[-1] if extra else "default"] = \
            yaml.safe_load(proc.stdout)["temporal"]["neighbour_flow"]
    assert shown == {"default": True, cfg: False, "on": True, "off": False}


def test_debug_shows_traceback(tmp_path: Path) -> None:
    c = Case(tmp_path)
    proc = run_cli(*c.image(content=tmp_path / "nope.png"), "--debug", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith(PREFIX)
    assert not c.out.exists()


def test_real_run_writes_image_and_stats(tmp_path: Path) -> None:
    c = Case(tmp_path)
    stats = tmp_path / "s.json"
    proc = run_cli(*c.image(*FAST, "--stats", stats), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # --quiet
    img = cv2.imread(str(c.out), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.dtype == np.uint8
    assert img.shape == (48, 64, 3)  # long side 64, aspect kept
    assert [p.name for p in c.out_dir.iterdir()] == ["out.png"]  # no leftovers

    record = json.loads(stats.read_text())
    for key in ("seconds", "vgg_seconds", "loss_seconds", "iterations", "scales", "weights_source"):
        assert key in record, key
    assert record["iterations"] == 2
    assert isinstance(record["weights_source"], str) and record["weights_source"]
    assert record["seconds"] > 0 and record["vgg_seconds"] >= 0 and record["loss_seconds"] >= 0
    assert isinstance(record["scales"], list) and len(record["scales"]) == 1
    scale = record["scales"][0]
    assert scale["long_side"] == 64 and scale["iterations"] == 2 and scale["seconds"] > 0
    assert set(scale["losses"]) >= {"total", "content", "remd", "moment", "palette"}
    assert all(np.isfinite(v) for v in scale["losses"].values())

    # The same output again without --overwrite is refused, and the result left as it was.
    written = c.out.read_bytes()
    assert_one_line_error(run_cli(*c.image(*FAST), cwd=tmp_path), 2)
    assert c.out.read_bytes() == written


def test_weights_offline(tmp_path: Path) -> None:
    proc = run_cli("weights", "--offline", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("source:") for line in lines), proc.stdout
    path_lines = [line for line in lines if line.startswith("path:")]
    assert len(path_lines) == 1, proc.stdout
    assert Path(path_lines[0].split(":", 1)[1].strip()).is_file()


def test_help_and_version(tmp_path: Path) -> None:
    for argv in (["--help"], ["image", "--help"], ["weights", "--help"]):
        proc = run_cli(*argv, cwd=tmp_path)
        assert proc.returncode == 0, (argv, proc.stderr)
        assert "usage:" in proc.stdout
    proc = run_cli("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("strotss-video ")


def test_no_command_prints_help_and_exits_2(tmp_path: Path) -> None:
    proc = run_cli(cwd=tmp_path)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr and "Traceback" not in proc.stderr


def test_installed_console_script_runs() -> None:
    """The `strotss-video` entry point installed beside this Python works from any directory."""
    script = Path(sys.executable).parent / "strotss-video"
    if not script.exists():
        pytest.skip("package not installed as a console script in this environment")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, cwd="/",
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("strotss-video ")


def test_bad_inputs_are_refused_before_torch_is_imported(tmp_path: Path) -> None:
    """Missing or unreadable files, unwritable outputs and bad manifests are reported without
    importing torch (seconds on a small machine), by the same checks the pipeline runs."""
    save_rgb(tmp_path / "style.png", pattern_image(32, 32, seed=2))
    (tmp_path / "notes.png").write_text("not an image\n")
    (tmp_path / "m.yaml").write_text("jobs: [{input: nope.mp4, style: style.png, output: o.mp4}]\n")
    cases = [
        ["nope.mp4", "style.png", "out.mp4"],  # the video command
        ["notes.png", "style.png", "out.mp4"],  # a text file as the video
        ["image", "notes.png", "style.png", "out.png"],
        ["image", "style.png", "style.png", "no/such/dir/out.png"],
        ["batch", "m.yaml"],
    ]
    code = ("import sys\nfrom strotss_video.cli import main\n"
            f"for argv in {cases!r}:\n"
            "    assert main(argv) == 2, argv\n"
            "    assert 'torch' not in sys.modules, argv\n"
            "print('ok')\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr
    errors = proc.stderr.splitlines()
    assert len(errors) == len(cases) and all(e.startswith(PREFIX) for e in errors), errors
    assert "nope.mp4 does not exist" in errors[0] and "notes.png" in errors[1]
    assert "content image" in errors[2] and "does not exist" in errors[3]
    assert "m.yaml: job 0 (nope.mp4).input" in errors[4]
