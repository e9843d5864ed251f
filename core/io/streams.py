"""Reading and writing records: compressed inputs, JSONL, text lines, npy streams,
and atomic output files. stdin/stdout are always used as binary streams.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np
import orjson

from vecpipe.core.io.compression import compression_by_name, compression_of
from vecpipe.core.errors import CannotCreateError, DataError, LockedError, NoInputError, OutputError, UsageError

NPY_MAGIC = b"\x93NUMPY"

def display_name(path) -> str:
    return "<stdin>" if path in (None, "-") else str(path)


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
        raw = _peekable(sys.stdin.buffer)
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


# ---------------------------------------------------------------- output files
#
# Every output path goes through atomic_path: it is locked against a second run
# (exit 75), checked against replacing what vecpipe did not make (exit 73), its
# missing parent folders are made, and it is written under a temporary name that
# is renamed onto the final one only when the block completes.


def is_special_output(path) -> bool:
    """A device, FIFO or socket (-o /dev/null, a named pipe, /dev/stdout): written
    straight into, never replaced; only formats that stream can go there."""
    if path in (None, "-"):
        return False
    try:
        mode = os.stat(path).st_mode  # follows links: /dev/stdout is the pipe or tty behind it
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_output(path, *, folder: bool = False, replaceable=None) -> None:
    """Refuse (CannotCreateError, exit 73) an output that would replace what
    vecpipe did not make. A file output replaces a file, never a folder. A folder
    output (vecdir) goes where nothing is, into an empty folder, or over a folder
    that `replaceable(path)` accepts (it returns None, or why not). A device or
    FIFO takes a file, never a folder (UsageError)."""
    if is_special_output(path):
        if folder:
            raise UsageError(f"{path}: a vecdir is a folder and cannot be written into a device or pipe; "
                             "pick a file format with --to (e.g. word2vec)")
        return
    target = Path(os.path.realpath(path))
    if folder and target.is_file():
        raise CannotCreateError(f"{path}: is a file; a folder would replace it (remove it or pick another name)")
    if not target.is_dir():
        return
    if not folder:
        raise CannotCreateError(f"{path}: is a folder; vecpipe writes a file here and never replaces a folder "
                                "(remove it or pick another name)")
    if not any(target.iterdir()):
        return
    why = replaceable(target) if replaceable is not None else "it is not empty"
    if why:
        raise CannotCreateError(f"{path}: {why}; vecpipe will not replace it (remove it or pick another name)")


def check_distinct(outputs: dict) -> None:
    """The outputs of one run ({option: path}) must be distinct files (UsageError);
    stdout and devices such as /dev/null may repeat."""
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if path in (None, "-") or is_special_output(path):
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"{seen[real]} and {option} name the same file ({path}); give each its own")
        seen[real] = option


def make_parents(path) -> list[Path]:
    """Make the missing folders above an output (as mkdir -p); returns those it
    made, outermost first, so a failed run can remove exactly those."""
    parent = Path(os.path.abspath(path)).parent
    missing = []
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    made = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                remove_made(made)
                raise CannotCreateError(f"{path}: cannot create it: {folder} is not a folder") from None
        except OSError as exc:
            remove_made(made)
            raise CannotCreateError(f"{path}: cannot create the folder {folder}: {exc.strerror or exc}") from None
        else:
            made.append(folder)
    if not parent.is_dir() and not missing:
        raise CannotCreateError(f"{path}: cannot create it: {parent} is not a folder")
    return made


def remove_made(made: list[Path]) -> None:
    """Remove the folders make_parents made, if they are still empty."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if still empty


_held_locks: dict[str, list] = {}  # lock path -> [open file, depth]: one run may lock a path twice


