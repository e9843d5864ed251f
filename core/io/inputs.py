"""Reading inputs: a file or stdin as bytes, decompressed by its magic bytes,
without a UTF-8 byte-order mark; its lines and records (JSONL or plain text)."""
from __future__ import annotations

import io
import logging
from typing import IO, Iterator

import orjson

from vecpipe.core.io.env import current
from vecpipe.core.errors import DataError, NoInputError, UsageError
from vecpipe.core.io.compression import compression_of

log = logging.getLogger("vecpipe")

UTF8_BOM = b"\xef\xbb\xbf"


#: paths of stdin copies (stdin_copy) -> the open temporary file behind each
_STDIN_COPIES: dict[str, IO[bytes]] = {}


def display_name(path) -> str:
    return "<stdin>" if path in (None, "-") or is_stdin_copy(path) else str(path)


def is_stdin_copy(path) -> bool:
    return path is not None and str(path) in _STDIN_COPIES


def stdin_copy() -> str:
    """stdin (decompressed) copied into an unnamed temporary file
    (outputs.unnamed_temporary), as a path that opens again from the start:
    for an input read more than once, such as an eval dataset given as '-'."""
    import atexit
    import os
    import shutil

    from vecpipe.core.io.outputs import unnamed_temporary

    fd, path, name = unnamed_temporary("vecpipe-stdin-")
    fh = open(fd, "w+b")
    shutil.copyfileobj(open_input("-"), fh, 1 << 20)
    fh.flush()
    if name is not None:  # pragma: no cover - not Linux
        atexit.register(os.unlink, name)
    _STDIN_COPIES[path] = fh  # kept open: the path lives as long as the file
    return path


def _peekable(raw: IO[bytes]) -> io.BufferedReader:
    return raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, buffer_size=1 << 20)


def open_input(path) -> io.BufferedReader:
    """Open a file or '-' (stdin) for binary reading, decompressing .bz2/.gz/.xz/.zip
    transparently. Compression is recognised by its magic bytes, not by the name, so
    a compressed stream on stdin works too. A leading UTF-8 byte-order mark is
    dropped. A truncated or corrupt compressed stream raises DataError naming the
    input when it is read. The result supports peek()."""
    name = display_name(path)
    if path in (None, "-"):
        env = current()
        if env.stdin_isatty:  # else a command run without its input seems to hang
            log.warning("reading the input from the terminal: type it, then Ctrl-D (or give a file or a pipe)")
        raw = _peekable(env.stdin)  # the invocation's stdin (tests pass their own)
    else:
        try:
            raw = open(path, "rb", buffering=1 << 20)
        except FileNotFoundError:
            raise NoInputError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{name}: is a directory") from None
        except PermissionError:
            raise NoInputError(f"{name}: permission denied") from None
    head = raw.peek(8)[:8]
    kind = compression_of(head)
    if kind is None:
        fh = raw
    elif kind == "bz2":
        import bz2

        fh = _peekable(_Decompressed(bz2.BZ2File(raw), name, kind, raw))
    elif kind == "gz":
        import gzip

        fh = _peekable(_Decompressed(gzip.GzipFile(fileobj=raw), name, kind, raw))
    elif kind == "xz":
        import lzma

        fh = _peekable(_Decompressed(lzma.LZMAFile(raw), name, kind, raw))
    else:
        fh = _open_zip_member(raw, name)
    skip_bom(fh)
    return fh


UTF8_BOM = b"\xef\xbb\xbf"


def skip_bom(fh: io.BufferedReader) -> None:
    """Drop a UTF-8 byte-order mark at the current position (it is not text)."""
    if fh.peek(3)[:3] == UTF8_BOM:
        fh.read(3)


def _decompress_errors() -> tuple:
    import lzma
    import zipfile
    import zlib

    return (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)


def _bad_compressed(exc: BaseException, name: str, kind: str) -> DataError:
    return DataError(f"cannot read the {kind} data: {exc} (truncated or corrupt file?)", name)


