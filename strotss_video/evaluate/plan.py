"""What an evaluation will compare, checked before torch is imported.

:func:`plan_evaluation` refuses a missing or unreadable video, style image or plot path, and
videos that share fewer than two frame times, in a fraction of a second; the numbers come later
(:func:`strotss_video.evaluate.run.run_evaluation`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import UsageError
from ..io.paths import check_output_path
from ..io.probe import probe
from ..pipeline.spec import check_image_file, check_image_size, parse_bound
from .frames import FrameMatch, match_frames


@dataclass(frozen=True)
class EvaluationPlan:
    """The two videos (and style image), their matched frames and the size they are read at."""

    output: Path
    input: Path
    style: Path | None
    matches: tuple[FrameMatch, ...]
    output_size: tuple[int, int]  # (H, W) of the output video as displayed
    max_size: int | None = None  # long side to evaluate at, if below the output's

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) both videos are decoded at: the output's, shrunk to ``max_size`` if given."""
        h, w = self.output_size
        if self.max_size is None or max(h, w) <= self.max_size:
            return h, w
        # tensorops.scaled_size's arithmetic, here without importing torch
        if h >= w:
            return self.max_size, max(1, round(w * self.max_size / h))
        return max(1, round(h * self.max_size / w)), self.max_size


def _check_plot(plot: Path, inputs: list[Path]) -> None:
    """A writable ``.png`` path, and matplotlib (a development extra) importable."""
    check_output_path(plot, inputs, True, (".png",), what="plot")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib, which is not installed: "
                         "pip install matplotlib") from None


def plan_evaluation(output: str | os.PathLike[str], input: str | os.PathLike[str], *,
                    style: str | os.PathLike[str] | None = None,
                    start: str | int | Fraction | None = None,
                    end: str | int | Fraction | None = None,
                    frames: int | None = None, max_size: int | None = None,
                    plot: str | os.PathLike[str] | None = None) -> EvaluationPlan:
    """Check the files and match the output's frames with the input's ``[start, end)``.

    ``start``/``end`` are the range the output was made from (frame index, seconds or
    timecode, as for the video command); ``frames`` keeps the first N matched frames;
    ``max_size`` evaluates at a smaller long side. ``plot`` is only checked here."""
    out_path, in_path = Path(output), Path(input)
    style_path = Path(style) if style is not None else None
    if plot is not None:
        _check_plot(Path(plot), [out_path, in_path] + ([style_path] if style_path else []))
    if frames is not None and frames < 2:
        raise UsageError(f"--frames must be at least 2 (the warping error needs a pair), got {frames}")
    first, last = parse_bound(start, "start"), parse_bound(end, "end")
    info = probe(out_path)
    probe(in_path)
    if style_path is not None:
        check_image_file(style_path, "style image")
    matches = match_frames(out_path, in_path, first, last, frames)
    plan = EvaluationPlan(out_path, in_path, style_path, tuple(matches),
                          (info.height, info.width), max_size)
    check_image_size(*plan.size, f"{out_path.name} at the evaluated size")
    return plan
