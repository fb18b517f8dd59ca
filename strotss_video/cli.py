"""Command line: a thin layer over the pipeline functions.

Every error a user can cause ends as one line on stderr and a non-zero exit (2 for usage
errors, 1 for failures); ``--debug`` shows the traceback instead."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__
from .config import FILL_MODES, PRECISIONS, Config, available_presets, build_config, flag_overrides
from .errors import (
    Interrupted,
    Notice,
    StrotssError,
    UsageError,
    WeightsError,
    install_stop_handlers,
    quote,
)

PROG = "strotss-video"
COMMANDS = ("video", "image", "shots", "batch", "evaluate", "weights", "work")


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line (its default prints the usage block too)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {quote(text)}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {quote(text)}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {quote(text)}")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be positive, got 0")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument("--preset", help=f"named preset ({', '.join(available_presets())})")
    g.add_argument("--config", metavar="FILE.yaml", help="YAML file overriding the preset")
    g.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration as YAML and exit")
    s = p.add_argument_group("STROTSS")
    s.add_argument("--max-size", type=_positive_int, metavar="PX",
                   help="long side of the result in pixels (default 512)")
    s.add_argument("--scales", type=_positive_int, metavar="N",
                   help="coarse-to-fine scales (default 4); the coarsest are dropped, with "
                        "a note, where the frame would be below the 16 px VGG needs")
    s.add_argument("--iters", type=_positive_int, metavar="N",
                   help="optimiser steps per scale (default 250)")
    s.add_argument("--content-weight", type=_non_negative_float, metavar="W",
                   help="content weight; lower gives more style (default 1.0)")
    s.add_argument("--output-points", type=_positive_int, metavar="N",
                   help="output points sampled per step (default 1024)")
    s.add_argument("--style-points", type=_positive_int, metavar="N",
                   help="style points per scale (default 5000)")
    r = p.add_argument_group("run")
    r.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    r.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
    r.add_argument("--precision", choices=PRECISIONS,
                   help="mixed: VGG16 in bfloat16 (and TF32 products on CUDA); fast: mixed, "
                        "and the loss's products from bfloat16-rounded inputs where oneDNN "
                        "computes them so (AMX CPUs; elsewhere fast = auto); auto (default): "
                        "mixed on CUDA and on CPUs with native bfloat16, else float32")
    r.add_argument("--cuda-graphs", choices=("on", "off"),
                   help="on CUDA, replay each scale's optimisation step as a CUDA graph "
                        "(default on; off runs every step eagerly)")
    r.add_argument("--vgg-weights", metavar="FILE", help="VGG16 state-dict file to use")
    r.add_argument("--max-input-pixels", type=_positive_int, metavar="N",
                   help="refuse inputs (images, video frames) larger than N pixels, read from "
                        "their headers before decoding (default 400000000)")
    r.add_argument("--stats", metavar="FILE.json", help="write timings and losses as JSON")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output")
    r.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    r.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def _add_shot_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("shots")
    g.add_argument("--shots", metavar="auto|none|FILE",
                   help="where the temporal chain restarts: auto (detect cuts, default), none, or "
                        "a file of cut points (frame indices or timecodes, or a PySceneDetect CSV)")
    g.add_argument("--shot-detector", choices=("adaptive", "content"),
                   help="PySceneDetect detector (default adaptive)")
    g.add_argument("--adaptive-threshold", type=_positive_float, metavar="T",
                   help="AdaptiveDetector threshold (default 3.0)")
    g.add_argument("--content-threshold", type=_positive_float, metavar="T",
                   help="ContentDetector threshold (default 27)")
    g.add_argument("--min-shot-frames", type=_positive_int, metavar="N",
                   help="shortest shot the detector reports (default 15)")


def _add_work_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("work directory and parallelism")
    g.add_argument("--work-dir", metavar="DIR",
                   help="root of the work directories holding finished frames (default: "
                        "~/.cache/strotss-video/work); an interrupted run resumes from it")
    g.add_argument("--fresh", action="store_true",
                   help="discard finished frames of earlier runs writing the same output (this "
                        "job's and those of other styles, settings or ranges)")
    g.add_argument("--keep-work", action="store_true",
                   help="keep the work directory after success (default: remove its frames)")
    g.add_argument("--workers", type=_positive_int, metavar="N",
                   help="shots stylised in parallel (local processes; default 1)")
    g.add_argument("--executor", choices=("local", "ray"),
                   help="local processes (default) or a Ray cluster (pip install "
                        "'strotss-video[ray]')")
    g.add_argument("--address", metavar="ADDR",
                   help="Ray cluster address for --executor ray (default auto: the local one)")
    g.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads per shot task (default: cores / workers)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="STROTSS style transfer for images and video.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    img = sub.add_parser("image", help="stylise one image",
                         description="Stylise CONTENT in the style of STYLE and write OUTPUT.")
    img.add_argument("content", nargs="?", metavar="CONTENT", help="content image")
    img.add_argument("style", nargs="?", metavar="STYLE", help="style image")
    img.add_argument("output", nargs="?", metavar="OUTPUT", help="output image (.png, .jpg, ...)")
    img.add_argument("--guide", nargs=2, metavar=("CONTENT_MASK", "STYLE_MASK"),
                     help="colour-coded region masks, same sizes as the content and style")
    _add_common(img)

    vid = sub.add_parser("video", help="stylise a video (the default command)",
                         description="Stylise INPUT in the style of STYLE and write OUTPUT "
                                     "(.mp4, .mkv or .mov), stable from frame to frame.")
    vid.add_argument("input", nargs="?", metavar="INPUT", help="input video")
    vid.add_argument("style", nargs="?", metavar="STYLE", help="style image")
    vid.add_argument("output", nargs="?", metavar="OUTPUT", help="output video")
    rng = vid.add_argument_group("range and preview")
    rng.add_argument("--start", metavar="T", help="first frame: index (120), seconds (4.5s) or "
                     "timecode (00:00:04.5)")
    rng.add_argument("--end", metavar="T", help="end, exclusive, same forms as --start")
    rng.add_argument("--preview-sheet", metavar="FILE.png",
                     help="contact sheet of input and output at evenly spaced frames")
    tmp = vid.add_argument_group("temporal coherence")
    tmp.add_argument("--temporal", choices=("on", "off"),
                     help="off: every frame stylised from scratch (the per-frame baseline)")
    tmp.add_argument("--temporal-weight", type=_non_negative_float, metavar="W",
                     help="weight of the temporal consistency term (default 100)")
    tmp.add_argument("--warm-iters", type=_positive_int, metavar="N",
                     help="optimiser steps of each warm frame (default 40)")
    tmp.add_argument("--adaptive-iters", type=_non_negative_float, metavar="A",
                     help="extra warm steps where the frame is new: warm_iters * (1 + A * "
                          "unreliable fraction) (default 0: fixed)")
    tmp.add_argument("--warm-lr", type=_positive_float, metavar="LR",
                     help="learning rate of warm frames (default 1e-3)")
    tmp.add_argument("--repaint-rate", type=_positive_float, metavar="R",
                     help="learning-rate multiplier where the flow is unreliable, so a warm "
                          "frame's few steps repaint newly visible areas (default 1; preview 4)")
    tmp.add_argument("--fill", choices=FILL_MODES,
                     help="start of unreliable areas (default checked; see docs/tuning.md)")
    tmp.add_argument("--neighbour-flow", choices=("on", "off"),
                     help="with --fill checked, give a still-rejected pixel its trusted "
                          "neighbours' motion where the input agrees (default on)")
    tmp.add_argument("--flow", choices=("dis", "raft"), help="optical flow method (default dis)")
    tmp.add_argument("--long-term", type=_frame_list, metavar="J,J,...",
                     help="also constrain by these past frames, e.g. 1,10,20")
    tmp.add_argument("--reliable-floor", type=_non_negative_float, metavar="F",
                     help="restart the chain when less than this fraction of the flow is "
                          "reliable (default 0.25; 0 = never)")
    _add_shot_options(vid)
    _add_work_options(vid)
    enc = vid.add_argument_group("encoding")
    enc.add_argument("--codec", help="video codec (default libx264)")
    enc.add_argument("--crf", type=int, metavar="Q", help="constant rate factor (default 18)")
    enc.add_argument("--encoder-preset", metavar="NAME", help="x264 preset (default medium)")
    enc.add_argument("--no-audio", dest="audio", action="store_const", const=False,
                     help="drop the audio streams (default: copied unchanged)")
    enc.add_argument("--output-size", choices=("processing", "source"),
                     help="processing: the stylised size (default); source: the input's size")
    _add_common(vid)

    sh = sub.add_parser("shots", help="list the shots of a video",
                        description="Detect the shots of INPUT and print them as a table "
                                    "(or JSON); end frames are exclusive, times in seconds.")
    sh.add_argument("input", nargs="?", metavar="INPUT", help="input video")
    sh.add_argument("--json", action="store_true", help="print {\"shots\": [...]} as JSON")
    sh.add_argument("--start", metavar="T", help="first frame (as for the video command)")
    sh.add_argument("--end", metavar="T", help="end, exclusive")
    _add_shot_options(sh)
    sh.add_argument("--quiet", action="store_true", help="no progress bar")
    sh.add_argument("--debug", action="store_true", help="show tracebacks on errors")

    bat = sub.add_parser("batch", help="run the jobs of a YAML manifest, shot by shot",
                         description="Stylise every job of MANIFEST.yaml (see README: Batch). "
                                     "Re-running skips finished jobs and shots.")
    bat.add_argument("manifest", nargs="?", metavar="MANIFEST.yaml", help="the manifest")
    bat.add_argument("--preset", help="preset applied to every job before its options")
    bat.add_argument("--config", metavar="FILE.yaml", help="YAML config for every job")
    bat.add_argument("--stats", metavar="FILE.json", help="write a summary as JSON")
    bat.add_argument("--overwrite", action="store_true",
                     help="replace outputs that this manifest's runs did not write")
    bat.add_argument("--sandbox", action="store_true",
                     help="for a manifest from someone else: refuse any file it names (inputs, "
                          "styles, outputs, config: files, presets by path) and a --work-dir "
                          "outside its folder; work directories default to .strotss-work there")
    bat.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    bat.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    _add_work_options(bat)

    _add_evaluate(sub)
    _add_work(sub)

    wts = sub.add_parser("weights", help="resolve and cache the VGG16 weights (and LPIPS heads), "
                                         "print the source")
    wts.add_argument("--vgg-weights", metavar="FILE", help="VGG16 state-dict file to use")
    wts.add_argument("--offline", action="store_true", help="do not try torchvision's download")
    wts.add_argument("--quiet", action="store_true", help="no progress bar")
    wts.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def _add_evaluate(sub: Any) -> None:
    ev = sub.add_parser("evaluate", help="measure a stylised video against its input",
                        description="Measure OUTPUT, stylised from INPUT: warping error (Lai et "
                                    "al., with the input's Farneback flow) of both and their "
                                    "ratio, LPIPS content distance per frame, and with --style "
                                    "the Gram style distance. Frames are matched by time.")
    ev.add_argument("output", nargs="?", metavar="OUTPUT", help="the stylised video")
    ev.add_argument("input", nargs="?", metavar="INPUT", help="the video it was made from")
    ev.add_argument("--style", metavar="S", help="the style image: also report the style distance")
    ev.add_argument("--start", metavar="T", help="the --start OUTPUT was made with (index, "
                    "seconds or timecode)")
    ev.add_argument("--end", metavar="T", help="the --end OUTPUT was made with")
    ev.add_argument("--frames", type=_positive_int, metavar="N",
                    help="evaluate the first N matched frames only")
    ev.add_argument("--max-size", type=_positive_int, metavar="PX",
                    help="evaluate at this long side (default: the output's size)")
    ev.add_argument("--flow", choices=("farneback", "raft", "dis"), default="farneback",
                    help="flow for the warping error (default farneback; stylising uses dis)")
    ev.add_argument("--json", action="store_true",
                    help="print one JSON object: per-frame and per-pair values and a summary")
    ev.add_argument("--plot", metavar="FILE.png", help="write per-frame curves (needs matplotlib)")
    ev.add_argument("--device", help="auto | cpu | cuda | cuda:N for VGG16 (default auto)")
    ev.add_argument("--vgg-weights", metavar="FILE", help="VGG16 state-dict file to use")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def _add_work(sub: Any) -> None:
    wk = sub.add_parser("work", help="list or clean the work directories",
                        description="list: every job directory under the work root with its "
                                    "input (and whether it still matches), output, frames done, "
                                    "size and last change. clean: remove the finished ones, the "
                                    "orphaned ones (input missing or changed) and, with "
                                    "--older-than, those unchanged for DAYS days; never one a "
                                    "running job holds.")
    wk.add_argument("action", nargs="?", choices=("list", "clean"), metavar="list|clean",
                    help="what to do")
    wk.add_argument("--work-dir", metavar="DIR",
                    help="the work root (default: ~/.cache/strotss-video/work)")
    wk.add_argument("--older-than", type=_non_negative_float, metavar="DAYS",
                    help="clean: also remove unfinished job directories unchanged this long")
    wk.add_argument("--json", action="store_true", help="list: print {\"jobs\": [...]} as JSON")
    wk.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def _frame_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected frame distances like 1,10,20, got {quote(text)}") \
            from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"frame distances must be >= 1, got {quote(text)}")
    return values


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The flat settings the user gave on the command line (None = not given)."""
    names = ("max_size", "scales", "iters", "content_weight", "output_points", "style_points",
             "device", "seed", "vgg_weights", "temporal_weight", "warm_iters", "warm_lr", "repaint_rate",
             "fill", "flow",
             "long_term", "crf", "codec", "encoder_preset", "audio", "output_size",
             "shot_detector", "adaptive_threshold", "content_threshold", "min_shot_frames",
             "reliable_floor", "threads", "precision", "adaptive_iters", "cuda_graphs",
             "max_input_pixels")
    settings = {n: getattr(args, n, None) for n in names}
    temporal = getattr(args, "temporal", None)
    settings["temporal"] = None if temporal is None else temporal == "on"
    neighbour = getattr(args, "neighbour_flow", None)
    settings["neighbour_flow"] = None if neighbour is None else neighbour == "on"
    settings["shots"] = getattr(args, "shots", None)
    return settings


