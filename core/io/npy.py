"""Vectors as .npy: npy streams (complete arrays back to back, for pipes), one
true .npy file written block by block, and checked loading of an .npy file.
A header is checked before any memory is taken for what it claims."""
from __future__ import annotations

import io
import os
from typing import IO, Iterator

import numpy as np

from vecpipe.core.errors import DataError, OutputError

NPY_MAGIC = b"\x93NUMPY"


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
