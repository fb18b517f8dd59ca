#!/usr/bin/env python
"""Temporal stability of stylised videos: Lai et al.'s warping error, printed as JSON.

    python scripts/evaluate.py INPUT.mp4 OUT_A.mp4 [OUT_B.mp4 ...] [--names on off]
        [--start N --end M] [--flow farneback|dis] [--mask full|occlusion] [--plot FILE.png]

The input is decoded at the outputs' size (outputs must share one size) over ``[start, end)``
(frame indices, or seconds like ``4.5s``; they apply to the input only — outputs are read from
their frame 0, as the stylisation wrote them). Flows and masks are computed once, on the input,
with ``--flow`` (default Farneback: a different method from the stylisation's DIS) and reused
for every output. Output (stdout)::

    {"flow": "farneback", "mask": "occluded+out_of_frame+motion_boundary", "mask_note": ...,
     "size": [H, W], "frames": T, "pairs": T-1, "mask_coverage": {"mean", "per_frame"},
     "input": {"path", "start", "end", "mean", "per_frame", "empty_pairs"},
     "outputs": {name: {"path", "mean", "per_frame", "empty_pairs", "ratio_to_input"}},
     "ratios": {"A/B": mean_A / mean_B, ...}}        # "ratios" only with 2+ outputs

Lower is more stable; ``ratio_to_input`` near 1 means the output flickers about as little as the
input itself. ``--plot`` writes a PNG: per-frame warping error of every output and the input
(left) and each output's per-frame ratio to the input (right); matplotlib if installed, else
drawn with OpenCV. Exit code 2 on bad arguments or unreadable/mismatched videos."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strotss_video.errors import StrotssError, UsageError  # noqa: E402
from strotss_video.io.probe import probe  # noqa: E402
from strotss_video.io.timecode import parse_time  # noqa: E402
from strotss_video.metrics import WarpingError, video_frames, warping_errors  # noqa: E402

FLOWS = ("farneback", "dis")
MASK_NOTE = ("M_t = 1 - unreliable, binary and unsmoothed, from the forward-backward checker on "
             "the input's flows t->t+1 and t+1->t (Ruder/Lai constants); unreliable = {tests}; "
             "E = sum M*(V_t - W(V_t+1))^2 / (3 * sum M), channels in the denominator")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", type=Path, help="the input (content) video")
    p.add_argument("outputs", type=Path, nargs="+", help="stylised videos made from it")
    p.add_argument("--names", nargs="+", help="one name per output (default: file stems)")
    p.add_argument("--start", help="first input frame (index, or seconds like 4.5s)")
    p.add_argument("--end", help="input frame to stop before (index, or seconds)")
    p.add_argument("--flow", choices=FLOWS, default="farneback",
                   help="evaluation flow (default farneback; the stylisation uses DIS)")
    p.add_argument("--mask", choices=("full", "occlusion"), default="full",
                   help="full: occlusion + out of frame + motion boundaries (the checker as "
                        "specified, default); occlusion: occlusion + out of frame")
    p.add_argument("--plot", type=Path, help="write per-frame curves to this PNG")
    p.add_argument("--plot-backend", choices=("auto", "matplotlib", "cv2"), default="auto",
                   help=argparse.SUPPRESS)
    return p.parse_args(argv)


def output_names(args: argparse.Namespace) -> list[str]:
    names = args.names if args.names is not None else [p.stem for p in args.outputs]
    if len(names) != len(args.outputs):
        raise UsageError(f"--names gives {len(names)} names for {len(args.outputs)} outputs")
    if len(set(names)) != len(names):
        if args.names is not None:
            raise UsageError(f"--names must be distinct, got {names}")
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    if "input" in names:
        raise UsageError("'input' is reserved for the input video; pick another output name")
    return names


def output_size(outputs: list[Path]) -> tuple[int, int]:
    sizes = {path: (info.height, info.width) for path, info in ((p, probe(p)) for p in outputs)}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{p.name} {h}x{w}" for p, (h, w) in sizes.items())
        raise UsageError(f"outputs differ in size ({listed} as HxW); evaluate them separately")
    return next(iter(sizes.values()))


def _ratio(a: float, b: float) -> float | None:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else None


def report(args: argparse.Namespace, names: list[str], size: tuple[int, int],
           results: dict[str, WarpingError]) -> dict[str, Any]:
    inp = results["input"]
    out: dict[str, Any] = {
        "flow": args.flow,
        "mask": inp.mask,
        "mask_note": MASK_NOTE.format(tests=inp.mask.replace("+", " | ")),
        "size": list(size),
        "frames": inp.frames,
        "pairs": inp.pairs,
        "mask_coverage": {"mean": sum(inp.coverage) / len(inp.coverage),
                          "per_frame": inp.coverage},
        "input": {"path": str(args.input), "start": args.start, "end": args.end,
                  **inp.to_dict()},
        "outputs": {},
    }
    for name, path in zip(names, args.outputs):
        res = results[name]
        out["outputs"][name] = {"path": str(path), **res.to_dict(),
                                "ratio_to_input": _ratio(res.mean, inp.mean)}
    if len(names) >= 2:
        out["ratios"] = {f"{a}/{b}": _ratio(results[a].mean, results[b].mean)
                         for i, a in enumerate(names) for b in names[i + 1:]}
    return out


# --------------------------------------------------------------------------- plotting

_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]


def _series(results: dict[str, WarpingError], names: list[str]) -> tuple[dict, dict]:
    inp = np.asarray(results["input"].per_frame, dtype=np.float64)
    curves = {n: np.asarray(results[n].per_frame, dtype=np.float64) for n in names}
    curves["input"] = inp
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = {n: np.where(inp > 0, curves[n] / inp, np.nan) for n in names}
    return curves, ratios


def plot_matplotlib(path: Path, results: dict[str, WarpingError], names: list[str],
                    title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves, ratios = _series(results, names)
    x = np.arange(len(curves["input"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    for i, n in enumerate(names):
        left.plot(x, curves[n], color=_COLOURS[i % len(_COLOURS)],
                  label=f"{n} (mean {results[n].mean:.3g})")
        right.plot(x, ratios[n], color=_COLOURS[i % len(_COLOURS)], label=n)
    left.plot(x, curves["input"], color="0.4", ls="--",
              label=f"input (mean {results['input'].mean:.3g})")
    left.set(xlabel="frame pair t -> t+1", ylabel="warping error", title="per-frame warping error")
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    right.axhline(1.0, color="0.4", ls="--", lw=1)
    right.set(xlabel="frame pair t -> t+1", ylabel="output / input",
              title="per-frame ratio to the input")
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cv2_panel(series: dict[str, tuple[np.ndarray, tuple[int, int, int], bool]], title: str,
               ylabel: str, w: int, h: int, hline: float | None = None) -> np.ndarray:
    """One line chart as a BGR uint8 image; series = {label: (y, bgr, dashed)}."""
    import cv2

    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 70, 15, 30, 40
    pw, ph = w - left - right, h - top - bottom
    n = max(len(y) for y, _, _ in series.values())
    finite = np.concatenate([y[np.isfinite(y)] for y, _, _ in series.values()] + [np.zeros(1)])
    ymax = float(finite.max()) if finite.size else 1.0
    if hline is not None:
        ymax = max(ymax, hline)
    ymax = ymax * 1.08 if ymax > 0 else 1.0
    font = cv2.FONT_HERSHEY_SIMPLEX

    def px(i: float, v: float) -> tuple[int, int]:
        x = left + (pw * i / max(n - 1, 1))
        return int(round(x)), int(round(top + ph * (1 - v / ymax)))

    cv2.rectangle(img, (left, top), (left + pw, top + ph), (0, 0, 0), 1)
    for k in range(5):  # y ticks
        v = ymax * k / 4
        _, y = px(0, v)
        cv2.line(img, (left - 4, y), (left + pw, y), (225, 225, 225) if k else (0, 0, 0), 1)
        cv2.putText(img, f"{v:.2g}", (4, y + 4), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    for k in range(min(n, 6)):  # x ticks
        i = round((n - 1) * k / max(min(n, 6) - 1, 1))
        x, _ = px(i, 0)
        cv2.putText(img, str(i), (x - 5, top + ph + 15), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title, (left, 20), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"frame pair t -> t+1   (y: {ylabel})", (left, h - 8), font, 0.4,
                (60, 60, 60), 1, cv2.LINE_AA)
    if hline is not None:
        _, y = px(0, hline)
        cv2.line(img, (left, y), (left + pw, y), (120, 120, 120), 1)
    for j, (label, (ys, colour, dashed)) in enumerate(series.items()):
        pts = [px(i, float(v)) for i, v in enumerate(ys) if math.isfinite(v)]
        if dashed:  # 6 px on, 5 px off along the polyline
            walked = 0.0
            for a, b in zip(pts, pts[1:]):
                length = math.hypot(b[0] - a[0], b[1] - a[1])
                for k in range(max(1, int(length))):
                    if (walked + k) % 11 < 6:
                        p0 = (a[0] + (b[0] - a[0]) * k / max(length, 1),
                              a[1] + (b[1] - a[1]) * k / max(length, 1))
                        p1 = (a[0] + (b[0] - a[0]) * (k + 1) / max(length, 1),
                              a[1] + (b[1] - a[1]) * (k + 1) / max(length, 1))
                        cv2.line(img, (round(p0[0]), round(p0[1])), (round(p1[0]), round(p1[1])),
                                 colour, 2, cv2.LINE_AA)
                walked += length
        else:
            for a, b in zip(pts, pts[1:]):
                cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        if len(pts) == 1:
            cv2.circle(img, pts[0], 3, colour, -1)
        ly = top + 14 + 16 * j
        cv2.line(img, (left + pw - 150, ly - 4), (left + pw - 130, ly - 4), colour, 2)
        cv2.putText(img, label[:24], (left + pw - 125, ly), font, 0.4, colour, 1, cv2.LINE_AA)
    return img


def plot_cv2(path: Path, results: dict[str, WarpingError], names: list[str], title: str) -> None:
    import cv2

    curves, ratios = _series(results, names)

    def bgr(hexcolour: str) -> tuple[int, int, int]:
        r, g, b = (int(hexcolour[k:k + 2], 16) for k in (1, 3, 5))
        return (b, g, r)

    colours = {n: bgr(_COLOURS[i % len(_COLOURS)]) for i, n in enumerate(names)}
    err = {f"{n} ({results[n].mean:.3g})": (curves[n], colours[n], False) for n in names}
    err[f"input ({results['input'].mean:.3g})"] = (curves["input"], (110, 110, 110), True)
    rat = {n: (ratios[n], colours[n], False) for n in names}
    w, h = 640, 420
    a = _cv2_panel(err, "per-frame warping error", "warping error", w, h)
    b = _cv2_panel(rat, "per-frame ratio to the input", "output / input", w, h, hline=1.0)
    head = np.full((24, 2 * w, 3), 255, np.uint8)
    cv2.putText(head, title[:150], (8, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                cv2.LINE_AA)
    sheet = np.vstack([head, np.hstack([a, b])])
    ok, data = cv2.imencode(".png", sheet)
    if not ok:
        raise StrotssError(f"could not encode the plot for {path}")
    path.write_bytes(data.tobytes())


def write_plot(path: Path, backend: str, results: dict[str, WarpingError], names: list[str],
               title: str) -> str:
    if not path.parent.is_dir():
        raise UsageError(f"plot directory {path.parent} does not exist")
    if backend in ("auto", "matplotlib"):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            if backend == "matplotlib":
                raise UsageError("matplotlib is not installed; use the cv2 plot") from None
        else:
            plot_matplotlib(path, results, names, title)
            return "matplotlib"
    plot_cv2(path, results, names, title)
    return "cv2"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        names = output_names(args)
        start = parse_time(args.start) if args.start is not None else None
        end = parse_time(args.end) if args.end is not None else None
        probe(args.input)
        size = output_size(args.outputs)
        outputs = {n: video_frames(p) for n, p in zip(names, args.outputs)}
        try:
            results = warping_errors(video_frames(args.input, start, end, size=size), outputs,
                                     flow=args.flow,
                                     motion_boundaries=args.mask == "full")
        except ValueError as exc:
            raise UsageError(f"{exc} (input range: --start {args.start}, --end {args.end})") \
                from None
        out = report(args, names, size, results)
        if args.plot is not None:
            title = (f"{args.input.name}: warping error, flow {args.flow}, mask "
                     f"{out['mask']}, {out['frames']} frames at {size[1]}x{size[0]}")
            out["plot"] = {"path": str(args.plot),
                           "backend": write_plot(args.plot, args.plot_backend, results, names,
                                                 title)}
    except StrotssError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