def _resolve(args: argparse.Namespace, positionals: tuple[str, ...], usage: str) -> Config | None:
    """The run's configuration, or None after ``--print-config`` printed it."""
    config = build_config(args.preset, args.config, flag_overrides(_settings(args)))
    if args.print_config:
        sys.stdout.write(config.to_yaml())
        return None
    missing = [n for n in positionals if getattr(args, n) is None]
    if missing:
        raise UsageError(f"missing {', '.join(m.upper() for m in missing)}; usage: {usage}")
    return config


def _run_video(args: argparse.Namespace) -> int:
    from .pipeline.spec import preflight_video

    config = _resolve(args, ("input", "style", "output"), f"{PROG} INPUT STYLE OUTPUT")
    if config is None:
        return 0
    # Bad inputs fail here, before the seconds it takes to import torch.
    preflight_video(args.input, args.style, args.output, config, start=args.start, end=args.end,
                    overwrite=args.overwrite, stats=args.stats, preview_sheet=args.preview_sheet,
                    config_file=args.config, work_dir=args.work_dir)
    from .pipeline.video import stylize_video

    result = stylize_video(args.input, args.style, args.output, config=config, start=args.start,
                           end=args.end, overwrite=args.overwrite, progress=not args.quiet,
                           stats=args.stats, preview_sheet=args.preview_sheet,
                           work_dir=args.work_dir, fresh=args.fresh, keep_work=args.keep_work,
                           workers=args.workers or 1, executor=args.executor or "local",
                           address=args.address)
    if not args.quiet:
        s = result.stats["summary"]
        print(f"wrote {args.output} ({s['frames']} frames, {s['output_size'][0]}x"
              f"{s['output_size'][1]}) in {s['seconds']:.1f} s", file=sys.stderr)
    return 0


