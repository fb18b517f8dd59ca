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


def _bf16_products_available() -> bool:
    import torch

    from strotss_video.pipeline.runtime import native_bfloat16
    matmul = getattr(torch.backends.mkldnn, "matmul", None)
    return native_bfloat16() and matmul is not None and hasattr(matmul, "fp32_precision")


@pytest.mark.skipif(not _bf16_products_available(),
                    reason="needs a CPU with native bfloat16 and PyTorch's oneDNN fp32_precision")
def test_fast_precision_rounds_product_inputs_and_float32_restores_exact_products(
        tiny_extractor: object) -> None:
    import torch

    from strotss_video.config import RuntimeConfig
    from strotss_video.pipeline.runtime import extractor_for
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(64, 512, generator=gen), torch.rand(512, 96, generator=gen)
    exact = (a.double() @ b.double()).float()
    cpu = torch.device("cpu")
    try:
        extractor_for(RuntimeConfig(precision="fast"), cpu, tiny_extractor, False)
        fast = torch.mm(a, b)
        rounded = (a.bfloat16().double() @ b.bfloat16().double()).float()
        # bfloat16 inputs, float32 sums: off the exact product, on the rounded inputs' one.
        assert float((fast - exact).abs().max()) > 1e-4
        assert torch.allclose(fast, rounded, rtol=1e-5, atol=1e-4)
        for precision in ("float32", "mixed"):
            extractor_for(RuntimeConfig(precision=precision), cpu, tiny_extractor, False)
            assert torch.allclose(torch.mm(a, b), exact, rtol=1e-6, atol=1e-5), precision
    finally:
        extractor_for(RuntimeConfig(precision="float32"), cpu, tiny_extractor, False)


def test_fast_precision_resolves_to_autos_choice_where_bfloat16_is_not_native() -> None:
    import torch

    from strotss_video.pipeline.runtime import native_bfloat16, resolve_precision
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("fast", cuda) == "mixed" == resolve_precision("auto", cuda)
    assert resolve_precision("fast", cpu) == ("fast" if native_bfloat16() else "float32")
    assert resolve_precision("auto", cpu) == ("mixed" if native_bfloat16() else "float32")
    assert resolve_precision("mixed", cpu) == "mixed"
