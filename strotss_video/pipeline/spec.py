"""What a job asks for, and the checks that need no torch.

The CLI runs :func:`preflight_video` / :func:`preflight_image` before it imports the pipeline,
so a missing file, an unreadable style image or an unwritable output is reported in a fraction
of a second instead of after the seconds torch takes to import. The pipeline calls the same
checks (``check_*``), so the library and the CLI refuse the same things with the same words."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import MAX_INPUT_PIXELS, Config
from ..errors import InputError, OutputError
from ..io.decode import decode_rgb
from ..io.encoding import check_encoder_settings
from ..io.paths import VIDEO_EXTENSIONS, WRITABLE_EXTENSIONS, check_output_path
from ..io.probe import probe
from ..io.timecode import parse_time
from .layout import default_work_root
from .locks import LOCK_DIR

if TYPE_CHECKING:
    import torch

Bound = int | Fraction | None
MIN_IMAGE_SIDE = 16
"""Smallest accepted image side: VGG's deepest layer read needs a few pixels to exist."""


@dataclass(frozen=True)
class JobSpec:
    """One video to stylise: what the CLI's video command or a manifest entry asks for."""

    input: Path
    style: Path | torch.Tensor
    output: Path | None
    config: Config
    start: Bound = None
    end: Bound = None
    shot_styles: Mapping[int, Path] = field(default_factory=dict)
    """Per-shot style overrides: shot index -> style image."""
    name: str = ""


def parse_bound(value: str | int | Fraction | None, what: str) -> Bound:
    """A range bound from the CLI's text (frame index, seconds, timecode) or a value."""
    if value is None or isinstance(value, Fraction):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InputError(f"--{what} must not be negative (got {value})")
        return value
    return parse_time(str(value))


def check_range(first: Bound, last: Bound) -> None:
    """Refuse an end at or before the start (both frame indices or both times)."""
    lower = first if first is not None else type(last)(0) if last is not None else None
    if last is not None and type(lower) is type(last) and last <= lower:
        raise InputError(f"--end ({last}) must be after --start ({first or 0}); nothing to stylise")


def check_image_size(height: int, width: int, what: str) -> None:
    if min(height, width) < MIN_IMAGE_SIDE:
        raise InputError(f"{what} is {width}x{height}; images must be at least {MIN_IMAGE_SIDE} px "
                         "on each side")


def check_mask_size(mask: tuple[int, int], image: tuple[int, int], what: str) -> None:
    """Refuse a mask whose (height, width) differs from its image's."""
    if mask != image:
        raise InputError(f"{what} is {mask[1]}x{mask[0]} but its image is {image[1]}x{image[0]}; "
                         "masks must match their image size")


def check_image_file(path: str | os.PathLike[str], what: str, *,
                     max_pixels: int = MAX_INPUT_PIXELS,
                     long_side: int | None = None) -> tuple[int, int]:
    """Decode ``path`` (as :func:`decode_rgb`) and check its size; returns (height, width)."""
    h, w = decode_rgb(path, what, max_pixels=max_pixels, long_side=long_side).shape[:2]
    check_image_size(h, w, what)
    return h, w


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path once symlinks are resolved, or two
    hard links of one file."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


Labelled = Sequence[tuple[Path, str]]
"""Paths with what they are to the user, e.g. ``(Path("a.mp4"), "job 1's input")``."""


def check_writes(writes: Labelled, reads: Labelled) -> None:
    """Refuse, before any work, a path the run would write that is also one it reads."""
    for out, out_what in writes:
        for src, src_what in reads:
            if same_file(out, src):
                raise OutputError(f"{out_what} {out} is also {src_what}; choose another path")


def check_work_root(root: Path, paths: Sequence[Path]) -> None:
    """Refuse a work root that is a file, or one whose job directories hold one of ``paths``
    (what the run reads or writes): --fresh and ``work clean`` remove job directories."""
    if root.exists() and not root.is_dir():
        raise OutputError(f"work directory {root} is not a directory; pass a directory as "
                          "--work-dir")
    base = root.resolve()
    for path in paths:
        try:
            parts = path.resolve().relative_to(base).parts
        except ValueError:
            continue
        if len(parts) > 1 and (parts[0] == LOCK_DIR or (base / parts[0] / "job.json").exists()):
            raise OutputError(f"{path} lies inside the job directory {base / parts[0]}, which "
                              "runs remove; move it or choose another --work-dir")