def _run_shots(args: argparse.Namespace) -> int:
    import json

    from .io.timeline import scan_timeline
    from .pipeline.spec import parse_bound
    from .shots import find_shots, format_shot_table

    if args.input is None:
        raise UsageError(f"missing INPUT; usage: {PROG} shots INPUT [--json]")
    config = build_config(None, None, flag_overrides(_settings(args)))
    timeline = scan_timeline(args.input, parse_bound(args.start, "start"),
                             parse_bound(args.end, "end"))
    shots = find_shots(args.input, config.shots, timeline, progress=not args.quiet)
    if args.json:
        print(json.dumps({"shots": [s.to_dict() for s in shots]}, indent=2))
    else:
        print(format_shot_table(shots))
    return 0


def _run_batch(args: argparse.Namespace) -> int:
    from .pipeline.manifest import preflight_batch

    if args.manifest is None:
        raise UsageError(f"missing MANIFEST; usage: {PROG} batch MANIFEST.yaml")
    preflight_batch(args.manifest, preset=args.preset, config_file=args.config,
                    overrides={"threads": args.threads}, stats=args.stats,
                    work_root=args.work_dir, sandbox=args.sandbox)  # before torch
    from .pipeline.batch import run_batch

    result = run_batch(args.manifest, workers=args.workers or 1,
                       executor=args.executor or "local", address=args.address,
                       work_dir=args.work_dir, fresh=args.fresh, keep_work=args.keep_work,
                       overwrite=args.overwrite, progress=not args.quiet, preset=args.preset,
                       config_file=args.config, stats=args.stats, threads=args.threads,
                       sandbox=args.sandbox)
    if not args.quiet:
        print(f"{len(result.finished_jobs)} job(s) written, {len(result.skipped_jobs)} already "
              f"done; {result.computed_frames} frames stylised in {result.seconds:.1f} s",
              file=sys.stderr)
    return 0


