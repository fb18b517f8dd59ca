"""Where job directories live and how a job's input is recognised, with no torch imported (so
``work list|clean`` starts at once): the work root, the layout version, the names of a job
directory's records and the input fingerprint. The directory itself: :mod:`.workdir`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

LAYOUT_VERSION = 2
"""Changes whenever a job directory's layout or key does: older ones are never resumed."""
JOB_FILE, SHOTS_FILE, DONE_FILE, FRAMES_DIR = "job.json", "shots.json", "done.json", "frames"
FINGERPRINT_EDGE = 1 << 20
"""Bytes hashed at each end of an input (where containers keep their headers and indexes)."""
FINGERPRINT_BLOCKS = (16, 64 << 10)
"""Evenly spaced blocks hashed between the ends: (count, bytes each)."""


def default_work_root() -> Path:
    """``$STROTSS_WORK_DIR``, else ``$XDG_CACHE_HOME/strotss-video/work`` (``~/.cache/...``)."""
    if os.environ.get("STROTSS_WORK_DIR"):
        return Path(os.environ["STROTSS_WORK_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "strotss-video" / "work"


def input_fingerprint(path: Path) -> str:
    """``SIZE:SHA256`` of a video's size and sampled bytes (the first and last MiB and 16 evenly
    spaced 64 KiB blocks; the whole file when smaller): reads at most 3 MiB, yet a replaced,
    re-encoded or trimmed file changes it even when its size and mtime are kept."""
    size = path.stat().st_size
    count, block = FINGERPRINT_BLOCKS
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= 2 * FINGERPRINT_EDGE + count * block:
            h.update(fh.read())
        else:
            span = size - 2 * FINGERPRINT_EDGE - block
            reads = [(0, FINGERPRINT_EDGE), (size - FINGERPRINT_EDGE, FINGERPRINT_EDGE)]
            reads += [(FINGERPRINT_EDGE + k * span // (count - 1), block) for k in range(count)]
            for offset, length in reads:
                fh.seek(offset)
                h.update(fh.read(length))
    return f"{size}:{h.hexdigest()}"


def read_json(path: Path) -> Any:
    """A JSON record, or None if it is missing or damaged."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