@contextlib.contextmanager
def lock_output(path):
    """Hold `.NAME.lock` beside an output for the block: a second run on the
    same output stops with LockedError (exit 75). The same lock as --resume's."""
    if path in (None, "-") or is_special_output(path):
        yield
        return
    target = Path(os.path.realpath(path))
    lock_path = target.with_name(f".{target.name}.lock")
    key = str(lock_path)
    if key in _held_locks:
        _held_locks[key][1] += 1
        try:
            yield
        finally:
            _held_locks[key][1] -= 1
        return
    fh = acquire_lock(lock_path, path)
    _held_locks[key] = [fh, 1]
    try:
        yield
    finally:
        del _held_locks[key]
        with contextlib.suppress(FileNotFoundError):
            lock_path.unlink()
        fh.close()


def acquire_lock(lock_path: Path, shown):
    """Open and flock `lock_path` (LockedError if another process holds it); the
    open file holds the lock, with this pid written in it."""
    import fcntl

    while True:
        try:
            fh = open(lock_path, "a+")
        except OSError as exc:
            raise CannotCreateError(f"{shown}: cannot create {lock_path.name}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise LockedError(f"{shown} is being written by another vecpipe run (pid {holder}); try again later") from None
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the holder removed the file as we opened it: take the new one
            break
        fh.close()
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


@contextlib.contextmanager
def atomic_path(path, *, suffix: str = "", folder: bool = False, replaceable=None):
    """Yield a temporary path beside `path`; rename it onto `path` only if the
    block completes. On any error or interrupt the temporary is removed, so no
    half-written file ever carries the final name. `folder=True` for outputs
    that are folders (see check_output for what may be replaced)."""
    if is_special_output(path):
        check_output(path, folder=folder)
        yield Path(path)
        return
    target = Path(path)
    if target.is_symlink():
        target = Path(os.path.realpath(target))  # replace the file the link points to, keep the link
    check_output(target, folder=folder, replaceable=replaceable)
    made = make_parents(target)
    ok = False
    try:
        with lock_output(target):
            try:
                tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
            except OSError as exc:
                raise CannotCreateError(f"{path}: cannot create it: {exc.strerror or exc}") from None
            try:
                yield tmp / ("out" + suffix)
                check_output(target, folder=folder, replaceable=replaceable)
                _replace(tmp / ("out" + suffix), target)
                ok = True
            finally:
                _remove(tmp)
    finally:
        if not ok:
            remove_made(made)


def _replace(src: Path, dst: Path) -> None:
    if dst.is_dir() and not dst.is_symlink() and any(dst.iterdir()):
        # a folder cannot be renamed over a non-empty folder: swap, then drop the
        # old one (check_output allowed it: a vecpipe output of the same kind)
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
        os.replace(src, dst)
        _remove(old)
    else:
        os.replace(src, dst)


def _remove(p: Path) -> None:
    import shutil

    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _is_broken_pipe(exc: OSError) -> bool:
    return isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE


@contextlib.contextmanager
def open_output(path, *, compress_by_suffix: bool = True):
    """Binary output: '-' or None is stdout; a path is written atomically and
    compressed when it ends in .gz/.bz2/.xz."""
    if path in (None, "-"):
        out = sys.stdout.buffer
        yield out
        out.flush()
        return
    kind = compression_by_name(path) if compress_by_suffix else None
    if kind == "zip":
        raise UsageError(f"{path}: writing .zip is not supported; use .gz, .bz2 or .xz")
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as raw:
                if kind is None:
                    yield raw
                else:
                    opener = {"gz": "gzip", "bz2": "bz2", "xz": "lzma"}[kind]
                    mod = __import__(opener)
                    with mod.open(raw, "wb") as zf:
                        yield zf
        except OSError as exc:
            if _is_broken_pipe(exc):
                raise BrokenPipeError(errno.EPIPE, "Broken pipe") from exc
            raise OutputError(f"{path}: {exc.strerror or exc}") from exc


# ---------------------------------------------------------------- records


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


def read_numbered_records(fh: IO[bytes], name: str, *, text_field: str = "text", unicode_errors: str = "strict",
                          on_bad=None) -> Iterator[tuple[int, dict]]:
    """(line number, record) pairs. `on_bad(DataError)` decides what a bad line
    does: raise it (the default) or return to skip the line."""
    head = fh.peek(4096).removeprefix(UTF8_BOM).lstrip()
    is_jsonl = head[:1] == b"{"
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


def write_jsonl(out: IO[bytes], records: Iterable[dict]) -> int:
    """Write records one per line; numpy arrays inside are serialised natively."""
    dumps = orjson.dumps
    opt = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    n = 0
    for rec in records:
        out.write(dumps(rec, option=opt))
        n += 1
    return n


# ---------------------------------------------------------------- npy streams


def is_npy(fh: io.BufferedReader) -> bool:
    return fh.peek(len(NPY_MAGIC))[: len(NPY_MAGIC)] == NPY_MAGIC


def write_npy_block(out: IO[bytes], block: np.ndarray) -> None:
    """Append one complete .npy array to a stream (the npy stream format)."""
    # through write() only: numpy would call ndarray.tofile on a real file, whose
    # error on a closed pipe is a bare OSError, not BrokenPipeError
    np.lib.format.write_array(_PlainWriter(out), np.ascontiguousarray(block), allow_pickle=False)


def read_npy_stream(fh: io.BufferedReader, name: str) -> Iterator[np.ndarray]:
    """Yield each array of a stream of back-to-back .npy arrays until EOF.

    Every block must be 2-D with the same width and dtype as the first, of a
    numeric dtype. A header that claims more rows than follow, or more than
    memory holds, is bad data (DataError naming the input), not a crash."""
    first = None
    index = 0
    while fh.peek(1)[:1]:  # another block follows
        block = _read_npy_block(fh, name, index + 1)
        if block.ndim == 1:
            block = block.reshape(1, -1)
        if block.ndim != 2:
            raise DataError(f"npy block {index + 1}: expected 2-D rows, got shape {block.shape}", name)
        if first is None:
            first = block
        elif block.shape[1] != first.shape[1] or block.dtype != first.dtype:
            raise DataError(
                f"npy block {index + 1}: shape {block.shape} {block.dtype} does not match the first block "
                f"(width {first.shape[1]}, {first.dtype})",
                name,
            )
        index += 1
        yield block


def _read_npy_header(fh, name: str, where: str):
    """(shape, fortran order, dtype, number of items) of the .npy header at fh, checked:
    a valid header of a numeric dtype, or DataError naming the input."""
    fmt = np.lib.format
    reader = _PlainReader(fh)
    try:
        version = fmt.read_magic(reader)
        read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"unsupported .npy version {version[0]}.{version[1]}")
        shape, fortran, dtype = read_header(reader)
    except (ValueError, SyntaxError, TypeError, EOFError) as exc:
        raise DataError(f"{where}not a valid .npy header ({exc})", name) from None
    if any(dim < 0 for dim in shape):
        raise DataError(f"{where}not a valid .npy header (shape {shape})", name)
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise DataError(f"{where}dtype {dtype} is not numeric (vectors are numbers)", name)
    count = 1
    for dim in shape:
        count *= dim
    return shape, fortran, dtype, count


