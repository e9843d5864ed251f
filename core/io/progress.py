"""Progress bars on stderr, shown only when stderr is a terminal and not silenced."""
from __future__ import annotations

import sys

_enabled: bool | None = None  # None: decide by isatty at use


def set_enabled(value: bool | None) -> None:
    global _enabled
    _enabled = value


def enabled() -> bool:
    if _enabled is not None:
        return _enabled
    return sys.stderr.isatty()


def progress(iterable=None, **kwargs):
    """tqdm when enabled, else the iterable itself (or a no-op bar)."""
    if enabled():
        from tqdm import tqdm

        return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, **kwargs)
    return iterable if iterable is not None else _NoBar()


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