def _run_image(args: argparse.Namespace) -> int:
    from .pipeline.spec import preflight_image

    config = _resolve(args, ("content", "style", "output"), f"{PROG} image CONTENT STYLE OUTPUT")
    if config is None:
        return 0
    preflight_image(args.content, args.style, args.output,
                    guide=tuple(args.guide) if args.guide else None, overwrite=args.overwrite,
                    stats=args.stats, config_file=args.config,
                    config=config)  # before torch is imported
    from .pipeline.image import stylize_image

    result = stylize_image(args.content, args.style, args.output, config=config,
                           guide=tuple(args.guide) if args.guide else None,
                           overwrite=args.overwrite, progress=not args.quiet, stats=args.stats)
    if not args.quiet:
        _, _, h, w = result.image.shape
        print(f"wrote {args.output} ({w}x{h}) in {result.stats['seconds']:.1f} s "
              f"[weights: {result.stats['weights_source']}]", file=sys.stderr)
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    import json

    from .evaluate.plan import plan_evaluation

    if args.output is None or args.input is None:
        raise UsageError(f"missing {'OUTPUT' if args.output is None else 'INPUT'}; usage: "
                         f"{PROG} evaluate OUTPUT INPUT [--style S] [--json] [--plot FILE.png]")
    plan = plan_evaluation(args.output, args.input, style=args.style, start=args.start,
                           end=args.end, frames=args.frames, max_size=args.max_size,
                           plot=args.plot)  # before torch
    from .evaluate.run import run_evaluation

    result = run_evaluation(plan, flow=args.flow, device=args.device or "auto",
                            vgg_weights=args.vgg_weights, progress=not args.quiet)
    if args.plot is not None:
        from .evaluate.plot import write_plot

        write_plot(args.plot, result)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    return 0


