"""The result of evaluating a stylised video: per-frame values, their summary, JSON and a table.

JSON (``Evaluation.to_dict``; NaN — a pair whose mask is empty — becomes null)::

    {"output", "input", "style" (or null),
     "size": [H, W], "frames": N, "pairs": N-1,
     "flow", "mask", "content_metric", "style_layers": [...],
     "summary": {"warping_error", "input_warping_error", "warping_ratio", "empty_pairs",
                 "content_distance", "style_distance" (null without a style)},
     "per_frame": {"output_frame", "input_frame", "time", "content_distance",
                   "style_distance" (null without a style)},        # N values each
     "per_pair": {"warping_error", "input_warping_error", "mask_coverage"}}   # N-1 values each

``output_frame``/``input_frame`` are source frame indices, ``time`` seconds after the output's
first frame; pair t is frames (t, t+1). Lower is better for every value; ``warping_ratio`` is
the output's warping error over the input's own (near 1: it flickers as little as its input).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..metrics import WarpingError
from .frames import FrameMatch


def _clean(value: float | None) -> float | None:
    """JSON-ready: NaN and None become None."""
    return value if value is not None and math.isfinite(value) else None


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return math.fsum(finite) / len(finite) if finite else math.nan


@dataclass(frozen=True)
class Evaluation:
    """Warping error (per pair), content and style distances (per frame) of one output."""

    output: Path
    input: Path
    style: Path | None
    size: tuple[int, int]
    matches: tuple[FrameMatch, ...]
    flow: str
    warping: WarpingError  # the output's, with the input's flows and masks
    input_warping: WarpingError  # the input's own
    content_distance: list[float]
    style_distance: list[float] | None
    content_metric: str = "lpips-vgg16-v0.1"
    style_layers: tuple[str, ...] = ()

    @property
    def warping_ratio(self) -> float:
        """Output over input mean warping error (NaN when the input's is 0 or undefined)."""
        a, b = self.warping.mean, self.input_warping.mean
        return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        """The means, JSON-ready."""
        return {
            "warping_error": _clean(self.warping.mean),
            "input_warping_error": _clean(self.input_warping.mean),
            "warping_ratio": _clean(self.warping_ratio),
            "empty_pairs": self.warping.empty_pairs,
            "content_distance": _clean(_mean(self.content_distance)),
            "style_distance": _clean(_mean(self.style_distance)) if self.style_distance else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole evaluation as one JSON-ready object (see the module docstring)."""
        return {
            "output": str(self.output), "input": str(self.input),
            "style": str(self.style) if self.style is not None else None,
            "size": list(self.size), "frames": len(self.matches), "pairs": self.warping.pairs,
            "flow": self.flow, "mask": self.warping.mask, "content_metric": self.content_metric,
            "style_layers": list(self.style_layers) if self.style_distance is not None else [],
            "summary": self.summary(),
            "per_frame": {
                "output_frame": [m.output_index for m in self.matches],
                "input_frame": [m.input_index for m in self.matches],
                "time": [float(m.time) for m in self.matches],
                "content_distance": [_clean(v) for v in self.content_distance],
                "style_distance": ([_clean(v) for v in self.style_distance]
                                   if self.style_distance is not None else None),
            },
            "per_pair": {
                "warping_error": [_clean(v) for v in self.warping.per_frame],
                "input_warping_error": [_clean(v) for v in self.input_warping.per_frame],
                "mask_coverage": list(self.warping.coverage),
            },
        }

    def table(self) -> str:
        """A short human-readable report: one row per measure, mean / min / max."""
        first, last = self.matches[0], self.matches[-1]
        h, w = self.size
        rows = [("warping error", self.warping.per_frame),
                ("warping error of the input", self.input_warping.per_frame),
                (f"content distance ({self.content_metric})", self.content_distance)]
        if self.style_distance is not None:
            rows.append(("style distance (Gram)", self.style_distance))
        width = max(len(label) for label, _ in rows) + 2
        lines = [f"{self.output.name} against {self.input.name} (input frames "
                 f"{first.input_index}-{last.input_index}): {len(self.matches)} frames at "
                 f"{w}x{h}, flow {self.flow}",
                 f"{'measure':<{width}}{'mean':>11}{'min':>11}{'max':>11}"]
        for label, values in rows:
            finite = [v for v in values if math.isfinite(v)] or [math.nan]
            lines.append(f"{label:<{width}}{_mean(values):>11.4g}{min(finite):>11.4g}"
                         f"{max(finite):>11.4g}")
        lines.append(f"{'warping error, output / input':<{width}}{self.warping_ratio:>11.4g}")
        return "\n".join(lines)