def load_npy(path, *, mmap: bool = False) -> np.ndarray:
    """One .npy file (an index, calibration ranges), its header checked against
    the file first: a numeric dtype and as many data bytes as the header claims,
    else DataError naming the file (never a MemoryError or numpy's ValueError)."""
    name = str(path)
    with open(path, "rb") as fh:
        shape, _, dtype, count = _read_npy_header(fh, name, "")
        nbytes = count * dtype.itemsize
        have = os.fstat(fh.fileno()).st_size - fh.tell()
    if have < nbytes:
        raise DataError(f"truncated: its header says {shape} ({nbytes:,} bytes) but only {have:,} bytes follow", name)
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def _read_npy_block(fh, name: str, number: int) -> np.ndarray:
    """One .npy array from the stream, its header checked before any memory is
    taken for it and its data read in pieces (a short stream is noticed, not
    allocated for)."""
    where = f"npy block {number}"
    shape, fortran, dtype, count = _read_npy_header(fh, name, where + ": ")
    nbytes = count * dtype.itemsize
    try:
        out = np.empty(count, dtype=dtype)
    except (MemoryError, ValueError):
        raise DataError(f"{where}: its header claims shape {shape} ({nbytes:,} bytes), more than memory holds "
                        "(a corrupt header?)", name) from None
    view = memoryview(out).cast("B")
    got = 0
    while got < nbytes:
        n = fh.readinto(view[got: got + (64 << 20)])
        if not n:
            raise DataError(f"{where}: truncated: its header says {shape} ({nbytes:,} bytes) but only "
                            f"{got:,} bytes follow", name)
        got += n
    return out.reshape(shape, order="F" if fortran else "C")


