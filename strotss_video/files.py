"""Atomic file writes and advisory file locks, shared by every stage that writes (no foreign
libraries)."""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename into place, so a
    crash never leaves a partial file at ``path``. ``mode`` sets the permissions; by default
    those of a plain new file under the user's umask (mkstemp alone would give 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def try_flock(path: Path, create: bool = True) -> int | None:
    """An open descriptor of ``path`` holding an exclusive ``flock``, or None when a live
    process holds it (or, with ``create`` false, when there is no such file). The kernel drops
    the lock with its holder, so a file left by a killed process never blocks anyone.

    A file unlinked between our open and our lock guards nothing: the lock is taken again on
    whatever the path names then, so holders may remove their lock file when they finish."""
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    for _ in range(20):
        try:
            fd = os.open(path, flags, 0o666)
        except FileNotFoundError:
            if not create:
                return None
            path.parent.mkdir(parents=True, exist_ok=True)  # removed meanwhile: make it again
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # removed or replaced since our open: lock what the path names now
    raise OSError(errno.EAGAIN, f"{path} keeps being replaced")


def create_held(path: Path) -> int:
    """Create ``path`` (it must not exist) and hold an exclusive ``flock`` on it until the
    returned descriptor is closed: marks a temporary file as in use by a live writer."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` onto ``path``. Without ``overwrite`` this is atomic only-if-absent
    (a hard link, which fails when ``path`` exists): FileExistsError, ``tmp`` left in place, if
    another process created ``path`` meanwhile."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # No hard links on this file system (FAT, some network mounts): claim the name with an
        # exclusive create, then rename onto the placeholder.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.replace(tmp, path)
        return
    os.unlink(tmp)
