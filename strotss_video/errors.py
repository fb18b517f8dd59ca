"""Exception hierarchy. Every error a user can cause is a :class:`StrotssError` whose
message is one line that says what to do; the CLI prints it without a traceback."""

from __future__ import annotations


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


class WeightsError(StrotssError):
    """The VGG16 weights could not be resolved from any source."""


class Interrupted(StrotssError):
    """Ctrl-C or SIGTERM during a run; finished work is kept. Exit code 130."""

    exit_code = 130

    def __init__(self, message: str, work_dir: str | None = None) -> None:
        super().__init__(message)
        self.work_dir = work_dir
