"""The one bad-record policy (--on-error stop|skip), shared by every reader:
word-vector formats, evaluation datasets, encode's records."""
from __future__ import annotations

import logging

from vecpipe.core.errors import DataError, UsageError

log = logging.getLogger("vecpipe")

ON_ERROR = ("stop", "skip")


class OnError:
    """Raise the first DataError (stop), or warn about the first few and count
    them all (skip). Call it with a DataError, or with a message and a line
    number of the input named `name`."""

    shown = 5  # warnings printed before the rest are only counted

    def __init__(self, mode: str = "stop", name: str | None = None):
        if mode not in ON_ERROR:
            raise UsageError(f"--on-error must be stop or skip, not {mode!r}")
        self.skip = mode == "skip"
        self.name = name
        self.count = 0

    def __call__(self, err: DataError | str, line: int | None = None) -> None:
        if not isinstance(err, DataError):
            err = DataError(err, self.name, line)
        if not self.skip:
            raise err
        self.count += 1
        if self.count <= self.shown:
            log.warning("skipped: %s", err)
