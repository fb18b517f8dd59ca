"""Memory a stylisation will need, estimated before it starts, and what the machine has.

A run that does not fit is refused up front with the largest ``--max-size`` that does (the
kernel's OOM killer would end it silently, hours in); a run that still runs out of memory ends
as a one-line :class:`~strotss_video.errors.OutOfMemory` (:func:`out_of_memory_as_error`).

The estimate is the working memory on top of a process that has loaded torch: VGG16's
weights and its activations for one forward and backward at the final scale (which dominate and
grow with the pixel count), the style targets of every scale, the (N,M) cost matrices, the
content's candidate hypercolumns, the decoded inputs and, for video, the frames in flight.
Calibrated on a 2-core AVX512-BF16 CPU against the peak RSS in the stats of ::

    strotss-video image content.png style.png out.png --iters 2 --max-size S \\
        --precision P --stats s.json

(a 1024x768 content, a 512x512 style; S = 256, 512, 768, 1024; P = float32 and mixed; also
``--style-points 20000`` and ``--output-points 4096`` at 512) and of a 32 px run with 16 points
(the loaded process): the estimate (``memory_estimate_mib`` in the stats) is 1.1-1.4x each run's
growth above the loaded process, and with that process added 1.05-1.25x its peak. Precision is not a term: mixed keeps bfloat16 maps and
their float32 copies, measured as large as float32. On CUDA the same terms are GPU memory, plus
cuDNN's workspace."""

from __future__ import annotations

import errno
import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..config import StrotssConfig
from ..errors import OutOfMemory, UsageError
from ..features.sampling import grid_stride
from ..stylize.step import precompute_similarity
from ..tensorops import scaled_size

MIB = 1 << 20
HYPERCOLUMN = 2179
"""Channels of a VGG16 hypercolumn (image + the nine STROTSS relu layers)."""

ACTIVATION_BYTES = 2400
"""Bytes per final-scale pixel of one VGG16 forward and backward (saved maps, their gradients,
oneDNN's reorders, allocator slack): the calibration's peak grows by 1640 (float32) and 1950
(mixed: bfloat16 maps plus their float32 copies) bytes a pixel from 256 to 1024 px."""
COST_MATRICES = 8
"""(N,M) float32 matrices alive at once in a step (distances, the soft minimum, gradients):
the calibration's peak grows by 6.3 of them from 1024 to 4096 output points."""
def frames_in_flight() -> int:
    """Source frames (yuv420p: 1.5 bytes a pixel) a threaded decoder holds at once: reference
    frames plus one per thread (FFmpeg uses up to 16). On 2 cores an 8K clip's run peaks 508 MiB
    above a 72x40 clip's at --max-size 64, about 10 frames."""
    return 8 + min(os.cpu_count() or 1, 16)
VGG_WEIGHTS = 96 * MIB
"""VGG16's convolutions up to relu5_3 in float32, plus the bfloat16 copy mixed precision makes."""
CUDNN_WORKSPACE = 512 * MIB
CUDA_CONTEXT_HOST = 1024 * MIB
"""Host memory the CUDA runtime adds to a process (its libraries and pinned pools)."""
WORKER_PROCESS = 900 * MIB
"""A spawned worker's own Python, torch, OpenCV and PyAV (a 32 px run peaks at 950 MiB)."""
HEADROOM = 1.1
"""Margin kept free beyond the estimate."""


@dataclass(frozen=True)
class Workload:
    """What one stylisation process holds; sizes are (H, W)."""

    strotss: StrotssConfig  # fitted: max_size is the processing long side, scales those kept
    size: tuple[int, int]  # processing size at the final scale
    device: str  # "cpu" or "cuda"
    inputs: tuple[tuple[int, int], ...] = ()  # decoded still images (content, style) in float32
    source: tuple[int, int] | None = None  # a video's decoded frame size
    history: int = 0  # past frames the temporal chain keeps (video: 1 + long-term)
    workers: int = 1  # processes running such a workload side by side
    gpus: int = 1  # CUDA devices the workers are spread over


@dataclass(frozen=True)
class Estimate:
    host: int  # bytes of RAM, per process
    device: int  # bytes of GPU memory, per process (0 on CPU)


def _content_bytes(h: int, w: int, cfg: StrotssConfig) -> int:
    """Bytes of the content's hypercolumns at the candidates a scale's steps sample, and of
    their similarities when those are precomputed (see ``stylize.step.sample_points``)."""
    stride = grid_stride(h, w, cfg.grid_side)
    candidates = math.ceil(h / stride) * math.ceil(w / stride)
    rows = min(candidates, cfg.iters * cfg.output_points)
    similarity = rows ** 2 if precompute_similarity(rows, cfg.output_points, cfg.iters) else 0
    return (rows * HYPERCOLUMN + similarity) * 4


