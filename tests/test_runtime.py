"""The process-wide run-time settings: the C allocator's treatment of large freed blocks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# In a child process: whether an 8 MiB block, allocated and freed, then allocated again, came
# from a fresh mapping (glibc's default above its initial 128 KiB threshold) or from the heap.
_CHILD = textwrap.dedent("""
    import ctypes, sys
    from strotss_video.config import RuntimeConfig
    from strotss_video.pipeline.runtime import apply_allocator

    class Info(ctypes.Structure):
        _fields_ = [(k, ctypes.c_size_t) for k in ("arena", "ordblks", "smblks", "hblks",
                    "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Info
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    applied = apply_allocator(RuntimeConfig(allocator=sys.argv[1]))
    again = apply_allocator(RuntimeConfig(allocator=sys.argv[1]))
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(8 << 20)
    mapped = libc.mallinfo2().hblkhd - before
    libc.free(block)
    print(int(applied), int(again), int(mapped >= 8 << 20))
""")


def _glibc_with_mallinfo2() -> bool:
    try:
        import ctypes
        return bool(os.confstr("CS_GNU_LIBC_VERSION")) and hasattr(ctypes.CDLL(None), "mallinfo2")
    except (OSError, ValueError, AttributeError):
        return False


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="needs glibc 2.33+ (mallinfo2)")
@pytest.mark.parametrize("allocator, expected", [("tuned", "1 0 0"), ("system", "0 0 1")])
def test_allocator_setting_keeps_large_blocks_on_the_heap(allocator: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", _CHILD, allocator], env=env, cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.split()
    # tuned: applied once (the second call is a no-op), and the block is not a fresh mapping.
    assert " ".join(out) == expected


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="needs glibc 2.33+ (mallinfo2)")
def test_allocator_leaves_the_users_malloc_variables_alone() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run([sys.executable, "-c", _CHILD, "tuned"], env=env, cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "0", "1"]


def _oneDNN_precision_setting() -> bool:
    import torch
    return hasattr(getattr(torch.backends.mkldnn, "matmul", None), "fp32_precision")


# Bounds from IEEE arithmetic (Higham, Accuracy and Stability of Numerical Algorithms, 3.1),
# for C = A B with K terms per entry and S = |A| |B| (float64), whatever the kernel's order:
# - float32 products and sums (unit roundoff u = 2^-24): |C - exact| <= gamma_K S,
#   gamma_K = K u / (1 - K u);
# - inputs rounded to bfloat16 first (8 significant bits, u_bf = 2^-8), their products exact
#   in float32 (8 + 8 bits <= 24), float32 sums: each product moves by at most
#   (2 u_bf + u_bf^2) of itself, so |C - exact| <= ((2 u_bf + u_bf^2)(1 + gamma_K) + gamma_K) S.
_K = 512
_U32, _UBF = 2.0 ** -24, 2.0 ** -8
_GAMMA = _K * _U32 / (1 - _K * _U32)
_BF16_BOUND = (2 * _UBF + _UBF ** 2) * (1 + _GAMMA) + _GAMMA


def _products_case() -> tuple[object, object, object, object]:
    import torch
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(64, _K, generator=gen), torch.rand(_K, 96, generator=gen)
    return a, b, a.double() @ b.double(), a.double().abs() @ b.double().abs()


@pytest.mark.skipif(not _oneDNN_precision_setting(), reason="this PyTorch has no oneDNN fp32_precision")
def test_fast_precision_rounds_product_inputs_and_float32_restores_exact_products(
        tiny_extractor: object) -> None:
    import torch

    from strotss_video.config import RuntimeConfig
    from strotss_video.pipeline.runtime import extractor_for, resolve_precision
    a, b, exact, scale = _products_case()
    cpu = torch.device("cpu")
    try:
        extractor_for(RuntimeConfig(precision="fast"), cpu, tiny_extractor, False)
        error = (torch.mm(a, b).double() - exact).abs()
        if resolve_precision("fast", cpu) == "fast":
            # The inputs really are rounded: for these uniform [0,1) inputs the rounding moves an
            # entry by ~N(0, (0.42 u_bf sqrt(2) |a_k b_k|_2)^2), |a_k b_k|_2 ~ sqrt(K/9) and
            # S ~ K/4: its spread is ~4x the float32 bound, so ~80% of entries land outside it,
            # where no float32 kernel can put them.
            assert float((error > _GAMMA * scale).double().mean()) > 0.5
            assert bool((error <= _BF16_BOUND * scale).all())
        else:
            # Resolved as auto's choice (no bfloat16 products here): exact float32 products.
            assert bool((error <= _GAMMA * scale).all())
        for precision in ("float32", "mixed"):
            extractor_for(RuntimeConfig(precision=precision), cpu, tiny_extractor, False)
            error = (torch.mm(a, b).double() - exact).abs()
            assert bool((error <= _GAMMA * scale).all()), precision
    finally:
        extractor_for(RuntimeConfig(precision="float32"), cpu, tiny_extractor, False)


@pytest.mark.skipif(not _oneDNN_precision_setting(), reason="this PyTorch has no oneDNN fp32_precision")
def test_bfloat16_products_probe_agrees_with_a_real_product() -> None:
    import torch

    from strotss_video.pipeline.runtime import bfloat16_products, set_cpu_products
    a, b, exact, scale = _products_case()
    try:
        set_cpu_products(True)
        error = (torch.mm(a, b).double() - exact).abs()
    finally:
        set_cpu_products(False)
    # Rounded inputs put most entries beyond the float32 bound (see above); exact float32
    # kernels put none there.
    assert bfloat16_products() == bool((error > _GAMMA * scale).double().mean() > 0.5)
    assert bool((error <= _BF16_BOUND * scale).all())


def test_fast_precision_resolves_to_autos_choice_where_bfloat16_is_not_native() -> None:
    import torch

    from strotss_video.pipeline.runtime import bfloat16_products, native_bfloat16, resolve_precision
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("fast", cuda) == "mixed" == resolve_precision("auto", cuda)
    fast_here = native_bfloat16() and bfloat16_products()
    assert resolve_precision("fast", cpu) == ("fast" if fast_here else
                                              resolve_precision("auto", cpu))
    assert resolve_precision("auto", cpu) == ("mixed" if native_bfloat16() else "float32")
    assert resolve_precision("mixed", cpu) == "mixed"