class _Decompressed(io.RawIOBase):
    """A decompressing reader whose truncated or corrupt data is a DataError
    naming the input (EOFError would otherwise pass for an interruption)."""

    def __init__(self, stream, name: str, kind: str, *below):
        self._stream, self._name, self._kind = stream, name, kind
        self._below = below  # what the decompressor does not close itself

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            return self._stream.readinto(b)
        except OSError as exc:
            if exc.errno is not None:  # a real I/O error of the file below
                raise
            raise _bad_compressed(exc, self._name, self._kind) from None
        except _decompress_errors() as exc:
            raise _bad_compressed(exc, self._name, self._kind) from None

    def close(self) -> None:
        try:
            self._stream.close()
            for fh in self._below:
                fh.close()
        finally:
            super().close()


def _open_zip_member(raw, name: str) -> io.BufferedReader:
    import zipfile

    if not raw.seekable():
        # zip needs its central directory at the end of the file
        raw = io.BytesIO(raw.read())
    try:
        zf = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise _bad_compressed(exc, name, "zip") from None
    members = [m for m in zf.infolist() if not m.is_dir()]
    if len(members) != 1:
        listed = ", ".join(m.filename for m in members[:5])
        raise DataError(f"zip archive holds {len(members)} files ({listed}); extract the one you want", name)
    return _peekable(_Decompressed(zf.open(members[0]), name, "zip", zf, raw))


def iter_lines(fh: IO[bytes], name: str, *, unicode_errors: str = "strict") -> Iterator[tuple[int, str]]:
    """(line number, text) for each line, without its line ending (LF or CRLF)
    (and without a UTF-8 byte-order mark before the first)."""
    for n, raw in enumerate(fh, 1):
        if n == 1:
            raw = raw.removeprefix(UTF8_BOM)
        try:
            text = raw.decode("utf-8", unicode_errors)
        except UnicodeDecodeError as exc:
            raise DataError(f"invalid UTF-8 at byte {exc.start} of the line (try --unicode-errors replace)", name, n) from None
        yield n, text.rstrip("\r\n")


def read_records(fh: IO[bytes], name: str, *, text_field: str = "text", unicode_errors: str = "strict") -> Iterator[dict]:
    """JSONL objects, or plain text lines turned into {text_field: line}.

    The kind is decided once from the first non-blank byte: '{' means JSONL.
    Blank lines are skipped in both kinds."""
    for _, rec in read_numbered_records(fh, name, text_field=text_field, unicode_errors=unicode_errors):
        yield rec


def looks_like_jsonl(fh) -> bool:
    """The one rule for "is this JSONL?": the first non-blank byte (after a
    byte-order mark) is '{'. Anything else is plain text, one record a line."""
    return fh.peek(4096).removeprefix(UTF8_BOM).lstrip()[:1] == b"{"


def read_numbered_records(fh: IO[bytes], name: str, *, text_field: str = "text", unicode_errors: str = "strict",
                          on_bad=None) -> Iterator[tuple[int, dict]]:
    """(line number, record) pairs. `on_bad(DataError)` decides what a bad line
    does: raise it (the default) or return to skip the line."""
    is_jsonl = looks_like_jsonl(fh)
    n = 0
    for n, raw in enumerate(fh, 1):
        if n == 1:
            raw = raw.removeprefix(UTF8_BOM)
        try:
            line = raw.decode("utf-8", unicode_errors).rstrip("\r\n")
        except UnicodeDecodeError as exc:
            err = DataError(f"invalid UTF-8 at byte {exc.start} of the line (try --unicode-errors replace)", name, n)
        else:
            if not line.strip():
                continue
            if not is_jsonl:
                yield n, {text_field: line}
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                err = DataError(f"invalid JSON: {exc}", name, n)
            else:
                if isinstance(rec, dict):
                    yield n, rec
                    continue
                err = DataError(f"expected a JSON object, got {type(rec).__name__}", name, n)
        if on_bad is None:
            raise err
        on_bad(err)
