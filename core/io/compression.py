"""Compressed files: the one table of magic bytes and name suffixes.

Input is recognised by its magic bytes (so a compressed stream on stdin works);
names only matter for choosing an output's compression and for stripping the
suffix before looking at the rest of a name (format detection, dataset names)."""
from __future__ import annotations

from pathlib import Path

MAGIC = {
    b"BZh": "bz2",
    b"\x1f\x8b": "gz",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip",
}
SUFFIXES = {".bz2": "bz2", ".gz": "gz", ".xz": "xz", ".zip": "zip"}


def compression_of(head: bytes) -> str | None:
    """'bz2', 'gz', 'xz', 'zip' or None, from the first bytes of a file."""
    return next((kind for magic, kind in MAGIC.items() if head.startswith(magic)), None)


def compression_by_name(name) -> str | None:
    return SUFFIXES.get(Path(str(name)).suffix.lower())


def strip_compression_suffix(name: str) -> str:
    """'sgns.zhihu.word.bz2' -> 'sgns.zhihu.word'; other names unchanged (the file part only)."""
    p = Path(name)
    return p.stem if p.suffix.lower() in SUFFIXES else p.name