class _PlainWriter:
    """Only write() (see write_npy_block)."""

    def __init__(self, fh):
        self.write = fh.write


class _PlainReader:
    """Only read(): numpy would otherwise take a pipe for a real file and try
    numpy.fromfile, which needs a file position that pipes do not have."""

    def __init__(self, fh):
        self.read = fh.read


class NpyFileWriter:
    """Write rows block by block into one true .npy file.

    The header is written with room to spare and fixed up with the final row
    count on close, so numpy.load and mmap_mode='r' work on the result."""

    HEADER_BYTES = 128  # 10 bytes of preamble + dict padded with spaces; a multiple of 64

    def __init__(self, fh: IO[bytes], start: int | None = None):
        self.fh = fh
        self.rows = 0
        self.width: int | None = None
        self.dtype: np.dtype | None = None
        self._start = fh.tell() if start is None else start

    def state(self) -> dict:
        """What a resumed writer needs to go on appending (see restore)."""
        return {"rows": self.rows, "width": self.width, "dtype": None if self.dtype is None else self.dtype.str}

    def restore(self, rows: int, width: int | None, dtype: str | None) -> None:
        self.rows, self.width = rows, width
        self.dtype = None if dtype is None else np.dtype(dtype)

    def _header(self, rows: int) -> bytes:
        d = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (rows, self.width)}
        body = repr(d).encode("latin1")
        pad = self.HEADER_BYTES - 10 - len(body) - 1
        if pad < 0:
            raise OutputError("npy header does not fit")  # needs > 10^60 rows
        body = body + b" " * pad + b"\n"
        return NPY_MAGIC + b"\x01\x00" + len(body).to_bytes(2, "little") + body

    def write(self, block: np.ndarray) -> None:
        block = np.asarray(block)
        if block.ndim == 1:
            block = block.reshape(1, -1)
        if self.width is None:
            self.width, self.dtype = block.shape[1], block.dtype
            self.fh.write(self._header(0))
        elif block.shape[1] != self.width or block.dtype != self.dtype:
            raise DataError(f"block of shape {block.shape} {block.dtype} does not match width {self.width} {self.dtype}")
        self.fh.write(np.ascontiguousarray(block).tobytes())
        self.rows += block.shape[0]

    def close(self) -> None:
        if self.width is None:
            # nothing was written: an empty (0, 0) float32 array is still a valid .npy
            self.width, self.dtype = 0, np.dtype(np.float32)
            self.fh.write(self._header(0))
            return
        end = self.fh.tell()
        self.fh.seek(self._start)
        self.fh.write(self._header(self.rows))
        self.fh.seek(end)


class NpyStreamWriter:
    """Write each block as its own complete .npy array (for pipes)."""

    def __init__(self, fh: IO[bytes]):
        self.fh = fh
        self.rows = 0

    def write(self, block: np.ndarray) -> None:
        write_npy_block(self.fh, block)
        self.rows += len(block)

    def close(self) -> None:
        self.fh.flush()


@contextlib.contextmanager
def open_vector_output(path):
    """Vectors out: `-o x.npy` gives one true .npy (atomic); stdout or any other
    name gives an npy stream."""
    if path not in (None, "-") and str(path).endswith(".npy"):
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            w = NpyFileWriter(fh)
            yield w
            w.close()
        return
    with open_output(path) as fh:
        w = NpyStreamWriter(fh)
        yield w
        w.close()
