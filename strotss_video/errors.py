"""Exception hierarchy. Every error a user can cause is a :class:`StrotssError` whose
message is one line that says what to do; the CLI prints it without a traceback."""

from __future__ import annotations

import signal
import threading

QUOTE_LIMIT = 80
"""Longest piece of a user's value an error message repeats: a hostile value (a YAML alias
bomb, a megabyte string) must not become a megabyte error line."""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)``, cut to ``limit`` characters with an ellipsis."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 1]}…"


class StrotssError(Exception):
    """A failure the user should see as one line. Exit code 1 (a run that failed)."""

    exit_code: int = 1


class UsageError(StrotssError):
    """Bad arguments, options or input files. Exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """An invalid configuration value, preset, YAML file or unknown key."""


class InputError(UsageError):
    """An input file that is missing, unreadable or of the wrong kind."""


class OutputError(UsageError):
    """An output path that cannot or must not be written."""


class BusyError(StrotssError):
    """Another live process is working on the same job or output. Exit code 1."""


class WeightsError(StrotssError):
    """The VGG16 weights could not be resolved from any source."""


class OutOfMemory(StrotssError):
    """A run that ran out of RAM or GPU memory; the message says what to lower. Exit code 1."""


class Interrupted(StrotssError):
    """Ctrl-C or SIGTERM during a run; finished work is kept. Exit code 130."""

    exit_code = 130

    def __init__(self, message: str, work_dir: str | None = None) -> None:
        super().__init__(message)
        self.work_dir = work_dir


class Notice(UserWarning):
    """Something the user should know about a run that goes on (the CLI prints it as a
    ``note:`` line), e.g. scales dropped because the frame is too small for them."""


_STOP = threading.Event()


def note_stop() -> None:
    """Remember that the user asked to stop (without raising)."""
    _STOP.set()


def check_stop() -> None:
    """Raise KeyboardInterrupt if a stop was asked for. Called between optimisation steps and
    frames, so that a stop request survives a KeyboardInterrupt that some library code caught
    and dropped: seen here once in 16 tries, a SIGINT in the first seconds of a run (while
    torch imports its compiler stack lazily) after which the run went on to the end."""
    if _STOP.is_set():
        raise KeyboardInterrupt


def reset_stop() -> None:
    _STOP.clear()


def _on_signal(signum: int, frame: object) -> None:
    _STOP.set()
    raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C


def install_stop_handlers() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt and are remembered (see :func:`check_stop`).
    Only from the main thread (a no-op elsewhere, where Python allows no handlers)."""
    if threading.current_thread() is threading.main_thread():
        reset_stop()
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
