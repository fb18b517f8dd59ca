"""Stylise a video: streamed decode, cold first frame, flow-warped warm starts, streamed encode.

Only a few frames are ever held: the previous input and output (plus ``long_term`` older ones),
so memory does not grow with the clip's length."""

from __future__ import annotations

import json
import os
import resource
import time
from collections import deque
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import Config, apply_overrides, build_config, flag_overrides
from ..errors import InputError
from ..features.vgg import FeatureExtractor
from ..flow import make_flow
from ..flow.base import FlowEstimator
from ..flow.consistency import reliability
from ..files import atomic_write_bytes
from ..io.image import write_contact_sheet
from ..io.video import (Frame, VideoInfo, VideoWriter, check_encoder, parse_time, probe,
                        read_frames)
from ..stylize.optimize import (MIN_SCALE_SIDE, EarlyStop, StyleBank, check_scale_sizes,
                                default_plan, final_scale_plan, stylize)
from ..tensorops import resize, scaled_size
from ..temporal.coherence import TemporalTerm, long_term_weights, warm_start
from .image import ImageLike, _load
from .runtime import check_output_path, extractor_for, resolve_device

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov")
SHEET_FRAMES = 6


@dataclass
class FrameRecord:
    """One line of the ``--stats`` frame list."""

    index: int
    pts: int
    kind: str
    iterations: int
    seconds: float
    vgg_seconds: float
    flow_seconds: float
    losses: dict[str, float]
    reliable: float | None


@dataclass
class VideoResult:
    output: Path | None
    frames: list[FrameRecord] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def processing_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """(H, W) with long side ``max_size`` (rounded down to even), both even for yuv420p."""
    h, w = scaled_size(height, width, max_size - max_size % 2)
    return max(2, h - h % 2), max(2, w - w % 2)


