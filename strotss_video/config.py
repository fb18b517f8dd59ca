"""The one source of configuration: frozen dataclasses with defaults and validation.

YAML presets (``strotss_video/presets/NAME.yaml``), a ``--config FILE.yaml`` and CLI flags only override
these defaults, in the order default < preset < config file < flag.  Every count in the STROTSS
reference (points, iterations, scales, pyramid levels) is a field whose default is the
reference value, so tests and previews shrink them here, never in the code.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError, quote

PRESET_DIR = Path(__file__).resolve().parent / "presets"
"""The named presets, shipped as package data (so a wheel has them too)."""

MAX_INPUT_PIXELS = 400_000_000
"""Default ceiling on an input's pixel count (images and video frames), read from its header
before anything is decoded: a small file can declare a huge image."""


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be positive (got {quote(value)}); pass a value > 0")


def _non_negative(name: str, value: float) -> None:
    if not value >= 0:
        raise ConfigError(f"{name} must be >= 0 (got {quote(value)})")


def _check_finite(section: str, obj: Any) -> None:
    """Every number of a config section is finite: an infinite weight or rate turns every frame
    black, an infinite count never ends."""
    for f in fields(obj):
        values = getattr(obj, f.name)
        for value in values if isinstance(values, tuple) else (values,):
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{section}.{f.name} must be a finite number (got {value})")


@dataclass(frozen=True)
class StrotssConfig:
    """The STROTSS optimisation of one image. Defaults are the authors' reference values."""

    max_size: int = 512
    """Long side of the output at the final scale, in pixels."""
    scales: int = 4
    """Number of coarse-to-fine scales; long sides are max_size / 2**(scales-1-k). The coarsest
    ones are dropped (with a note) where a frame's short side would be below 16 px."""
    iters: int = 250
    """Optimiser steps per scale."""
    content_weight: float = 1.0
    """User content weight; alpha = alpha_base * content_weight, halved after each scale."""
    alpha_base: float = 16.0
    output_points: int = 1024
    """Output/content hypercolumns sampled per step."""
    style_points: int = 5000
    """Style hypercolumns per scale (fixed for the scale)."""
    grid_side: int = 128
    """Candidate grid stride is floor(sqrt(H*W // grid_side**2)), so at most ~grid_side**2 points."""
    pyramid_levels: int = 5
    """Laplacian band-pass levels of the optimised image (plus one low-pass residual)."""
    lr: float = 2e-3
    final_lr: float = 1e-3
    """RMSprop learning rate at the final scale."""
    rmsprop_alpha: float = 0.99
    rmsprop_eps: float = 1e-8
    min_region_pixels: int = 10000
    """A guidance colour is a region when it covers more than this many style pixels."""

    def __post_init__(self) -> None:
        _check_finite("strotss", self)
        for name in ("max_size", "scales", "iters", "output_points", "style_points", "grid_side",
                     "pyramid_levels", "lr", "final_lr", "alpha_base", "rmsprop_eps"):
            _positive(f"strotss.{name}", getattr(self, name))
        _non_negative("strotss.content_weight", self.content_weight)
        _non_negative("strotss.min_region_pixels", self.min_region_pixels)
        if not 0 < self.rmsprop_alpha < 1:
            raise ConfigError(f"strotss.rmsprop_alpha must be in (0, 1) (got {self.rmsprop_alpha})")
        # Scales too small for a frame are dropped once its size is known; below 16 px none fits.
        if self.max_size < 16:
            raise ConfigError(f"strotss.max_size {self.max_size} is below 16 px, the least VGG "
                              "needs; use a larger max size")

    def scale_sizes(self) -> list[int]:
        """Long side of each scale, coarse to fine."""
        return [self.max_size >> (self.scales - 1 - k) for k in range(self.scales)]


