"""Path checks shared by the image and video readers and writers (no torch: the CLI runs them
before it imports torch)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import InputError, OutputError

WRITABLE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
"""Still-image outputs."""
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov")
"""Video outputs."""


def existing_file(path: str | os.PathLike[str], what: str, kind: str) -> Path:
    """``path`` as a Path if it is an existing regular file; else a one-line InputError naming
    ``what`` (e.g. "style image") and the ``kind`` of file to pass instead."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} {p} does not exist; check the path")
    if p.is_dir():
        raise InputError(f"{what} {p} is a directory; pass {kind}")
    return p


def check_output_path(output: Path, inputs: list[Path], overwrite: bool,
                      extensions: tuple[str, ...], what: str = "output") -> None:
    """Refuse, before any work, an output that cannot or must not be written."""
    if output.suffix.lower() not in extensions:
        raise OutputError(f"{what} {output} has an unsupported extension; use one of "
                          f"{', '.join(extensions)}")
    resolved = output.resolve()
    for path in inputs:
        if path.exists() and resolved == path.resolve():
            raise OutputError(f"{what} {output} is also an input; choose another path")
    if output.is_dir():
        raise OutputError(f"{what} {output} is a directory; give a file name")
    if output.exists() and not overwrite:
        raise OutputError(f"{what} {output} exists; pass --overwrite to replace it")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{what} directory {parent} does not exist; create it first")
    try:  # os.access says yes to root even on read-only mounts: really try.
        fd, probe = tempfile.mkstemp(prefix=".strotss-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write to {parent}: {exc.strerror}; choose a writable "
                          "output directory") from None