def estimate(work: Workload) -> Estimate:
    """Bytes one process needs beyond having imported torch (see the module docstring)."""
    cfg = work.strotss
    h, w = work.size
    pixels = h * w
    # The style targets of every scale stay cached: unit rows, their transpose, a covariance.
    style = cfg.scales * (2 * cfg.style_points * HYPERCOLUMN + HYPERCOLUMN ** 2) * 4
    cost = COST_MATRICES * cfg.output_points * cfg.style_points * 4
    content = _content_bytes(h, w, cfg)
    vgg = pixels * ACTIVATION_BYTES
    compute = style + cost + content + vgg + VGG_WEIGHTS
    images = sum(a * b for a, b in work.inputs) * 3 * 4 * 2  # float32, plus one tensor copy
    if work.source is not None:
        images += work.source[0] * work.source[1] * 3 // 2 * frames_in_flight()
    # The chain's past frames: float output, uint8 input, and both flows (4 channels).
    images += work.history * pixels * (3 * 4 + 3 + 4 * 4)
    if work.device == "cuda":
        return Estimate(host=images + CUDA_CONTEXT_HOST, device=compute + CUDNN_WORKSPACE)
    return Estimate(host=images + compute, device=0)


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    found = re.search(r"^MemAvailable:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else None


def _cgroup_available() -> int | None:
    """What this process's cgroup still allows (v2, else v1); None when unlimited."""
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            cap, used = Path(limit).read_text().strip(), Path(usage).read_text().strip()
        except OSError:
            continue
        if cap.isdigit() and used.isdigit() and int(cap) < 1 << 60:
            return max(0, int(cap) - int(used))
    return None


def host_available() -> int | None:
    """Bytes of RAM a new allocation can get: MemAvailable, bounded by the cgroup's limit."""
    found = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    if not found and hasattr(os, "sysconf"):
        try:
            found = [os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
        except (ValueError, OSError):
            pass
    return min(found) if found else None


def resident_bytes() -> int:
    """This process's resident memory now (0 where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def device_available(device: str) -> int | None:
    """Free bytes on a CUDA device (None for the CPU)."""
    if not device.startswith("cuda"):
        return None
    import torch

    return int(torch.cuda.mem_get_info(torch.device(device))[0])


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def _required(work: Workload, resident: int) -> Estimate:
    """Bytes a run of ``work`` adds to the machine: one process runs in this one; several
    workers are new processes, each with its own libraries, spread over ``work.gpus``."""
    need = estimate(work)
    if work.workers <= 1:
        return need
    per_gpu = math.ceil(work.workers / max(1, work.gpus))
    return Estimate(host=work.workers * (need.host + max(resident, WORKER_PROCESS)),
                    device=per_gpu * need.device)


def check_memory(work: Workload, resize: Callable[[int], Workload], *,
                 host: int | None = None, device: int | None = None) -> Estimate:
    """Refuse (one-line UsageError) a run that would not fit in memory, naming the largest
    ``--max-size`` that fits; ``resize(long_side)`` is ``work`` at another size. ``host``
    and ``device`` (free bytes) default to what this machine has now. Returns the estimate."""
    resident = resident_bytes()
    host = host_available() if host is None else host
    device = device_available(work.device) if device is None else device

    def fits(w: Workload) -> bool:
        need = _required(w, resident)
        return ((host is None or need.host * HEADROOM <= host) and
                (device is None or need.device * HEADROOM <= device))

    if fits(work):
        return estimate(work)
    need = _required(work, resident)
    short = ("GPU memory", need.device, device) if device is not None and \
        need.device * HEADROOM > device else ("memory", need.host, host or 0)
    side = max(work.size)
    best = _largest_fitting(side, resize, fits)
    where = f"{work.workers} workers" if work.workers > 1 else "this run"
    advice = (f"use --max-size {best} or less" if best else
              "not even the smallest size fits: free memory" +
              (" or use fewer --workers" if work.workers > 1 else ""))
    raise UsageError(f"{where} at {side} px would need about {_gib(short[1] * HEADROOM)} of "
                     f"{short[0]}, {_gib(short[2])} is available; {advice}")


def _largest_fitting(side: int, resize: Callable[[int], Workload],
                     fits: Callable[[Workload], bool]) -> int | None:
    """The largest even long side below ``side`` whose workload fits (None if not 16 px)."""
    low, high = 16, side - 1
    if low > high or not fits(resize(low)):
        return None
    while low < high:  # the estimate grows with the size: bisect
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(resize(mid)) else (low, mid - 1)
    return low - low % 2


def scaled(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """``size`` (H, W) at ``long_side``, both even (as the video pipeline rounds)."""
    h, w = scaled_size(size[0], size[1], long_side)
    return max(2, h - h % 2), max(2, w - w % 2)


_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory",
             "failed to allocate", "insufficient memory", "alloc_failed")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: MemoryError, torch's CUDA OutOfMemoryError, an
    ENOMEM OSError, or the RuntimeError torch's CPU allocator (and cuDNN, cuBLAS) or the
    cv2.error OpenCV raise for one."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOMEM
    if isinstance(exc, RuntimeError) or type(exc).__module__ == "cv2":
        text = str(exc).lower()
        return any(t in text for t in _OOM_TEXT)
    return False


@contextmanager
def out_of_memory_as_error(side: int, more: str = "") -> Iterator[None]:
    """Turn an allocation failure inside the block into a one-line :class:`OutOfMemory` that
    says what to lower; ``side`` is the run's long side, ``more`` ends the advice."""
    try:
        yield
    except BaseException as exc:
        if not is_out_of_memory(exc):
            raise
        kind = "GPU memory" if "cuda" in str(exc).lower() else "memory"
        raise OutOfMemory(f"ran out of {kind} at {side} px; lower --max-size (e.g. "
                          f"{max(16, side // 2)}), --style-points or --output-points"
                          f"{more}") from None