def check_video_outputs(inputs: list[Path], output: Path | None, overwrite: bool,
                        stats: Path | None, preview_sheet: Path | None, *,
                        reads: Sequence[Path] = (), work_root: Path | None = None) -> None:
    """The video command's output, stats file and preview sheet, before any work: none of them
    is a file the run reads (``inputs``, then config files in ``reads``), each can be written,
    and the work root (when known) is a usable folder."""
    writes = [(p, what) for p, what in ((output, "output"), (stats, "stats file"),
                                         (preview_sheet, "preview sheet")) if p is not None]
    check_writes(writes, [(p, "an input") for p in [*inputs, *reads]])
    if work_root is not None:
        check_work_root(work_root, [*inputs, *reads, *(p for p, _ in writes)])
    if output is not None:
        check_output_path(output, inputs, overwrite, VIDEO_EXTENSIONS)
    for extra, exts, what in ((stats, (".json",), "stats file"),
                              (preview_sheet, (".png", ".jpg"), "preview sheet")):
        if extra is not None:
            check_output_path(extra, inputs + ([output] if output else []), True, exts, what=what)


def check_image_outputs(inputs: list[Path], output: Path | None, overwrite: bool,
                        stats: Path | None, reads: Sequence[Path] = ()) -> None:
    """The image command's output and stats file (a log: replaced freely, but checked before
    hours of work); neither may be a file the run reads (``inputs``, then ``reads``)."""
    writes = [(p, what) for p, what in ((output, "output"), (stats, "stats file"))
              if p is not None]
    check_writes(writes, [(p, "an input") for p in [*inputs, *reads]])
    if output is not None:
        check_output_path(output, inputs, overwrite, WRITABLE_EXTENSIONS)
    if stats is not None:
        check_output_path(stats, inputs + ([output] if output else []), True, (".json",),
                          what="stats file")


def preflight_video(input: str | os.PathLike[str], style: str | os.PathLike[str],
                    output: str | os.PathLike[str], config: Config, *,
                    start: str | None = None, end: str | None = None, overwrite: bool = False,
                    stats: str | os.PathLike[str] | None = None,
                    preview_sheet: str | os.PathLike[str] | None = None,
                    config_file: str | os.PathLike[str] | None = None,
                    work_dir: str | os.PathLike[str] | None = None) -> None:
    """The video command's torch-free checks, in the pipeline's order: outputs and the work
    directory, range, the input's container and stream, the style image, the
    encoder and its settings."""
    in_path, style_path = Path(input), Path(style)
    check_video_outputs([in_path, style_path], Path(output), overwrite,
                        Path(stats) if stats is not None else None,
                        Path(preview_sheet) if preview_sheet is not None else None,
                        reads=[Path(config_file)] if config_file is not None else [],
                        work_root=Path(work_dir) if work_dir is not None else default_work_root())
    first, last = parse_bound(start, "start"), parse_bound(end, "end")
    limit = config.runtime.max_input_pixels
    probe(in_path, limit)
    check_range(first, last)
    check_image_file(style_path, "style image", max_pixels=limit,
                     long_side=config.strotss.max_size)
    check_encoder_settings(config.video.codec, config.video.crf, config.video.encoder_preset)


def preflight_image(content: str | os.PathLike[str], style: str | os.PathLike[str],
                    output: str | os.PathLike[str], *,
                    guide: tuple[str, str] | None = None, overwrite: bool = False,
                    stats: str | os.PathLike[str] | None = None,
                    config_file: str | os.PathLike[str] | None = None,
                    config: Config | None = None) -> None:
    """The image command's torch-free checks: outputs, then each image decodes, is within
    the pixel limit and large enough, and each mask matches its image's size."""
    inputs = [Path(p) for p in (content, style, *(guide or ()))]
    check_image_outputs(inputs, Path(output), overwrite, Path(stats) if stats else None,
                        reads=[Path(config_file)] if config_file is not None else [])
    limit = config.runtime.max_input_pixels if config is not None else MAX_INPUT_PIXELS
    # A guided style keeps its size: its mask must match it pixel for pixel.
    style_side = config.strotss.max_size if config is not None and not guide else None
    sizes = [check_image_file(p, what, max_pixels=limit,
                              long_side=style_side if what == "style image" else None)
             for p, what in zip(inputs, ("content image", "style image", "content mask",
                                         "style mask"))]
    for mask, image, what in ((2, 0, "content mask"), (3, 1, "style mask")):
        if len(sizes) > mask:
            check_mask_size(sizes[mask], sizes[image], what)