CudaGraphs = Literal["on", "off"]
CudnnBenchmark = Literal["on", "off", "final"]


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how to run; nothing here changes the maths."""

    device: str = "auto"
    """auto | cpu | cuda | cuda:N"""
    seed: int = 0
    vgg_weights: str | None = None
    """Explicit VGG16 state-dict file; else the resolver's sources in order."""
    precision: str = "auto"
    """float32; mixed: VGG16 in bfloat16 (maps returned as float32) and, on CUDA, TF32
    matrix products, while distances, REMD and covariances are float32 tensors; fast: mixed,
    and on CPUs with native bfloat16 the float32 matrix products (cost matrix, covariances,
    self-similarities) computed from bfloat16-rounded inputs with float32 accumulation, as TF32
    does on CUDA with more mantissa bits (an AMX Xeon: warm steps ~1.4x faster than mixed;
    README: Mixed precision); elsewhere fast is what auto picks; auto: mixed on CUDA and on
    CPUs with native bfloat16 (AMX or AVX512-BF16), float32 elsewhere."""
    cuda_graphs: CudaGraphs = "on"
    """on: on CUDA, replay each scale's optimisation step as one CUDA graph after three eager
    steps (same arithmetic, no launch overhead; measured on an H100 at 512 px: warm frames
    0.65 -> 0.25 s, GPU memory flat from frame to frame; README: GPU); a failed capture warns
    once and the run goes on with eager steps. Ignored on CPU and with region guidance."""
    cudnn_benchmark: CudnnBenchmark = "off"
    """On CUDA, whether cuDNN times its convolution algorithms once per shape (the timing is
    part of a process's first cold frame): off: none, cuDNN's heuristics; on: every shape;
    final: only the last scale's shapes, the ones warm frames reuse. Off by default: measured
    on an H100 at 512 px, the first cold frame of a process takes 4.75 s with off, 12.0-13.6 s
    with on and 5.33 s with final, and warm frames the same 0.24-0.28 s (README: GPU). YAML's
    true/false mean on/off."""
    allocator: str = "system"
    """How the C allocator treats the large temporaries every step frees (Linux with glibc;
    ignored elsewhere): system: glibc's defaults; tuned: blocks up to 32 MiB come from the heap
    and up to 1 GiB of freed memory is kept for reuse instead of being handed back to the kernel
    and faulted in again. Measured on a 2-core CPU: cold frames 1-8% faster, warm steps within
    +-2%, peak RSS 5% higher (docs/tuning.md), so not the default. The
    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ variables, when set, win."""
    threads: int = 0
    """CPU threads per task; 0 = this machine's cores shared among the workers. PyTorch's CPU
    reductions sum in an order that depends on the thread count, so bit-identical frames across
    runs need the same value here."""
    max_input_pixels: int = MAX_INPUT_PIXELS
    """Largest input (image or video frame) accepted, in pixels (width x height), checked from
    the file's header before decoding."""

    def __post_init__(self) -> None:
        _check_finite("runtime", self)
        _non_negative("runtime.threads", self.threads)
        _positive("runtime.max_input_pixels", self.max_input_pixels)
        if self.cuda_graphs not in ("on", "off"):
            raise ConfigError(f"runtime.cuda_graphs must be on or off "
                              f"(got {quote(self.cuda_graphs)})")
        if self.cudnn_benchmark not in CUDNN_BENCHMARK:
            raise ConfigError(f"runtime.cudnn_benchmark must be on, off or final "
                              f"(got {quote(self.cudnn_benchmark)})")
        if self.allocator not in ALLOCATORS:
            raise ConfigError(f"runtime.allocator must be tuned or system "
                              f"(got {quote(self.allocator)})")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"runtime.precision must be auto, float32, mixed or fast "
                              f"(got {quote(self.precision)})")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"runtime.device must be auto, cpu or cuda (got {quote(self.device)})")
        _non_negative("runtime.seed", self.seed)


CUDNN_BENCHMARK = ("on", "off", "final")
ALLOCATORS = ("tuned", "system")
PRECISIONS = ("auto", "float32", "mixed", "fast")
FLOW_METHODS = ("dis", "raft")
DIS_PRESETS = ("ultrafast", "fast", "medium")
FILL_MODES = ("blur", "texture", "content", "mean", "warped", "checked")
MASK_SMOOTHING = ("gaussian", "erode", "none")


