"""One run per job and per output: advisory locks that die with the process holding them.

A lock is an exclusive ``flock`` on a small file holding its holder's pid (for the refusal
message). The kernel drops it when the holder exits, however it exits (crash, SIGKILL), so a
lock file left behind never blocks anyone: only a live process does. A stopped process
(SIGSTOP) still holds its locks, so a second run refuses rather than taking over its frames.

Two locks guard a video job, both held from planning until its output is written: the job's
(``lock`` in its work directory) and its output's (``.locks/output-<hash>.lock`` under the work
root, keyed by the output's resolved path: nothing is written beside the user's files). The
process that plans a job holds them; its worker processes take none, so a batch's workers
never lock each other out."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from types import TracebackType

from ..errors import BusyError, StrotssError
from ..files import try_flock

LOCK_FILE = "lock"
"""The job lock's name inside a job's work directory."""
LOCK_DIR = ".locks"
"""The folder of output locks under the work root."""


class RunLock:
    """An exclusive lock on ``path``, held until :meth:`release` (or the process ends)."""

    def __init__(self, path: Path, fd: int, prune: bool) -> None:
        self.path = path
        self._fd: int | None = fd
        self._prune = prune  # remove the (then empty) parent folder on release

    def release(self) -> None:
        """Remove the lock file, then unlock: a run that opened it meanwhile finds it gone and
        locks a new one (see :func:`strotss_video.files.try_flock`)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        if self._prune:
            try:
                self.path.parent.rmdir()
            except OSError:  # other locks are in it, or it is already gone
                pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def acquire(path: Path, prune: bool = False) -> RunLock | None:
    """Lock ``path`` (created if needed) without waiting and write our pid into it; None when a
    live process holds it."""
    try:
        fd = try_flock(path)
    except OSError as exc:
        raise StrotssError(f"cannot create the lock file {path}: {exc.strerror}; fix the work "
                           "directory (--work-dir)") from None
    if fd is None:
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return RunLock(path, fd, prune)


def holder(path: Path) -> str:
    """The pid written in a held lock file ("?" if the holder has not written it yet)."""
    for _ in range(20):
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            text = ""
        if text.isdigit():
            return text
        time.sleep(0.01)  # the holder truncates, then writes: a moment between the two
    return "?"


def lock_job(job_dir: Path) -> RunLock:
    """The job's lock (its work directory is created if needed), or a one-line BusyError."""
    path = job_dir / LOCK_FILE
    lock = acquire(path)
    if lock is None:
        raise BusyError(f"another run (pid {holder(path)}) is working on this job; wait for it "
                        "or pass --work-dir")
    return lock


def output_lock_path(work_root: Path, output: Path) -> Path:
    key = hashlib.sha256(str(output.resolve()).encode()).hexdigest()[:32]
    return work_root / LOCK_DIR / f"output-{key}.lock"


def lock_output(work_root: Path, output: Path) -> RunLock:
    """The output's lock, or a one-line BusyError naming the run that is writing it."""
    path = output_lock_path(work_root, output)
    lock = acquire(path, prune=True)
    if lock is None:
        raise BusyError(f"another run (pid {holder(path)}) is writing {output}; wait for it or "
                        "choose another output")
    return lock


def is_locked(path: Path) -> str | None:
    """The holder's pid if a live process holds the lock file ``path``, else None. Takes the
    lock for an instant when it is free, so it never creates or removes the file."""
    try:
        fd = try_flock(path, create=False)
    except OSError:
        return None
    if fd is not None:
        os.close(fd)
        return None
    return holder(path) if path.exists() else None


def remove_stale_parts(output: Path) -> list[Path]:
    """Remove the hidden temporary files of ``output`` (``.NAME.<8 hex>.part`` beside it, the
    video writer's naming) that killed runs left; a live writer's (locked) are kept."""
    pattern = re.compile(rf"\.{re.escape(output.name)}\.[0-9a-f]{{8}}\.part")
    removed = []
    try:
        candidates = [p for p in output.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return []
    for part in candidates:
        try:
            fd = try_flock(part, create=False)
        except OSError:  # not a file of ours (a folder, another user's): leave it
            continue
        if fd is None:
            continue
        try:
            part.unlink(missing_ok=True)
            removed.append(part)
        finally:
            os.close(fd)
    return removed
