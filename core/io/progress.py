"""Progress bars on stderr, shown only when the current environment says so
(stderr is a terminal and -q was not given; core/io/env.py)."""
from __future__ import annotations

from vecpipe.core.io.env import current


def enabled() -> bool:
    return current().progress_enabled


def progress(iterable=None, **kwargs):
    """tqdm when enabled, else the iterable itself (or a no-op bar)."""
    env = current()
    if env.progress_enabled:
        from tqdm import tqdm

        return tqdm(iterable, file=env.stderr, dynamic_ncols=True, **kwargs)
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
