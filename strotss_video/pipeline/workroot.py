"""The work root as a whole: its job directories listed, and those no run needs removed.

A job directory is a folder of the root holding a ``job.json`` (layout: :mod:`.workdir`). It is
*running* while a live process holds its lock, *finished* once its output was written,
*orphaned* when it can never be resumed (its input is missing or changed, or another layout
version made it), else *partial*: an interrupted run that the same command continues."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..files import try_flock
from .layout import (
    DONE_FILE,
    FRAMES_DIR,
    JOB_FILE,
    LAYOUT_VERSION,
    SHOTS_FILE,
    input_fingerprint,
    read_json,
)
from .locks import LOCK_DIR, LOCK_FILE, acquire, is_locked

State = Literal["running", "finished", "orphaned", "partial"]
_JOB_NAME = re.compile(r".+-[0-9a-f]{16}")


@dataclass(frozen=True)
class JobDir:
    """What one job directory holds and whether a run can still use it."""

    path: Path
    input: str | None
    output: str | None
    state: State
    why: str  # the input's state ("matches", "changed", "missing") or why it is orphaned
    frames: int  # finished frames on disk
    total: int | None  # frames of the job, once its shots are known
    size: int  # bytes
    changed: float  # newest modification time (epoch seconds)
    pid: str | None  # the run holding the lock

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "path": str(self.path)}


def job_dirs(root: Path) -> list[Path]:
    """The job directories directly under ``root`` (nothing else there is ever touched)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and not p.is_symlink() and p.name != LOCK_DIR and
                  ((p / JOB_FILE).is_file() or (_JOB_NAME.fullmatch(p.name) and
                                                (p / FRAMES_DIR).is_dir())))


def _input_state(meta: dict[str, Any] | None) -> str:
    if meta is None:
        return "no readable job.json"
    if meta.get("layout") != LAYOUT_VERSION:
        return "made by another version"
    path = Path(str(meta.get("input")))
    if not path.is_file():
        return "missing"
    try:
        same = input_fingerprint(path) == meta.get("fingerprint")
    except OSError:
        return "missing"
    return "matches" if same else "changed"


def _usage(path: Path) -> tuple[int, float]:
    """(bytes, newest mtime) of everything under ``path``."""
    size, newest = 0, path.stat().st_mtime
    for p in path.rglob("*"):
        try:
            st = p.lstat()
        except OSError:  # removed while we walk
            continue
        size += st.st_size if p.is_file() else 0
        newest = max(newest, st.st_mtime)
    return size, newest


def inspect(path: Path) -> JobDir:
    meta = read_json(path / JOB_FILE)
    meta = meta if isinstance(meta, dict) else None
    pid = is_locked(path / LOCK_FILE)
    why = _input_state(meta)
    shots = read_json(path / SHOTS_FILE)
    try:
        total = sum(s["end_frame"] - s["start_frame"] for s in shots) if shots else None
    except (KeyError, TypeError):
        total = None
    state: State = ("running" if pid else "finished" if (path / DONE_FILE).is_file()
                    else "partial" if why == "matches" else "orphaned")
    size, changed = _usage(path)
    return JobDir(path=path, input=meta.get("input") if meta else None,
                  output=meta.get("output") if meta else None, state=state, why=why,
                  frames=sum(1 for _ in (path / FRAMES_DIR).glob("*.png")), total=total,
                  size=size, changed=changed, pid=pid)


def list_jobs(root: Path) -> list[JobDir]:
    return [inspect(p) for p in job_dirs(root)]


def remove_job(path: Path) -> bool:
    """Remove a job directory unless a live run holds its lock (then False)."""
    lock = acquire(path / LOCK_FILE)
    if lock is None:
        return False
    try:
        shutil.rmtree(path)  # its lock file too: a run that opened it meanwhile locks anew
    finally:
        lock.release()
    return True


def remove_jobs_of_output(root: Path, output: Path, keep: str) -> list[Path]:
    """Remove the other job directories writing ``output`` (other styles, settings or ranges
    of earlier runs), except ``keep`` and those a live run holds."""
    target = str(output.resolve())
    removed = []
    for path in job_dirs(root):
        meta = read_json(path / JOB_FILE)
        if path.name != keep and isinstance(meta, dict) and meta.get("output") == target \
                and remove_job(path):
            removed.append(path)
    return removed


def removable(job: JobDir, older_than_days: float | None, now: float) -> str | None:
    """Why ``clean`` removes this job directory, or None to keep it."""
    if job.state == "running":
        return None
    if job.state == "finished":
        return "finished"
    if job.state == "orphaned":
        return f"input {job.why}" if job.why in ("missing", "changed") else job.why
    if older_than_days is not None and now - job.changed > older_than_days * 86400:
        return f"unchanged for over {older_than_days:g} days"
    return None


def clean(root: Path, older_than_days: float | None = None) -> list[tuple[JobDir, str]]:
    """Remove the finished, orphaned and (with ``older_than_days``) stale job directories, never
    one a live run holds; then the lock files that killed runs left. Returns what went, why."""
    now = time.time()
    removed = []
    for job in list_jobs(root):
        reason = removable(job, older_than_days, now)
        if reason is not None and remove_job(job.path):
            removed.append((job, reason))
    locks = root / LOCK_DIR
    for path in sorted(locks.glob("*.lock")) if locks.is_dir() else []:
        fd = try_flock(path, create=False)
        if fd is not None:
            path.unlink(missing_ok=True)
            os.close(fd)
    try:
        locks.rmdir()
    except OSError:  # absent, or a live run's lock is in it
        pass
    return removed


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def _dirs(n: int) -> str:
    return f"{n} job director{'y' if n == 1 else 'ies'}"


def format_jobs(jobs: list[JobDir], root: Path) -> str:
    """A table of ``work list``: one line per job directory, then the total."""
    if not jobs:
        return f"no job directories in {root}"
    rows = [("job", "state", "frames", "size", "last change", "input", "output")]
    for job in jobs:
        state = f"running (pid {job.pid})" if job.state == "running" else job.state
        frames = f"{job.frames}/{job.total}" if job.total is not None else str(job.frames)
        if job.state == "finished" and job.frames == 0:
            frames = f"{job.total}/{job.total}" if job.total is not None else "all"
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.changed))
        rows.append((job.path.name, state, frames, _mib(job.size), stamp,
                     f"{job.input or '?'} ({job.why})", job.output or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    lines.append(f"{_dirs(len(jobs))}, {_mib(sum(j.size for j in jobs))} in {root}")
    return "\n".join(lines)


def format_removed(removed: list[tuple[JobDir, str]], root: Path) -> str:
    lines = [f"removed {job.path.name} ({why}, {_mib(job.size)})" for job, why in removed]
    lines.append(f"removed {_dirs(len(removed))} from {root}, freed "
                 f"{_mib(sum(job.size for job, _ in removed))}")
    return "\n".join(lines)


def dump(jobs: list[JobDir]) -> str:
    return json.dumps({"jobs": [j.to_dict() for j in jobs]}, indent=2)