def to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 RGB (H,W,3) -> float32 (1,3,H,W) in [0,1] on ``device``."""
    return torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) in [0,1] -> uint8 RGB (H,W,3) on the CPU."""
    return image[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _range_value(value: str | int | Fraction | None, what: str) -> int | Fraction | None:
    if value is None or isinstance(value, (int, Fraction)):
        if isinstance(value, int) and value < 0:
            raise InputError(f"--{what} must not be negative (got {value})")
        return value
    return parse_time(value)


def _expected_frames(info: VideoInfo, start: int | Fraction | None,
                     end: int | Fraction | None) -> int | None:
    """Best guess of the selected frame count, for the progress bar and the preview sheet."""
    total = info.frames
    if total is None and info.duration is not None and info.average_rate:
        total = int(info.duration * info.average_rate)

    def as_index(v: int | Fraction | None, default: int | None) -> int | None:
        if v is None:
            return default
        if isinstance(v, int):
            return v
        return int(v * info.average_rate) if info.average_rate else None

    first = as_index(start, 0)
    last = as_index(end, total)
    if first is None or last is None:
        return None
    if total is not None:
        last = min(last, total)
    return max(last - first, 0)


class _Chain:
    """The temporal chain's memory: the last few input/output frames of the current shot."""

    def __init__(self, depth: int) -> None:
        self.inputs: deque[torch.Tensor] = deque(maxlen=depth)
        self.outputs: deque[torch.Tensor] = deque(maxlen=depth)

    def push(self, content: torch.Tensor, output: torch.Tensor) -> None:
        self.inputs.appendleft(content)
        self.outputs.appendleft(output)

    def past(self, distance: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(input, output) ``distance`` frames back (1 = previous), if held."""
        if distance > len(self.inputs):
            return None
        return self.inputs[distance - 1], self.outputs[distance - 1]

    def __bool__(self) -> bool:
        return bool(self.inputs)


class VideoStylizer:
    """Per-frame logic of the temporal chain, independent of decoding and encoding."""

    def __init__(self, config: Config, bank: StyleBank, extractor: FeatureExtractor,
                 flow: FlowEstimator | None) -> None:
        self.config = config
        self.bank = bank
        self.extractor = extractor
        self.flow = flow
        self.temporal = config.temporal
        self.chain = _Chain(max((1, *config.temporal.long_term)))

    def reset(self) -> None:
        """Start a new chain (a new shot): the next frame is cold."""
        self.chain = _Chain(self.chain.inputs.maxlen or 1)

    def frame(self, content: torch.Tensor, index: int) -> tuple[torch.Tensor, FrameRecord]:
        """Stylise one frame (1,3,h,w); returns the output and its record (pts filled later)."""
        start = time.perf_counter()
        seed = self.config.runtime.seed * 1_000_003 + index
        cfg = self.config.strotss
        flow_seconds = 0.0
        reliable: float | None = None
        if not self.temporal.enabled or not self.chain:
            kind = "cold"
            result = stylize(content, self.bank, self.extractor, cfg, seed=seed, progress=False)
        else:
            kind = "warm"
            t0 = time.perf_counter()
            warped, masks, init = [], [], None
            for distance in sorted({1, *self.temporal.long_term}):
                past = self.chain.past(distance)
                if past is None:
                    continue
                past_input, past_output = past
                forward = self.flow(past_input, content)  # type: ignore[misc]
                backward = self.flow(content, past_input)  # type: ignore[misc]
                smoothing = None if self.temporal.mask_smoothing == "none" else \
                    self.temporal.mask_smoothing
                mask = reliability(backward, forward, smooth=smoothing)
                start_image, warped_output = warm_start(past_output, backward, mask, content,
                                                        self.temporal.fill, self.bank.mean_color)
                if init is None:
                    init, reliable = start_image, float(mask.mean())
                warped.append(warped_output)
                masks.append(mask)
            flow_seconds = time.perf_counter() - t0
            term = TemporalTerm(tuple(warped), tuple(long_term_weights(masks)), self.temporal.weight)
            early = EarlyStop(self.temporal.early_stop_tol, self.temporal.early_stop_window) \
                if self.temporal.early_stop_tol > 0 else None
            result = stylize(content, self.bank, self.extractor, cfg,
                             plan=final_scale_plan(cfg, self.temporal.warm_iters,
                                                   self.temporal.warm_lr), init=init,
                             seed=seed, progress=False, pixel_loss=term, early_stop=early)
        output = result.image
        self.chain.push(content, output)
        record = FrameRecord(index=index, pts=0, kind=kind, iterations=result.iterations,
                             seconds=time.perf_counter() - start, vgg_seconds=result.vgg_seconds,
                             flow_seconds=flow_seconds, losses=result.scales[-1].losses,
                             reliable=reliable)
        return output, record


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def stylize_video(input: str | os.PathLike[str], style: ImageLike,
                  output: str | os.PathLike[str] | None, *, config: Config | None = None,
                  preset: str | None = None, config_file: str | os.PathLike[str] | None = None,
                  start: str | int | Fraction | None = None, end: str | int | Fraction | None = None,
                  overwrite: bool = False, progress: bool = True,
                  stats: str | os.PathLike[str] | None = None,
                  preview_sheet: str | os.PathLike[str] | None = None,
                  extractor: FeatureExtractor | None = None, flow: FlowEstimator | None = None,
                  **settings: Any) -> VideoResult:
    """Stylise ``input`` (any video PyAV decodes) in the style of ``style``.

    Settings are the CLI's long options with underscores (``max_size=192, warm_iters=30,
    temporal=False, crf=20, audio=False, ...``). ``start``/``end`` select a range (frame index,
    seconds as Fraction, or the CLI's text forms; end exclusive). The output is encoded to a
    temporary file beside ``output`` and renamed into place when complete."""
    t_start = time.perf_counter()
    if config is None:
        config = build_config(preset, config_file, flag_overrides(settings))
    elif settings:
        config = apply_overrides(config, flag_overrides(settings), "keyword arguments")
    in_path = Path(input)
    out_path = Path(output) if output is not None else None
    inputs = [in_path] + ([Path(style)] if not isinstance(style, torch.Tensor) else [])
    if out_path is not None:
        check_output_path(out_path, inputs, overwrite, VIDEO_EXTENSIONS)
    for extra, exts, what in ((stats, (".json",), "stats file"),
                              (preview_sheet, (".png", ".jpg"), "preview sheet")):
        if extra is not None:
            check_output_path(Path(extra), inputs + ([out_path] if out_path else []), True, exts,
                              what=what)
    first = _range_value(start, "start")
    last = _range_value(end, "end")
    info = probe(in_path)
    lower = first if first is not None else type(last)(0) if last is not None else None
    if last is not None and type(lower) is type(last) and last <= lower:
        raise InputError(f"--end ({end}) must be after --start ({start or 0}); nothing to stylise")
    style_t = _load(style, "style image")
    if out_path is not None:
        check_encoder(config.video.codec)
    ph, pw = processing_size(info.height, info.width, config.strotss.max_size)
    # Opening the reader validates the range (e.g. a start past the end) before any work.
    frames: Iterator[Frame] = read_frames(in_path, first, last, size=(ph, pw))

    config = replace(config, strotss=replace(config.strotss, max_size=max(ph, pw)))
    check_scale_sizes(ph, pw, default_plan(config.strotss),
                      max(extractor.strides) if extractor is not None else MIN_SCALE_SIDE)
    device = resolve_device(config.runtime.device)
    extractor, weights_source = extractor_for(config.runtime, device, extractor, progress)
    if flow is None and config.temporal.enabled:
        flow = make_flow(config.temporal.flow, preset=config.temporal.dis_preset, device=str(device),
                         raft_weights=config.temporal.raft_weights)
    bank = StyleBank(extractor, style_t.to(device), config.strotss, seed=config.runtime.seed)
    stylizer = VideoStylizer(config, bank, extractor, flow)

    if config.video.output_size == "source":
        oh, ow = info.height - info.height % 2, info.width - info.width % 2
    else:
        oh, ow = ph, pw
    expected = _expected_frames(info, first, last)
    sheet_at = set(np.linspace(0, expected - 1, SHEET_FRAMES).round().astype(int).tolist()) \
        if preview_sheet is not None and expected else set()
    sheet: list[tuple[np.ndarray, np.ndarray]] = []
    records: list[FrameRecord] = []
    writer: VideoWriter | None = None
    bar: tqdm | None = None  # opened with the first frame, so early errors stay one line
    try:
        for n, frame in enumerate(frames):
            if writer is None and out_path is not None:
                # A range starts at time 0 in the output; its audio is cut to match.
                offset = frame.pts if first is not None else 0
                window = (frame.time, None) if first is not None or last is not None else None
                writer = VideoWriter(out_path, width=ow, height=oh, time_base=info.time_base,
                                     average_rate=info.average_rate, codec=config.video.codec,
                                     crf=config.video.crf, preset=config.video.encoder_preset,
                                     audio_source=in_path if config.video.audio and
                                     info.audio_streams else None,
                                     audio_window=window, pts_offset=offset)
                writer.__enter__()
            if bar is None:
                bar = tqdm(total=expected, disable=not progress, unit="frame", desc="stylising")
            content = to_tensor(frame.image, device)
            output, record = stylizer.frame(content, frame.index)
            record = replace(record, pts=frame.pts)
            records.append(record)
            out_image = to_uint8(resize(output, (oh, ow)) if (oh, ow) != (ph, pw) else output)
            if writer is not None:
                writer.write(out_image, frame.pts, frame.duration)
            if n in sheet_at:
                sheet.append((frame.image, to_uint8(output)))
            bar.set_postfix(kind=record.kind, loss=f"{record.losses.get('total', 0):.3f}",
                            refresh=False)
            bar.update(1)
        if not records:
            raise InputError(f"no frames selected from {in_path} (range {start}..{end}); check "
                             "--start/--end against the clip's length")
        if writer is not None:
            writer.close()  # encodes to a temporary file, renamed into place when complete
            writer = None
    except BaseException as exc:
        if writer is not None:
            writer.__exit__(type(exc), exc, exc.__traceback__)
        raise
    finally:
        if bar is not None:
            bar.close()

    cold = [r.seconds for r in records if r.kind == "cold"]
    warm = [r.seconds for r in records if r.kind == "warm"]
    summary = {
        "frames": len(records),
        "seconds": time.perf_counter() - t_start,
        "cold_frames": len(cold), "warm_frames": len(warm),
        "mean_cold_seconds": float(np.mean(cold)) if cold else None,
        "mean_warm_seconds": float(np.mean(warm)) if warm else None,
        "peak_rss_mib": _peak_rss_mib(),
        "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda" else None,
        "processing_size": [pw, ph], "output_size": [ow, oh],
        "weights_source": weights_source, "device": str(device),
    }
    record_dict = {"summary": summary, "frames": [vars(r) for r in records],
                   "config": config.to_dict()}
    if stats is not None:
        atomic_write_bytes(Path(stats), json.dumps(record_dict, indent=2).encode())
    if preview_sheet is not None and sheet:
        write_contact_sheet(Path(preview_sheet), sheet)
    return VideoResult(output=out_path, frames=records, stats=record_dict)
