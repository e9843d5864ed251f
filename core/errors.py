"""One exception hierarchy; each class carries its sysexits-style exit code.

The CLI maps any VecpipeError to one line on stderr and its exit code; core
raises these and never exits or prints.
"""
from __future__ import annotations

import os
import re

EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_INTERRUPTED = 130


class VecpipeError(Exception):
    """Base class: a problem the user can act on, reported without a traceback."""

    exit_code = EX_SOFTWARE


class UsageError(VecpipeError):
    """Options that do not fit together, or an unknown format name."""

    exit_code = EX_USAGE


class DataError(VecpipeError):
    """Input that cannot be parsed; says where (file:line) and what is wrong."""

    exit_code = EX_DATAERR

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class NoInputError(VecpipeError):
    """A named input file or model does not exist."""

    exit_code = EX_NOINPUT


class UnavailableError(VecpipeError):
    """A model or service that is needed cannot be reached or loaded."""

    exit_code = EX_UNAVAILABLE


class OutputError(VecpipeError):
    """Writing the output failed (disk full, permission, unwritable place)."""

    exit_code = EX_IOERR


class CannotCreateError(VecpipeError):
    """An output cannot be created where it was asked for: it would replace
    something vecpipe did not make (a folder, a file where a vecdir goes), or
    its folder cannot be made."""

    exit_code = EX_CANTCREAT


class LockedError(VecpipeError):
    """Another run holds the lock on the same output (try again later)."""

    exit_code = EX_TEMPFAIL


def error_gist(exc: BaseException, limit: int = 200) -> str:
    """The gist of a library's exception: its first line, no terminal colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    line = text.splitlines()[0].strip() if text else ""
    if len(line) > limit:
        line = line[: limit - 3].rstrip() + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
