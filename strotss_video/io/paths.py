"""Input-path checks shared by the image and video readers."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError


def existing_file(path: str | os.PathLike[str], what: str, kind: str) -> Path:
    """``path`` as a Path if it is an existing regular file; else a one-line InputError naming
    ``what`` (e.g. "style image") and the ``kind`` of file to pass instead."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} {p} does not exist; check the path")
    if p.is_dir():
        raise InputError(f"{what} {p} is a directory; pass {kind}")
    return p