@dataclass(frozen=True)
class TemporalConfig:
    """Frame-to-frame coherence: warm starts from the warped previous output plus a masked
    temporal term (Ruder et al.). Off = every frame cold, the per-frame baseline."""

    enabled: bool = True
    weight: float = 100.0
    """Weight of the temporal term (mean squared difference to the warped previous output)."""
    warm_iters: int = 40
    """Optimiser steps of a warm frame, at the final scale only."""
    adaptive_iters: float = 0.0
    """More warm steps where much of the frame is new: a warm frame runs
    ``round(warm_iters * (1 + adaptive_iters * (1 - reliable fraction)))`` steps; 0 = fixed."""
    warm_lr: float = 1e-3
    """RMSprop learning rate of warm frames (RMSprop moves each pyramid value by about this
    much per step, so few steps need a larger rate to repaint newly visible areas)."""
    repaint_rate: float = 1.0
    """Learning-rate multiplier of a warm frame's unreliable pixels (blended in by the mask):
    those start from the fill and must be repainted within the warm steps, so few steps (the
    preview's) need larger ones there. 1 = the warm learning rate everywhere."""
    flow: str = "dis"
    dis_preset: str = "medium"
    raft_weights: str | None = None
    fill: str = "checked"
    """What a warm start holds where the mask says unreliable: blended in by the mask, the
    content's low-pass (blur), that plus the previous output's texture, the content frame, or
    the style's mean colour; or the warped previous output itself (warped: steadier on real
    clips, but it keeps texture dragged by wrong flow in flat areas). checked: blur, after the
    mask is raised wherever the previous input, warped by the rejected vector, matches this
    frame in a textured area (or anywhere the vector passed the forward-backward test); the
    raised mask also weights the temporal term. docs/tuning.md."""
    neighbour_flow: bool = True
    """With ``checked``: a vector still rejected is replaced by its trusted neighbours' where
    the input agrees under it, in textured areas or deep inside flat ones (a white window the
    flow cannot match, rejected frame after frame); the raised mask keeps and holds those
    pixels instead of repainting them each frame. docs/tuning.md."""
    mask_smoothing: str = "gaussian"
    early_stop_tol: float = 0.0
    """Stop a warm frame when its loss changes by less than this (relative) over a window; 0 = off."""
    early_stop_window: int = 10
    long_term: tuple[int, ...] = ()
    """Past frames constrained besides the previous one (e.g. 1, 10, 20): each pixel is tied to
    the closest of them where it is reliable."""

    def __post_init__(self) -> None:
        _check_finite("temporal", self)
        _non_negative("temporal.weight", self.weight)
        _positive("temporal.warm_iters", self.warm_iters)
        _positive("temporal.warm_lr", self.warm_lr)
        _positive("temporal.repaint_rate", self.repaint_rate)
        _non_negative("temporal.adaptive_iters", self.adaptive_iters)
        _positive("temporal.early_stop_window", self.early_stop_window)
        _non_negative("temporal.early_stop_tol", self.early_stop_tol)
        for name, value, allowed in (("flow", self.flow, FLOW_METHODS),
                                     ("dis_preset", self.dis_preset, DIS_PRESETS),
                                     ("fill", self.fill, FILL_MODES),
                                     ("mask_smoothing", self.mask_smoothing, MASK_SMOOTHING)):
            if value not in allowed:
                raise ConfigError(f"temporal.{name} must be one of {', '.join(allowed)} (got {quote(value)})")
        if any(isinstance(j, bool) or not isinstance(j, int) or j < 1 for j in self.long_term):
            raise ConfigError(f"temporal.long_term must list frame distances >= 1 (got {self.long_term})")


@dataclass(frozen=True)
class VideoConfig:
    """Encoding of the output video."""

    codec: str = "libx264"
    crf: int = 18
    encoder_preset: str = "medium"
    audio: bool = True
    output_size: str = "processing"
    """processing: the stylised size; source: scaled back to the input's size."""

    def __post_init__(self) -> None:
        _check_finite("video", self)
        if not 0 <= self.crf <= 63:
            raise ConfigError(f"video.crf must be in 0..63 (got {self.crf})")
        if self.output_size not in ("processing", "source"):
            raise ConfigError(f"video.output_size must be processing or source (got {quote(self.output_size)})")
        if not self.codec:
            raise ConfigError("video.codec must not be empty")


