"""Per-frame curves of an evaluation as a PNG (matplotlib, a development extra).

Top: the warping error of each pair (t, t+1), output and input. Below: the content distance
and, with a style image, the style distance of each frame. The x axis is seconds after the
output's first frame (a pair sits at its second frame's time)."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

from ..errors import UsageError
from ..files import atomic_write_bytes
from .report import Evaluation


def _nan(values: list[float]) -> list[float]:
    """Finite values as they are, anything else as NaN (a gap in the curve)."""
    return [v if math.isfinite(v) else math.nan for v in values]


def write_plot(path: str | os.PathLike[str], result: Evaluation) -> None:
    """Draw ``result`` into ``path`` (.png), written atomically."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed, and never a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib, which is not installed: "
                         "pip install matplotlib") from None

    times = [float(m.time) for m in result.matches]
    panels = 3 if result.style_distance is not None else 2
    fig, axes = plt.subplots(panels, 1, figsize=(8, 2.4 * panels), sharex=True,
                             constrained_layout=True)
    warp = axes[0]
    warp.plot(times[1:], _nan(result.warping.per_frame), marker=".",
              label=f"output (mean {result.warping.mean:.3g})")
    warp.plot(times[1:], _nan(result.input_warping.per_frame), marker=".", ls="--", color="0.4",
              label=f"input (mean {result.input_warping.mean:.3g})")
    warp.set(ylabel="warping error", title=f"{result.output.name} against {result.input.name}, "
                                           f"flow {result.flow}")
    series = [("content distance", result.content_distance, result.content_metric)]
    if result.style_distance is not None and result.style is not None:
        series.append(("style distance", result.style_distance, f"Gram, {result.style.name}"))
    for axis, (label, values, what) in zip(axes[1:], series):
        axis.plot(times, _nan(values), marker=".", label=what)
        axis.set(ylabel=label)
    for axis in axes:
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    axes[-1].set(xlabel="seconds after the output's first frame")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())
