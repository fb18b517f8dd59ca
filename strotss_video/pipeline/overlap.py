"""Overlap I/O with optimisation: decode ahead in one thread, commit finished frames in another.

Both queues are bounded, so memory stays flat whatever the clip's length; errors in a worker
thread are re-raised in the caller. Decoding (PyAV) and PNG/npz writing (OpenCV, zlib, fsync)
release the GIL, so on a GPU they run while the device optimises the current frame."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_END = object()


class Prefetch(Generic[T]):
    """Iterate ``source`` in a background thread, up to ``depth`` items ahead."""

    def __init__(self, source: Iterator[T], depth: int = 2) -> None:
        self._source = source
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="strotss-decode", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(exc)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Committer:
    """Run ``commit(*args)`` calls in order in one background thread (at most ``depth``
    waiting). :meth:`drain` waits for all of them and re-raises the first error."""

    def __init__(self, commit: Callable[..., None], depth: int = 2) -> None:
        self._commit = commit
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="strotss-commit", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            args = self._queue.get()
            if args is _END:
                return
            if self._error is None:
                try:
                    self._commit(*args)
                except BaseException as exc:  # noqa: BLE001 - re-raised by submit/drain
                    self._error = exc

    def submit(self, *args: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(args)

    def drain(self) -> None:
        """Finish every submitted commit (also after Ctrl-C: finished work is kept)."""
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Committer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.drain()
        else:
            try:
                self.drain()
            except BaseException:  # noqa: BLE001 - the original error matters more
                pass