SHOT_DETECTORS = ("adaptive", "content")


@dataclass(frozen=True)
class ShotsConfig:
    """Where the temporal chain restarts: detected or listed cuts, and collapsed flow."""

    mode: str = "auto"
    """auto: detect cuts (PySceneDetect); none: one shot; anything else: a cuts file's path."""
    detector: str = "adaptive"
    """adaptive (AdaptiveDetector) or content (ContentDetector)."""
    adaptive_threshold: float = 3.0
    """AdaptiveDetector's adaptive_threshold (ratio of a frame's change to its neighbours')."""
    content_threshold: float = 27.0
    """ContentDetector's threshold (mean HSV change, 0-255)."""
    min_shot_frames: int = 15
    """Shortest shot the detector reports, in frames."""
    reliable_floor: float = 0.25
    """Restart the chain (cold frame) when the flow mask's reliable fraction is below this
    (a missed cut or a whip-pan); 0 = never."""

    def __post_init__(self) -> None:
        _check_finite("shots", self)
        if not self.mode:
            raise ConfigError("shots.mode must be auto, none or a cuts file")
        if self.detector not in SHOT_DETECTORS:
            raise ConfigError(f"shots.detector must be one of {', '.join(SHOT_DETECTORS)} "
                              f"(got {quote(self.detector)})")
        _positive("shots.adaptive_threshold", self.adaptive_threshold)
        _positive("shots.content_threshold", self.content_threshold)
        _positive("shots.min_shot_frames", self.min_shot_frames)
        if not 0 <= self.reliable_floor < 1:
            raise ConfigError(f"shots.reliable_floor must be in [0, 1) (got {self.reliable_floor})")


@dataclass(frozen=True)
class Config:
    """Everything a run needs."""

    strotss: StrotssConfig = field(default_factory=StrotssConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    shots: ShotsConfig = field(default_factory=ShotsConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_SECTION_TYPES: dict[str, type] = {"strotss": StrotssConfig, "temporal": TemporalConfig,
                                   "shots": ShotsConfig, "video": VideoConfig,
                                   "runtime": RuntimeConfig}


def _coerce(section: str, name: str, value: Any, default: Any) -> Any:
    """Check a YAML/flag value against the field's default type (bool is not an int here)."""
    expected = type(default) if default is not None else str
    if value is None and default is None:
        return None
    if expected is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is float and isinstance(value, str):
        # YAML 1.1 (PyYAML) reads 3e-4 as a string: a float needs a dot there (3.0e-4).
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) and expected is str:
        # YAML 1.1 (PyYAML) reads on/off/yes/no as booleans; the on/off choices get them back.
        return "on" if value else "off"
    if isinstance(value, bool) and expected is not bool:
        raise ConfigError(f"{section}.{name} must be {expected.__name__}, got a boolean")
    if not isinstance(value, expected):
        raise ConfigError(f"{section}.{name} must be {expected.__name__} (got {quote(value)})")
    return value


def apply_overrides(config: Config, overrides: Mapping[str, Any], origin: str) -> Config:
    """Return ``config`` with nested ``{section: {field: value}}`` overrides applied.

    Unknown sections or keys are errors naming ``origin`` (a file or "command line")."""
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{origin}: expected a mapping of sections (strotss:, runtime:), got "
                          f"{type(overrides).__name__}")
    sections: dict[str, Any] = {}
    for section, values in overrides.items():
        cls = _SECTION_TYPES.get(section)
        if cls is None:
            raise ConfigError(f"{origin}: unknown config section {quote(section)}; known: "
                              f"{', '.join(_SECTION_TYPES)}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{origin}: section {quote(section)} must be a mapping")
        current = getattr(config, section)
        known = {f.name for f in fields(cls)}
        changes = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{origin}: unknown config key {section}.{key}; run with "
                                  "--print-config to see the valid keys")
            changes[key] = _coerce(section, key, value, getattr(cls(), key))
        try:
            sections[section] = replace(current, **changes)
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
    return replace(config, **sections)