def _run_weights(args: argparse.Namespace) -> int:
    from .features.weights import resolve_lpips_heads, resolve_vgg16_weights

    resolved = resolve_vgg16_weights(args.vgg_weights, allow_download=not args.offline,
                                     progress=not args.quiet)
    print(f"source: {resolved.source}")
    print(f"path:   {resolved.path}")
    try:  # only `evaluate` needs the heads: their absence is no reason to fail the setup
        heads = resolve_lpips_heads(progress=not args.quiet)
    except WeightsError as exc:
        warnings.warn(f"{exc} (only `{PROG} evaluate` needs them)", stacklevel=2)
    else:
        print(f"lpips:  {heads.path}")
    return 0


def _run_work(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .pipeline import workroot
    from .pipeline.layout import default_work_root

    if args.action is None:
        raise UsageError(f"missing ACTION; usage: {PROG} work list|clean [--work-dir DIR]")
    root = Path(args.work_dir) if args.work_dir is not None else default_work_root()
    if root.exists() and not root.is_dir():
        raise UsageError(f"work directory {root} is not a directory; pass one as --work-dir")
    if args.action == "list":
        jobs = workroot.list_jobs(root)
        print(workroot.dump(jobs) if args.json else workroot.format_jobs(jobs, root))
    else:
        print(workroot.format_removed(workroot.clean(root, args.older_than), root))
    return 0


def _one_line_warnings() -> None:
    """Show each distinct warning once, as one line (the default is two lines per call site);
    a :class:`Notice` as a ``note:`` line."""
    seen: set[str] = set()

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        if text not in seen:
            seen.add(text)
            kind = "note" if issubclass(category, Notice) else "warning"
            print(f"{PROG}: {kind}: {text}", file=sys.stderr)

    warnings.showwarning = show


_MAX_MESSAGE = 400


def _one_line(text: str) -> str:
    """One line of at most a few hundred characters, whatever an exception carried."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else f"{text[:_MAX_MESSAGE - 1]}…"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``strotss-video`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    # `strotss-video in.mp4 style.jpg out.mp4` is the video command.
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        argv.insert(0, "video")
    _one_line_warnings()
    try:
        install_stop_handlers()
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        if args.command == "image":
            return _run_image(args)
        if args.command == "video":
            return _run_video(args)
        if args.command == "shots":
            return _run_shots(args)
        if args.command == "batch":
            return _run_batch(args)
        if args.command == "evaluate":
            return _run_evaluate(args)
        if args.command == "work":
            return _run_work(args)
        return _run_weights(args)
    except Interrupted as exc:
        again = shlex.join([PROG, *argv[1:]] if argv and argv[0] == "video" else [PROG, *argv])
        print(f"{PROG}: {exc}; to resume, run: {again}", file=sys.stderr)
        return exc.exit_code
    except StrotssError as exc:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if debug:
            traceback.print_exc()
        text = _one_line(str(exc)) or type(exc).__name__
        print(f"{PROG}: internal error: {text} (rerun with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
