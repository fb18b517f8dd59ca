"""The work directory of one video job: finished frames, the chain's resume state, records.

One mechanism serves single runs, batch runs and resumes. Layout (every file written
atomically, so a crash or a kill at any moment leaves a consistent directory)::

    lock                 held (flock, with the holder's pid) by the one run working on the job
    job.json             what the job is (key, input and its fingerprint, output, style, range);
                         checked on reuse
    shots.json           the shot list, fixed by the first run
    frames/NNNNNNNN.png  finished output frames, lossless, at the output size
    state/NNNNNNNN.npz   the temporal chain after frame N (float outputs, uint8 inputs, records)
    shots/NNNN.json      a finished shot's frame records
    done.json            the output was encoded (kept when the frames are removed)

A frame counts as finished once its PNG exists. Its state is written first and the previous
state removed last, so the newest finished frame always has its state beside it. A file damaged
later (a full disk, a bad sector, a hand edit) is found on resume by :meth:`WorkDir.meta_problem`,
:meth:`WorkDir.first_damaged_frame` and :meth:`WorkDir.state_damaged`."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import re
import shutil
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError, StrotssError
from ..files import atomic_write_bytes
from ..io.image import intact_png_size, read_png_rgb, write_png_rgb
from .layout import LAYOUT_VERSION, default_work_root, input_fingerprint
from .locks import LOCK_FILE

__all__ = ["LAYOUT_VERSION", "WorkDir", "default_work_root", "digest", "file_digest",
           "input_fingerprint", "job_dir_name"]


def digest(value: Any) -> str:
    """SHA-256 of a JSON-serialisable value in canonical form."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (style images: small)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def job_dir_name(input_path: Path, key: str) -> str:
    """A safe single path component: the input's stem (sanitised) and the key's prefix."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", input_path.stem)[:40].strip("_") or "video"
    return f"{stem}-{key[:16]}"


def _disk_error(exc: OSError, where: Path) -> StrotssError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StrotssError(f"disk full while writing {where}; free some space and run the same "
                            "command again to resume (finished frames are kept)")
    return StrotssError(f"cannot write {where}: {exc.strerror}; fix the work directory "
                        "(--work-dir) and run again to resume")


class WorkDir:
    """Access to one job's work directory (see the module docstring for the layout)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.frames = self.path / "frames"
        self.states = self.path / "state"
        self.shot_dir = self.path / "shots"

    # -- creation and identity ---------------------------------------------------------------
    @classmethod
    def open(cls, root: Path, name: str, meta: dict[str, Any], fresh: bool = False) -> WorkDir:
        """Open (or create) ``root/name`` for the job described by ``meta`` (its ``key`` decides
        reuse, its ``fingerprint`` whether the input is still the same). ``fresh`` discards
        what a previous run left. The caller holds the job's lock."""
        if Path(name).name != name or name in ("", ".", ".."):
            raise OutputError(f"invalid work directory name {name!r}")
        root = Path(root)
        path = root / name
        try:
            root.mkdir(parents=True, exist_ok=True)
            work = cls(path)
            if path.exists() and (fresh or work._belongs_elsewhere(meta)):
                work.clear()
            for d in (path, work.frames, work.states, work.shot_dir):
                d.mkdir(exist_ok=True)  # mode from the user's umask
                for stale in d.glob(".*.part"):  # a killed run's half-written file
                    stale.unlink(missing_ok=True)
            if work.meta() is None:
                atomic_write_bytes(path / "job.json", json.dumps(meta, indent=2).encode())
        except OSError as exc:
            raise _disk_error(exc, path) from None
        return work

    def _belongs_elsewhere(self, meta: dict[str, Any]) -> bool:
        """Whether what the directory holds was made for another job than ``meta``: another
        key under the same name, an unreadable record, or the same input path whose content
        changed since (said in one warning line: its frames are discarded)."""
        existing = self.meta()
        if existing is None or existing.get("key") != meta["key"]:
            return True
        if existing.get("fingerprint") == meta.get("fingerprint"):
            return False
        done = sum(1 for _ in self.frames.glob("*.png"))
        lost = f" ({done} finished frames discarded)" if done else ""
        warnings.warn(f"{meta.get('input')} changed since this job's work directory was made; "
                      f"starting the job over{lost}", stacklevel=2)
        return True

    def clear(self) -> None:
        """Remove everything but the lock file (removing a held lock would let a second run
        lock a new file beside this one's)."""
        for child in self.path.iterdir():
            if child.name == LOCK_FILE:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def meta(self) -> dict[str, Any] | None:
        return self._read_json(self.path / "job.json")

    @staticmethod
    def _read_json(path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _write_json(self, path: Path, value: Any) -> None:
        try:
            atomic_write_bytes(path, json.dumps(value, indent=2).encode())
        except OSError as exc:
            raise _disk_error(exc, path) from None

    # -- shots -------------------------------------------------------------------------------
    def stored_shots(self) -> list[dict[str, Any]] | None:
        return self._read_json(self.path / "shots.json")

    def has_stored_shots(self) -> bool:
        """Whether a shot list was stored (sound or not: :meth:`stored_shots` reads it)."""
        return (self.path / "shots.json").exists()

    def store_shots(self, shots: list[dict[str, Any]]) -> None:
        self._write_json(self.path / "shots.json", shots)

    def _shot_file(self, index: int) -> Path:
        return self.shot_dir / f"{index:04d}.json"

    def shot_done(self, index: int) -> bool:
        return self._shot_file(index).is_file()

    def shot_records(self, index: int) -> list[dict[str, Any]] | None:
        return self._read_json(self._shot_file(index))

    def finish_shot(self, index: int, records: list[dict[str, Any]], last_frame: int) -> None:
        """Record a finished shot, then drop its last chain state (no longer needed)."""
        self._write_json(self._shot_file(index), records)
        self.state_path(last_frame).unlink(missing_ok=True)

    # -- frames ------------------------------------------------------------------------------
    def frame_path(self, index: int) -> Path:
        return self.frames / f"{index:08d}.png"

    def state_path(self, index: int) -> Path:
        return self.states / f"{index:08d}.npz"

    def has_frame(self, index: int) -> bool:
        return self.frame_path(index).is_file()

    def finished_prefix(self, start: int, end: int) -> int:
        """How many frames of ``[start, end)`` are finished, counting from ``start``."""
        n = 0
        while start + n < end and self.has_frame(start + n):
            n += 1
        return n

    def read_frame(self, index: int) -> np.ndarray | None:
        """uint8 RGB (H,W,3) of a finished frame, or None."""
        return read_png_rgb(self.frame_path(index))

    def commit_frame(self, index: int, image: np.ndarray, state: dict[str, np.ndarray],
                     records: list[dict[str, Any]], previous: int | None) -> None:
        """Persist frame ``index``: its chain state, then its PNG (the 'finished' mark), then
        remove the state of ``previous`` (the frame before it in the shot)."""
        buffer = io.BytesIO()
        payload: dict[str, Any] = dict(state)
        payload["records"] = np.frombuffer(json.dumps(records).encode(), dtype=np.uint8)
        np.savez(buffer, **payload)
        try:
            atomic_write_bytes(self.state_path(index), buffer.getvalue())
            write_png_rgb(self.frame_path(index), image)
        except OSError as exc:
            raise _disk_error(exc, self.path) from None
        if previous is not None:
            self.state_path(previous).unlink(missing_ok=True)

    def load_state(self, index: int) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]] | None:
        """(chain arrays, records so far) saved with frame ``index``; None if absent/damaged."""
        try:
            with np.load(self.state_path(index), allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}  # reads (and CRC-checks) every array
            records = json.loads(arrays.pop("records").tobytes().decode())
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error):
            return None
        if not isinstance(records, list):
            return None
        return arrays, records

    # -- checks on resume --------------------------------------------------------------------
    def meta_problem(self) -> str | None:
        """Why an existing ``job.json`` cannot be trusted, or None (sound, or not written yet)."""
        path = self.path / "job.json"
        if not path.exists():
            return None
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            return f"job.json cannot be read ({exc.strerror})"
        except ValueError:
            return "job.json is not valid JSON"
        if not isinstance(value, dict) or not isinstance(value.get("key"), str):
            return "job.json does not describe a job"
        return None

    def first_damaged_frame(self, start: int, end: int, size: tuple[int, int]) -> int | None:
        """The first frame of ``[start, end)`` whose PNG is missing, incomplete, fails its
        checksums or is not ``size`` (H, W); None when all are sound."""
        for i in range(start, end):
            if intact_png_size(self.frame_path(i)) != size:
                return i
        return None

    def state_damaged(self, index: int) -> bool:
        """Whether frame ``index``'s state file exists but cannot be loaded."""
        return self.state_path(index).exists() and self.load_state(index) is None

    def reopen_shot(self, index: int) -> None:
        """Forget that shot ``index`` was finished (its frames are then checked and redone)."""
        self._shot_file(index).unlink(missing_ok=True)

    def discard_frames(self, start: int, end: int) -> None:
        """Remove frames and states of ``[start, end)`` (a shot redone from its start)."""
        for i in range(start, end):
            self.frame_path(i).unlink(missing_ok=True)
            self.state_path(i).unlink(missing_ok=True)

    # -- completion --------------------------------------------------------------------------
    def mark_done(self, info: dict[str, Any]) -> None:
        self._write_json(self.path / "done.json", info)

    def done_info(self) -> dict[str, Any] | None:
        return self._read_json(self.path / "done.json")

    def remove_frames(self) -> None:
        """Free the space of frames, states and records; ``job.json``/``done.json`` stay."""
        for d in (self.frames, self.states, self.shot_dir):
            shutil.rmtree(d, ignore_errors=True)