MAX_YAML_BYTES = 1 << 20
"""Configs and manifests are hand-written: a larger file is a mistake or an attack."""


class _NoAliasLoader(yaml.SafeLoader):
    """``safe_load`` without aliases (``*name``): a few hundred bytes of nested aliases expand
    to gigabytes (a "billion laughs" file), and hand-written configs have no use for them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"aliases (*name) are not supported (line {mark.line + 1})")
        return super().compose_node(parent, index)


def load_yaml(path: str | os.PathLike[str], what: str = "config file",
              hint: str = "pass an existing YAML file to --config",
              fix: str = "fix the file or drop --config") -> Any:
    """Read YAML with ``safe_load`` (never arbitrary objects); an empty file is an empty
    mapping. ``what``/``hint``/``fix`` word the one-line errors for the caller's file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} not found; {hint}")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(f"{what} {p} is larger than {MAX_YAML_BYTES >> 20} MiB; {fix}")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_NoAliasLoader)  # noqa: S506
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        detail = str(exc) if "aliases" in str(exc) else f"not valid YAML{line}"
        raise ConfigError(f"{p}: {detail}; {fix}") from None
    return {} if data is None else data


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {quote(name)}; choose one of: {', '.join(available_presets())}")
    return load_yaml(path)


def build_config(preset: str | None = None, config_file: str | os.PathLike[str] | None = None,
                 flags: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
    """Resolve the configuration: default < preset < config file < flags."""
    config = Config()
    if preset is not None:
        config = apply_overrides(config, load_preset(preset), f"preset {quote(preset)}")
    if config_file is not None:
        config = apply_overrides(config, load_yaml(config_file), str(config_file))
    if flags:
        config = apply_overrides(config, flags, "command line")
    return config


# Flat setting names (the CLI's long options, with underscores) -> (section, field).
FLAG_FIELDS: dict[str, tuple[str, str]] = {
    "max_size": ("strotss", "max_size"),
    "scales": ("strotss", "scales"),
    "iters": ("strotss", "iters"),
    "content_weight": ("strotss", "content_weight"),
    "output_points": ("strotss", "output_points"),
    "style_points": ("strotss", "style_points"),
    "temporal": ("temporal", "enabled"),
    "temporal_weight": ("temporal", "weight"),
    "warm_iters": ("temporal", "warm_iters"),
    "warm_lr": ("temporal", "warm_lr"),
    "repaint_rate": ("temporal", "repaint_rate"),
    "adaptive_iters": ("temporal", "adaptive_iters"),
    "fill": ("temporal", "fill"),
    "neighbour_flow": ("temporal", "neighbour_flow"),
    "flow": ("temporal", "flow"),
    "long_term": ("temporal", "long_term"),
    "shots": ("shots", "mode"),
    "shot_detector": ("shots", "detector"),
    "adaptive_threshold": ("shots", "adaptive_threshold"),
    "content_threshold": ("shots", "content_threshold"),
    "min_shot_frames": ("shots", "min_shot_frames"),
    "reliable_floor": ("shots", "reliable_floor"),
    "crf": ("video", "crf"),
    "codec": ("video", "codec"),
    "encoder_preset": ("video", "encoder_preset"),
    "audio": ("video", "audio"),
    "output_size": ("video", "output_size"),
    "device": ("runtime", "device"),
    "seed": ("runtime", "seed"),
    "vgg_weights": ("runtime", "vgg_weights"),
    "threads": ("runtime", "threads"),
    "precision": ("runtime", "precision"),
    "cuda_graphs": ("runtime", "cuda_graphs"),
    "max_input_pixels": ("runtime", "max_input_pixels"),
}


def flag_overrides(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat ``{name: value}`` settings (None = not given) -> nested overrides."""
    nested: dict[str, dict[str, Any]] = {}
    for name, value in settings.items():
        if name not in FLAG_FIELDS:
            raise ConfigError(f"unknown setting {quote(name)}; known: {', '.join(sorted(FLAG_FIELDS))}")
        if value is None:
            continue
        section, key = FLAG_FIELDS[name]
        nested.setdefault(section, {})[key] = value
    return nested
