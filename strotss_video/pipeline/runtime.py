"""Shared run-time plumbing: device choice and the extractor (built once per process)."""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

import torch

from ..config import RuntimeConfig
from ..errors import UsageError
from ..features.vgg import FeatureExtractor, build_vgg_hypercolumns
from ..features.weights import resolve_vgg16_weights


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available else cpu; a CUDA request without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda was requested but no CUDA GPU is visible; use "
                             "--device cpu or auto")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible")
        return device
    return torch.device("cpu")


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'mixed' on CUDA and on CPUs with native bfloat16 (AMX or AVX512-BF16), else
    'float32'. 'fast' stays 'fast' on CPUs whose oneDNN really computes float32 products from
    bfloat16-rounded inputs (:func:`bfloat16_products`; AMX Xeons), and is resolved as 'auto'
    elsewhere, where it would change nothing."""
    if precision == "fast" and device.type == "cpu" and native_bfloat16() and bfloat16_products():
        return "fast"
    if precision not in ("auto", "fast"):
        return precision
    # fast elsewhere: the fastest setting auto would pick there.
    if device.type == "cuda":
        return "mixed"
    if device.type == "cpu":
        return "mixed" if native_bfloat16() else "float32"
    return "float32"


def native_bfloat16() -> bool:
    """Whether this process computes in bfloat16 natively: the CPU has AMX or AVX512-BF16 and
    PyTorch's kernels are not limited below AVX512 (``ATEN_CPU_CAPABILITY=avx2`` limits them)."""
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")()
    if not str(capability).upper().startswith("AVX512"):
        return False
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)() or
                getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


_bfloat16_products: bool | None = None


def bfloat16_products() -> bool:
    """Whether asking oneDNN for bfloat16 float32 products (:func:`set_cpu_products`) rounds
    their inputs on this CPU. oneDNN may keep exact float32 kernels (it does on AVX512-BF16
    CPUs without AMX): there 'fast' would only be 'mixed'. Probed once per process."""
    global _bfloat16_products
    if _bfloat16_products is None:
        matmul = getattr(torch.backends.mkldnn, "matmul", None)
        if matmul is None or not hasattr(matmul, "fp32_precision"):
            _bfloat16_products = False
        else:
            before = matmul.fp32_precision
            try:
                matmul.fp32_precision = "bf16"
                # 1 + 2^-10 is exact in float32 and rounds to 1 in bfloat16 (8 significant
                # bits): 256 such products sum to 256 exactly, or to 256.25 without rounding.
                ones = torch.ones(128, 256)
                product = torch.mm(ones + 2.0 ** -10, ones.T)
                _bfloat16_products = bool(product[0, 0] == 256.0)
            finally:
                matmul.fp32_precision = before
    return _bfloat16_products


def set_cpu_products(bfloat16: bool) -> None:
    """float32 matrix products on CPU: exact (IEEE), or computed by oneDNN from
    bfloat16-rounded inputs with float32 accumulation (the CPU's counterpart of TF32; ~3x
    faster on AMX). Process-wide; a no-op where this PyTorch has no such setting."""
    matmul = getattr(torch.backends.mkldnn, "matmul", None)
    if matmul is not None and hasattr(matmul, "fp32_precision"):
        matmul.fp32_precision = "bf16" if bfloat16 else "ieee"


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_MMAP_BELOW = 32 << 20
_KEEP_FREED_UP_TO = 1 << 30
_allocator_applied = False


def apply_allocator(runtime: RuntimeConfig) -> bool:
    """Apply ``runtime.allocator`` to this process once; whether glibc's settings were changed.

    tuned: blocks up to 32 MiB come from the heap, and up to 1 GiB of freed heap stays with the
    process. Without it glibc serves each step's (N,M) and (D,D) temporaries (4-20 MiB) with
    fresh mappings and returns them on free, so every step faults them in again. Never an error:
    elsewhere than Linux with glibc, or with the MALLOC_* variables set, nothing changes."""
    global _allocator_applied
    if _allocator_applied or runtime.allocator != "tuned" or not sys.platform.startswith("linux"):
        return False
    _allocator_applied = True
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: glibc's
    except (OSError, ValueError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_MMAP_BELOW)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED_UP_TO))


@dataclass(frozen=True)
class Extractor:
    model: FeatureExtractor
    weights_source: str


_EXTRACTORS: dict[tuple[str | None, str], Extractor] = {}


def load_extractor(runtime: RuntimeConfig, device: torch.device, progress: bool = True) -> Extractor:
    """The VGG16 hypercolumn extractor on ``device``, built once per (weights, device)."""
    key = (runtime.vgg_weights, str(device))
    if key not in _EXTRACTORS:
        weights = resolve_vgg16_weights(runtime.vgg_weights, progress=progress)
        model = build_vgg_hypercolumns(weights.state_dict, device)
        _EXTRACTORS[key] = Extractor(model=model, weights_source=weights.source)
    return _EXTRACTORS[key]


def extractor_for(runtime: RuntimeConfig, device: torch.device,
                  injected: FeatureExtractor | None, progress: bool) -> tuple[FeatureExtractor, str]:
    """The injected extractor (tests), else the VGG16 one; with the weights' source.
    Applies ``runtime.precision`` (mixed: bfloat16 VGG, TF32 products on CUDA; fast: also
    bfloat16-input products on CPUs with native bfloat16) and ``runtime.allocator``."""
    apply_allocator(runtime)
    precision = resolve_precision(runtime.precision, device)
    mixed = precision in ("mixed", "fast")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = mixed
        torch.backends.cudnn.allow_tf32 = mixed
        # Off by default: timing every shape is most of a process's first cold frame (H100).
        # ("final" is switched on for the last scale by stylize(autotune=...).)
        torch.backends.cudnn.benchmark = runtime.cudnn_benchmark == "on"
    if device.type == "cpu":
        # Reset for float32 and mixed too: a process may run several precisions in turn.
        set_cpu_products(precision == "fast")
    if injected is not None:
        return injected, "injected extractor"
    loaded = load_extractor(runtime, device, progress=progress)
    loaded.model.autocast = torch.bfloat16 if mixed else None  # type: ignore[attr-defined]
    return loaded.model, loaded.weights_source
