"""Checking a file before it enters the cache: by the catalog's sha256 when
known, else by its size when known and by reading compressed streams to their
end, so a truncated file never passes as complete."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from vecpipe.core.errors import DataError
from vecpipe.core.fetch.catalog import Entry
from vecpipe.core.io.compression import compression_by_name, compression_of
from vecpipe.core.io.progress import progress

BLOCK = 1 << 20  # bytes read at a time for hashing and stream checks


def sha256_file(path: Path, desc: str | None = None) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    bar = progress(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"{desc or path.name}: sha256", leave=False)
    try:
        with open(path, "rb") as fh:
            while True:
                block = fh.read(BLOCK)
                if not block:
                    break
                h.update(block)
                bar.update(len(block))
    finally:
        bar.close()
    return h.hexdigest()


def file_compression(path: Path) -> str | None:
    """'bz2', 'gz', 'xz', 'zip' or None, by the file's magic bytes."""
    with open(path, "rb") as fh:
        return compression_of(fh.read(8))


def check_complete(path: Path, desc: str, shown=None) -> None:
    """Read a compressed file to its end: a truncated or damaged stream raises
    DataError naming `shown` (default `path`). Plain files pass (nothing to
    check without a checksum)."""
    kind = file_compression(path)
    if kind is None:
        return
    name = str(shown or path)
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"{desc}: not a complete zip archive ({exc}); truncated download?", name) from None
        if bad is not None:
            raise DataError(f"{desc}: zip member {bad!r} is damaged (CRC mismatch)", name)
        return
    import bz2
    import gzip
    import lzma

    opener = {"bz2": bz2.open, "gz": gzip.open, "xz": lzma.open}[kind]
    bar = progress(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=f"{desc}: checking the {kind} stream", leave=False)
    try:
        with open(path, "rb") as raw, opener(raw, "rb") as fh:
            last = 0
            while fh.read(BLOCK * 8):
                pos = raw.tell()
                bar.update(pos - last)
                last = pos
    except (EOFError, OSError, lzma.LZMAError, ValueError) as exc:
        incomplete = "" if shown else "; the download is incomplete"
        raise DataError(f"{desc}: the {kind} stream is truncated or damaged ({exc}){incomplete}", name) from None
    finally:
        bar.close()


def _check_compressed_as_named(e: Entry, path: Path, what: str) -> None:
    """A server (a proxy, a captive portal) may answer 200 with an HTML page: a
    file named .bz2/.gz/.xz/.zip that does not start as one is refused, even
    where no checksum is known."""
    named = compression_by_name(e.cache_filename)
    if named is None or file_compression(path) == named:
        return
    with open(path, "rb") as fh:
        head = fh.read(24).decode("utf-8", "replace")
    raise DataError(f"{e.name}: {what} is not the {named} file its name {e.cache_filename} says "
                    f"(it starts with {head!r}: an error page?)")


def verify(e: Entry, path: Path, what: str, shown=None) -> str:
    """Check `path` against the entry; on failure delete it (it is never a cache
    file yet) and raise DataError. `shown`: the user's file that `path` copies
    (--from), named in the message and left alone. Returns how it was verified."""
    try:
        size = path.stat().st_size
        if size == 0:  # never a usable file; without a size or checksum nothing else would catch it
            raise DataError(f"{e.name}: {what} is empty", shown)
        if e.size is not None and size != e.size:
            raise DataError(f"{e.name}: {what} has {size} bytes, the catalog says {e.size}", shown)
        if shown is None:  # a download: its catalog name says how it is compressed (--from keeps the user's own)
            _check_compressed_as_named(e, path, what)
        if e.sha256:
            got = sha256_file(path, e.name)
            if got != e.sha256:
                raise DataError(f"{e.name}: sha256 mismatch: {what} is {got}, the catalog says {e.sha256}", shown)
            return "sha256"
        if e.archive:
            return "archive"  # extraction reads it all and refuses a truncated or damaged archive
        check_complete(path, e.name, shown)
        return "complete-stream" if file_compression(path) else "size" if e.size is not None else "none"
    except DataError as exc:
        path.unlink(missing_ok=True)
        kept = f"{shown} was left as it is" if shown else "the partial file was deleted"
        raise DataError(f"{exc}; {kept}, nothing entered the cache") from None
