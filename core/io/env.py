"""The runtime state of one invocation, after httpie's `Environment`: the
streams, whether each is a terminal, verbosity, quiet, debug and progress.

The CLI makes one per run (tests pass their own) and makes it current with
`env.activate()`; core asks `current()` instead of reading module globals, so
nothing a run sets (`-q`, `--debug`) outlives it. It lives in core, not cli,
because core code (progress bars) reads it and core never imports click."""
from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from dataclasses import dataclass, field
from typing import IO


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed, or a stream without isatty
        return False


def _binary(stream):
    # the bytes under a text stream (CliRunner and pytest both give one)
    return getattr(stream, "buffer", stream)


@dataclass
class Environment:
    """stdin/stdout carry data (bytes); stderr carries messages (text, what
    logging, click and tqdm write). The isatty flags are measured once, at
    creation, and can be set by a test that wants a "terminal"."""

    stdin: IO[bytes] = field(default_factory=lambda: _binary(sys.stdin))
    stdout: IO[bytes] = field(default_factory=lambda: _binary(sys.stdout))
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    stdin_isatty: bool | None = None
    stdout_isatty: bool | None = None
    stderr_isatty: bool | None = None
    verbosity: int = 0
    quiet: bool = False
    debug: bool = field(default_factory=lambda: bool(os.environ.get("VECPIPE_DEBUG")))
    #: None: bars show when stderr is a terminal and not quiet; True/False forces it
    progress: bool | None = None

    def __post_init__(self):
        for name in ("stdin", "stdout", "stderr"):
            if getattr(self, f"{name}_isatty") is None:
                setattr(self, f"{name}_isatty", _isatty(getattr(self, name)))

    @property
    def progress_enabled(self) -> bool:
        if self.progress is not None:
            return self.progress
        return self.stderr_isatty and not self.quiet

    @contextlib.contextmanager
    def activate(self):
        """Make this the current environment for the `with` block (this thread or task only)."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)


_current: contextvars.ContextVar[Environment | None] = contextvars.ContextVar("vecpipe_env", default=None)


def current() -> Environment:
    """The environment of the running invocation; outside one (core used as a
    library), a fresh one on the process's own streams."""
    env = _current.get()
    return env if env is not None else Environment()
